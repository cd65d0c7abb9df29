"""Time windows: how a wallet's history is cut so that a crash costs at most one window.

Dome serves newest first and the SDK cannot resume an unsorted partition mid-way, so the
bookmark can only move when a whole window has been emitted. Windows are read oldest first.
A window starts as the whole remaining range (one request suffices for most wallets); when
its first page shows that it holds more than `max_window_fills`, it is cut into slices of
about half that size and the page is dropped (one request spent to learn the size).
Bounds are whole seconds, inclusive on both ends, and the API wants start < end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tap_dome.page import Page


@dataclass(frozen=True)
class Window:
    """Fills with start <= timestamp <= end (Unix seconds)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"a window needs start < end, got [{self.start}, {self.end}]")

    @property
    def seconds(self) -> int:
        """Number of whole seconds covered."""
        return self.end - self.start + 1


def estimate_fills(window: Window, first_page: Page) -> int:
    """How many fills the window holds: the API's `total`, else extrapolated from the page.

    The extrapolation uses the time span the first page covers, whichever order the API
    serves in, so it stays sensible if Dome ever changes its sort.
    """
    if first_page.total is not None:
        return first_page.total
    if not first_page.has_more:
        return len(first_page.orders)
    stamps = [int(fill.get("timestamp") or 0) for fill in first_page.orders]
    span = max(stamps) - min(stamps) + 1 if stamps else window.seconds
    return math.ceil(len(first_page.orders) * window.seconds / max(span, 1))


def split(window: Window, fills: int, max_fills: int) -> list[Window]:
    """Slices of `window`, oldest first, each expected to hold about max_fills / 2.

    Returns [] when the window is small enough or cannot be cut (two seconds or less).
    """
    if fills <= max_fills:
        return []
    target = max(1, max_fills // 2)
    count = min(math.ceil(fills / target), window.seconds // 2)
    if count < 2:
        return []
    edges = [window.start + (window.seconds * i) // count for i in range(count + 1)]
    return [Window(edges[i], edges[i + 1] - 1) for i in range(count)]
