"""Counts and quantities as people write them: ``20M``, ``1.5B``, ``2e12``, ``16k``, ``1_000``.

One parser for every place that reads one (token budgets, batch sizes, model sizes, FLOPs,
unique tokens), so the same text means the same number everywhere.
"""

from __future__ import annotations

import math

# Case-insensitive suffixes: thousands to quadrillions ("G" is a billion, as in GPU FLOPs).
SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}


def parse_quantity(text: str) -> float:
    """A positive, finite number with an optional K/M/B/G/T/P suffix; ValueError otherwise."""
    raw = text.strip().lower().replace("_", "").replace(",", "")
    scale = SUFFIXES.get(raw[-1:], 1.0)
    try:
        value = float(raw[:-1] if raw[-1:] in SUFFIXES else raw) * scale
    except ValueError:
        raise ValueError(f"{text!r} is not a number (e.g. 7e9, 20M or 1.5B)") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{text!r} must be a positive number")
    return value


def parse_count(text: str) -> int:
    """:func:`parse_quantity` rounded to a whole count: ``20M`` -> 20,000,000."""
    return round(parse_quantity(text))
