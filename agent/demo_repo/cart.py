"""A shopping cart: items, a total, and a discount code."""

from __future__ import annotations

CODES = {"SPRING10": 0.10, "HALF": 0.50}


class Cart:
    def __init__(self) -> None:
        self.items: list[tuple[str, float, int]] = []

    def add(self, name: str, price: float, quantity: int = 1) -> None:
        if quantity < 1:
            raise ValueError("quantity must be at least 1")
        self.items.append((name, price, quantity))

    def subtotal(self) -> float:
        return sum(price * quantity for _, price, quantity in self.items)

    def total(self, code: str | None = None) -> float:
        """The subtotal less the code's discount, rounded to cents."""
        discount = CODES.get(code or "", 0.0)
        return round(self.subtotal() * discount, 2)
