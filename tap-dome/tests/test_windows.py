"""Windows: cutting a window into slices, and what its first page already covers."""

from __future__ import annotations

import itertools

from tap_dome.page import Page
from tap_dome.rows import Rows
from tap_dome.windows import (
    EXTENT_MARGIN,
    Window,
    covered_by_first_page,
    estimate_fills,
    estimate_rest,
    seconds_per_fill,
    slice_count,
    split,
    split_where_filled,
)


def _fills(*stamps: int) -> Rows:
    return Rows.of_dicts([{"timestamp": stamp, "log_index": i} for i, stamp in enumerate(stamps)])


def test_split_covers_the_window_without_gaps_or_overlap() -> None:
    window = Window(1000, 1_000_000)
    slices = split(window, 19)
    assert len(slices) == 19
    assert slices[0].start == window.start
    assert slices[-1].end == window.end
    for left, right in itertools.pairwise(slices):
        assert right.start == left.end + 1
    assert split(window, 1) == []
    # A window of two seconds cannot be cut: a burst in one second is walked whole.
    assert split(Window(5, 6), 1000) == []
    assert len(split(Window(0, 9), 1000)) == 5  # every slice keeps two seconds


def _tiles(slices: list[Window], window: Window) -> bool:
    """`slices` cover `window` exactly, in order, each at least two seconds long."""
    edges_meet = all(b.start == a.end + 1 for a, b in itertools.pairwise(slices))
    return (
        bool(slices)
        and slices[0].start == window.start
        and slices[-1].end == window.end
        and edges_meet
        and all(s.seconds >= 2 for s in slices)
    )


def test_the_rest_is_cut_where_its_fills_probably_are() -> None:
    # 1,000 fills at one per 10 s reach about 10,000 s back: most of a 1,000,000 s rest is
    # one slice of its own, and the other slices share the part the fills probably fill.
    rest = Window(0, 1_000_000)
    slices = split_where_filled(rest, 1_000, 10.0, 16, newest_first=True)
    assert _tiles(slices, rest)
    assert len(slices) == 16
    outer, filled = slices[0], slices[1:]
    assert outer.end == rest.end - round(1_000 * 10.0 * EXTENT_MARGIN)
    assert sum(s.seconds for s in filled) == 12_500
    assert max(s.seconds for s in filled) - min(s.seconds for s in filled) <= 1
    # An API serving oldest first: the fills go on forward from the rest's start.
    mirrored = split_where_filled(rest, 1_000, 10.0, 16, newest_first=False)
    assert _tiles(mirrored, rest)
    assert mirrored[-1].start == rest.start + 12_500
    assert sum(s.seconds for s in mirrored[:-1]) == 12_500


def test_a_rest_the_fills_probably_fill_is_cut_evenly() -> None:
    rest = Window(0, 99_999)
    # Sparse fills reach past the rest's start; an unknown density says nothing.
    assert split_where_filled(rest, 1_000, 90.0, 10, newest_first=True) == split(rest, 10)
    assert split_where_filled(rest, 1_000, None, 10, newest_first=True) == split(rest, 10)
    # Two slices leave no room for an outer one; a short rest is cut as far as it can be.
    assert split_where_filled(rest, 10, 1.0, 2, newest_first=True) == split(rest, 2)
    tiny = Window(0, 5)
    assert _tiles(split_where_filled(tiny, 1, 1.0, 8, newest_first=True), tiny)
    for count in range(3, 40):
        for fills in (1, 7, 100, 10_000):
            got = split_where_filled(rest, fills, 0.5, count, newest_first=count % 2 == 0)
            assert _tiles(got, rest), (count, fills)
            assert len(got) <= count


def test_density_and_what_is_left_of_a_window() -> None:
    assert seconds_per_fill(_fills(100, 90, 80, 71)) == 30 / 4
    assert seconds_per_fill(_fills(100)) is None
    window, rest = Window(0, 999), Window(0, 899)  # 100 s read, 900 s left
    with_total = Page(rows=_fills(999, 950, 900), has_more=True, pagination_key="k", total=50)
    assert estimate_rest(window, with_total, 7, rest) == 40  # 50 less 7 before and 3 now
    no_total = Page(rows=_fills(999, 950, 900), has_more=True, pagination_key="k", total=None)
    assert estimate_rest(window, no_total, 7, rest) == 90  # 10 fills per 100 s, 900 s left
    done = Page(rows=_fills(999), has_more=True, pagination_key="k", total=3)
    assert estimate_rest(window, done, 7, rest) == 0


def test_slice_count_cuts_long_windows_only() -> None:
    assert slice_count(1_000, target=800, max_fills=10_000) == 1  # under 1.5 slices
    assert slice_count(1_300, target=800, max_fills=10_000) == 2
    assert slice_count(95_000, target=800, max_fills=10_000) == 119
    # max_window_fills caps a slice, whatever the target.
    assert slice_count(400, target=800, max_fills=150) == 3


def test_estimate_prefers_total_then_extrapolates() -> None:
    window = Window(0, 999)
    with_total = Page(rows=_fills(1), has_more=True, pagination_key="k", total=5000)
    assert estimate_fills(window, with_total) == 5000
    stamps = _fills(*(900 + i % 100 for i in range(100)))
    without = Page(rows=stamps, has_more=True, pagination_key="k", total=None)
    assert estimate_fills(window, without) == 1000


def test_newest_first_page_covers_the_top_of_its_window() -> None:
    page = _fills(90, 90, 80, 75, 70, 70)
    covered = covered_by_first_page(Window(0, 100), page)
    assert covered is not None
    assert covered.newest
    # Every fill after 70 is on the page; fills at 70 may go on past it, so they are left
    # to the rest, which ends at 70 inclusive.
    assert covered.window == Window(71, 100)
    assert [f["timestamp"] for f in covered.fills.dicts()] == [90, 90, 80, 75]
    assert covered.rest == Window(0, 70)


def test_oldest_first_page_covers_the_bottom_of_its_window() -> None:
    covered = covered_by_first_page(Window(0, 100), _fills(5, 5, 9, 20, 30))
    assert covered is not None
    assert not covered.newest
    assert covered.window == Window(0, 29)
    assert [f["timestamp"] for f in covered.fills.dicts()] == [5, 5, 9, 20]
    assert covered.rest == Window(30, 100)


def test_first_page_without_an_order_covers_nothing() -> None:
    window = Window(0, 100)
    assert covered_by_first_page(window, _fills(50, 50, 50)) is None  # one second only
    assert covered_by_first_page(window, _fills(50, 60, 40)) is None  # unsorted
    assert covered_by_first_page(window, _fills(50)) is None
    # Parts too short to query (the API wants start < end) are not made.
    assert covered_by_first_page(window, _fills(100, 99)) is None
    assert covered_by_first_page(Window(10, 100), _fills(30, 10)) is None
    # Numeric strings, as some API versions send them.
    covered = covered_by_first_page(
        window, Rows.of_dicts([{"timestamp": "60"}, {"timestamp": "40.0"}])
    )
    assert covered is not None
    assert covered.window == Window(41, 100)
