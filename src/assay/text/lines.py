"""Line helpers shared by the Gopher repetition and FineWeb rules."""

from __future__ import annotations

from collections.abc import Sequence


def find_duplicates(items: Sequence[str]) -> tuple[int, int]:
    """(number of items seen before, total characters of those items), in order.

    datatrove's ``find_duplicates``, shared by the Gopher repetition and FineWeb rules.
    Every occurrence of an item but its first is a duplicate, so both are totals over all
    items minus totals over the distinct ones.
    """
    distinct = set(items)
    return len(items) - len(distinct), sum(map(len, items)) - sum(map(len, distinct))
