"""What model calls cost: a price table per model, and a meter per attempt."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from serving.base import Completion, Usage


class Price(BaseModel):
    """US dollars per million tokens."""

    input_per_mtok: float = Field(ge=0)
    """Price of a million prompt tokens."""

    output_per_mtok: float = Field(ge=0)
    """Price of a million completion tokens."""


FREE = Price(input_per_mtok=0, output_per_mtok=0)
DEFAULT_PRICES = {"mistral-medium-3.5": Price(input_per_mtok=1.5, output_per_mtok=7.5)}


class CostsConfig(BaseModel):
    """Prices by model name; a self-hosted model is priced at zero or at its GPU cost."""

    prices: dict[str, Price] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    """Model name (or the start of one, like `mistral-medium-3.5`) -> price."""

    unknown: Price = FREE
    """Price of a model the table does not name."""


class PriceTable:
    def __init__(self, config: CostsConfig | None = None) -> None:
        self.config = config or CostsConfig()

    def price(self, model: str) -> Price:
        """Exact name first; else the longest key that starts the name without its org prefix.

        So `mistralai/Mistral-Medium-3.5-128B` is priced as `mistral-medium-3.5`.
        """
        if model in self.config.prices:
            return self.config.prices[model]
        bare = model.rsplit("/", 1)[-1].lower()
        matches = [k for k in self.config.prices if bare.startswith(k.lower())]
        return self.config.prices[max(matches, key=len)] if matches else self.config.unknown

    def cost(self, usage: Usage, model: str) -> float:
        p = self.price(model)
        return (
            usage.prompt_tokens * p.input_per_mtok + usage.completion_tokens * p.output_per_mtok
        ) / 1e6


@dataclass(frozen=True)
class Reading:
    """What a meter has counted: tokens, dollars, calls. Readings add up (attempts -> task)."""

    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    calls: int = 0

    def __add__(self, other: Reading) -> Reading:
        return Reading(
            self.usage + other.usage, self.cost_usd + other.cost_usd, self.calls + other.calls
        )


class Meter:
    """Counts the tokens and cost of one attempt's calls; safe to share between threads."""

    def __init__(self, prices: PriceTable | None = None) -> None:
        self.prices = prices or PriceTable()
        self._reading = Reading()
        self._lock = threading.Lock()

    def record(self, completion: Completion) -> Reading:
        """Add one call; returns what that call cost."""
        one = Reading(completion.usage, self.prices.cost(completion.usage, completion.model), 1)
        with self._lock:
            self._reading = self._reading + one
        return one

    def reading(self) -> Reading:
        with self._lock:
            return self._reading
