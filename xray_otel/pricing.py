"""LLM price table: the one definition of cost-from-tokens, used by the SDK and the receiver.

Prices are USD per one million tokens, (input, output). They go stale; the SDK takes overrides with
``configure(prices={...})`` rather than edits to this file.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "o3-mini": (1.10, 4.40),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-sonnet-4": (3.00, 15.00),
    "gemini-1.5-pro": (1.25, 5.00),
    "gemini-1.5-flash": (0.075, 0.30),
    # Embedding models: input tokens only.
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    "text-embedding-ada-002": (0.10, 0.0),
    "gemini-embedding-001": (0.15, 0.0),
}


class PriceTable:
    """An immutable table of (input, output) prices in USD per million tokens, by model name (lower case).

    Immutable so that one process can hold several without one changing another's answers: the SDK's
    (``configure(prices=)`` makes it a new table) and the receiver's (mapping reads ``DEFAULT``).
    """

    __slots__ = ("_prices",)

    def __init__(self, prices: Mapping[str, tuple[float, float]]) -> None:
        table: dict[str, tuple[float, float]] = {}
        for model, (input_per_million, output_per_million) in prices.items():
            if input_per_million < 0 or output_per_million < 0:
                raise ValueError(f"prices must be >= 0, got {input_per_million}, {output_per_million} for {model!r}")
            table[model.lower()] = (float(input_per_million), float(output_per_million))
        self._prices = MappingProxyType(table)

    def with_prices(self, prices: Mapping[str, tuple[float, float]]) -> PriceTable:
        """A new table: this one with ``prices`` added or replacing what it had for those models."""
        return PriceTable({**self._prices, **{model.lower(): price for model, price in prices.items()}})

    def price_of(self, model: str) -> tuple[float, float] | None:
        """The (input, output) price for ``model``; dated names match their base (``gpt-4o-2024-08-06``)."""
        key = model.lower()
        if key in self._prices:
            return self._prices[key]
        # Longest known prefix wins, so "gpt-4o-mini-2024" matches gpt-4o-mini, not gpt-4o.
        best = max((k for k in self._prices if key.startswith(k + "-")), key=len, default=None)
        return self._prices[best] if best else None

    def cost_of(self, model: str | None, input_tokens: int | None, output_tokens: int | None) -> float | None:
        """USD cost of one call, or None when the model is unknown."""
        if not model:
            return None
        price = self.price_of(model)
        if price is None:
            return None
        return ((input_tokens or 0) * price[0] + (output_tokens or 0) * price[1]) / 1_000_000


DEFAULT = PriceTable(_PRICES)


def cost_of(model: str | None, input_tokens: int | None, output_tokens: int | None) -> float | None:
    """USD cost of one call by the default table, or None when the model is unknown."""
    return DEFAULT.cost_of(model, input_tokens, output_tokens)
