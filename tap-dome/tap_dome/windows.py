"""Time windows: how a wallet's history is cut so that it reads fast and a crash costs little.

Dome serves newest first and the SDK cannot resume an unsorted partition mid-way, so the
bookmark can only move when a whole window has been emitted. Windows are read oldest first.
A window starts as the whole remaining range (one request suffices for most wallets). Its
first page says how many fills it holds (the API's `total`); a window too long to walk as
one chain of round trips is cut into time slices that are read in parallel (scheduler.py).

The first page is not wasted: served newest first, it holds *every* fill newer than its
oldest timestamp, so that top part is complete (`covered_by_first_page`) and only the rest
is sliced. Bounds are whole seconds, inclusive on both ends, and the API wants start < end.

A window often starts long before the wallet's first fill (a `start_date` years back): cut
evenly by time, most slices would be empty and the few that hold everything would have to
be cut again, one round trip later. So the rest is cut where its fills probably are: as
far back as the newest page's density says they reach (`split_where_filled`), with the
part before that as one slice of its own. If the guess is wrong, that slice's first page
says so and it is cut in turn.
"""

from __future__ import annotations

import itertools
import math
import operator
from dataclasses import dataclass

from tap_dome.page import Page
from tap_dome.rows import Rows

# The rest of a window is assumed to reach this much further back than the newest page's
# density implies (activity varies); what lies before is one slice of its own.
EXTENT_MARGIN = 1.25


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


@dataclass(frozen=True)
class Covered:
    """What a window's first page proves: `window` is complete in `fills`; `rest` is not.

    `newest` says which end the covered part is at: the newest (the API's order, newest
    first) or the oldest (an API serving oldest first). Emission keeps time order, so a
    newest covered part is emitted after the rest, an oldest one before it.
    """

    window: Window
    fills: Rows
    rest: Window
    newest: bool


def covered_by_first_page(window: Window, fills: Rows) -> Covered | None:
    """The part of `window` that its first page (`fills`) holds completely, if any.

    A page served newest first ends inside its oldest second: fills of that second may go
    on past the page, but every newer fill is on it, so [oldest + 1, end] is complete. The
    order is read from the page itself (ascending pages mirror this at the start). None
    when the page shows no order (one second only, or unsorted) or a part would be shorter
    than the two seconds the API needs to query it.
    """
    stamps = [stamp or 0 for stamp in fills.stamps]
    if len(stamps) < 2 or stamps[0] == stamps[-1]:
        return None
    newest_first = stamps[0] > stamps[-1]
    in_order = operator.ge if newest_first else operator.le
    if not all(map(in_order, stamps, itertools.islice(stamps, 1, None))):
        return None
    edge = stamps[-1]  # the second the page stops in
    if newest_first:
        parts = (edge + 1, window.end), (window.start, edge)
    else:
        parts = (window.start, edge - 1), (edge, window.end)
    (cov_start, cov_end), (rest_start, rest_end) = parts
    if not (window.start <= cov_start < cov_end <= window.end and rest_start < rest_end):
        return None
    # Sorted, so the rows newer (older, ascending) than the edge's second are the ones
    # before its first row.
    kept = fills.first(stamps.index(edge))
    return Covered(Window(cov_start, cov_end), kept, Window(rest_start, rest_end), newest_first)


def estimate_fills(window: Window, first_page: Page) -> int:
    """How many fills the window holds: the API's `total`, else extrapolated from the page.

    The extrapolation uses the time span the first page covers, whichever order the API
    serves in, so it stays sensible if Dome ever changes its sort.
    """
    if first_page.total is not None:
        return first_page.total
    if not first_page.has_more:
        return len(first_page.rows)
    stamps = [stamp or 0 for stamp in first_page.rows.stamps]
    span = max(stamps) - min(stamps) + 1 if stamps else window.seconds
    return math.ceil(len(first_page.rows) * window.seconds / max(span, 1))


def slice_count(fills: int, target: int, max_fills: int) -> int:
    """How many slices `fills` should be read in: 1 means "walk it as one chain".

    Slices hold about `target` fills. A window is cut when it holds more than
    `max_fills` (the bookmark's granularity) or more than 1.5 slices' worth: below that,
    cutting would cost a partly empty page per slice for little parallelism.
    """
    target = max(1, min(target, max_fills))
    if fills <= max_fills and 2 * fills <= 3 * target:
        return 1
    return math.ceil(fills / target)


def split(window: Window, count: int) -> list[Window]:
    """`window` cut into `count` slices of equal time, oldest first (fewer if it is short).

    Returns [] when the window cannot be cut (each slice needs two seconds).
    """
    count = min(count, window.seconds // 2)
    if count < 2:
        return []
    edges = [window.start + (window.seconds * i) // count for i in range(count + 1)]
    return [Window(edges[i], edges[i + 1] - 1) for i in range(count)]


def seconds_per_fill(fills: Rows) -> float | None:
    """The time a page's fills span, per fill: their density. None for fewer than two."""
    stamps = [stamp for stamp in fills.stamps if stamp is not None]
    if len(stamps) < 2:
        return None
    return (max(stamps) - min(stamps) + 1) / len(stamps)


def estimate_rest(window: Window, page: Page, read_before: int, rest: Window) -> int:
    """Fills of `window` still unread after `page` (`read_before` fills came before it):
    the API's `total` less those read, else `rest` at the density read so far."""
    read = read_before + len(page.rows)
    if page.total is not None:
        return max(0, page.total - read)
    read_seconds = max(1, window.seconds - rest.seconds)
    return math.ceil(read * rest.seconds / read_seconds)


def split_where_filled(
    rest: Window, fills: int, density: float | None, count: int, *, newest_first: bool
) -> list[Window]:
    """`rest` cut into about `count` slices over the part its `fills` probably fill.

    Fills at `density` (seconds per fill) reach `fills * density` seconds (with a margin)
    beyond the read part: from `rest`'s end back when the API serves newest first, from
    its start forward otherwise. Beyond that lies one slice of its own, which a wrong guess
    leaves full: its first page then shows it, and it is cut in turn. When the fills
    probably fill all of `rest`, or the density is unknown: `split(rest, count)`.
    """
    if density is None or count < 3:
        return split(rest, count)
    extent = max(2, math.ceil(fills * density * EXTENT_MARGIN))  # a window has two seconds
    if extent * count >= rest.seconds * (count - 1) or rest.seconds - extent < 2:
        return split(rest, count)  # the outer part would be under one slice
    if newest_first:
        edge = rest.end - extent  # the outer part ends here
        filled = Window(edge + 1, rest.end)
        return [Window(rest.start, edge), *(split(filled, count - 1) or [filled])]
    edge = rest.start + extent  # the outer part starts here
    filled = Window(rest.start, edge - 1)
    return [*(split(filled, count - 1) or [filled]), Window(edge, rest.end)]
