"""Windows: cutting a window into slices, and what its first page already covers."""

from __future__ import annotations

import itertools

from tap_dome.page import Page
from tap_dome.rows import Rows
from tap_dome.windows import Window, covered_by_first_page, estimate_fills, slice_count, split


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
