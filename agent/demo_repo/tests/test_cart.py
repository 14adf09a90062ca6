"""Tests of the cart."""

from __future__ import annotations

import unittest

from cart import Cart


class CartTest(unittest.TestCase):
    def setUp(self) -> None:
        self.cart = Cart()
        self.cart.add("tea", 4.50, 2)
        self.cart.add("cup", 11.00)

    def test_subtotal(self) -> None:
        self.assertEqual(self.cart.subtotal(), 20.00)

    def test_total_without_a_code_is_the_subtotal(self) -> None:
        self.assertEqual(self.cart.total(), 20.00)

    def test_a_code_takes_its_discount_off(self) -> None:
        self.assertEqual(self.cart.total("SPRING10"), 18.00)

    def test_quantity_must_be_positive(self) -> None:
        with self.assertRaises(ValueError):
            self.cart.add("air", 1.0, 0)
