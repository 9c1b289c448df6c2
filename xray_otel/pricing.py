"""LLM price table: the one definition of cost-from-tokens, used by the SDK and the receiver.

Prices are USD per one million tokens, (input, output). They go stale; override them
with :func:`set_price` or ``configure(prices={...})`` rather than editing this file.
"""

from __future__ import annotations

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
}


def set_price(model: str, input_per_million: float, output_per_million: float) -> None:
    """Add or replace one model's price (USD per million input / output tokens)."""
    if input_per_million < 0 or output_per_million < 0:
        raise ValueError(f"prices must be >= 0, got {input_per_million}, {output_per_million} for {model!r}")
    _PRICES[model.lower()] = (float(input_per_million), float(output_per_million))


def price_of(model: str) -> tuple[float, float] | None:
    """The (input, output) price for ``model``; dated names match their base (``gpt-4o-2024-08-06``)."""
    key = model.lower()
    if key in _PRICES:
        return _PRICES[key]
    # Longest known prefix wins, so "gpt-4o-mini-2024" matches gpt-4o-mini, not gpt-4o.
    best = max((k for k in _PRICES if key.startswith(k + "-")), key=len, default=None)
    return _PRICES[best] if best else None


def cost_of(model: str | None, input_tokens: int | None, output_tokens: int | None) -> float | None:
    """USD cost of one call, or None when the model is unknown."""
    if not model:
        return None
    price = price_of(model)
    if price is None:
        return None
    return ((input_tokens or 0) * price[0] + (output_tokens or 0) * price[1]) / 1_000_000
