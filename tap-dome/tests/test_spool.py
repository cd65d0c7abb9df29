"""Pages parked on disk: read back byte for byte, in any order, files freed as they drain."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from tap_dome.rows import EncodedLines, Rows, split_rows
from tap_dome.spool import Spool


def _page(start: int, count: int, *, string_stamps: bool = False) -> Rows:
    orders = [
        {
            "order_id": f"o{i}",
            "timestamp": str(1_700_000_000 + i) if string_stamps else 1_700_000_000 + i,
            "title": "é" * (i % 7),  # rows of different lengths, non-ASCII text
        }
        for i in range(start, start + count)
    ]
    rows, _ = split_rows(orjson.dumps({"orders": orders}), "orders")
    return rows


def _same(taken: Rows, parked: Rows) -> None:
    assert [bytes(raw) for raw in taken.raw] == [bytes(raw) for raw in parked.raw]
    assert list(taken.stamps) == list(parked.stamps)
    assert list(taken.values) == list(parked.values)
    assert taken.one_line == parked.one_line
    assert taken.dicts() == parked.dicts()


@pytest.mark.parametrize("string_stamps", [False, True], ids=["int-stamps", "string-stamps"])
def test_a_parked_page_reads_back_as_it_was(tmp_path: Path, string_stamps: bool) -> None:
    spool = Spool(str(tmp_path))
    page = _page(0, 1000, string_stamps=string_stamps)
    parked = spool.park(page)
    assert len(parked) == 1000
    taken = spool.take(parked)
    _same(taken, page)
    assert taken.newest() == 1_700_000_999
    spool.close()


def test_a_page_written_out_as_lines_reads_back_whole(tmp_path: Path) -> None:
    # A helper's lines (codec.py) are parked as one block, with no offset kept per row.
    spool = Spool(str(tmp_path))
    lines = b"".join(
        b'{"type":"RECORD","n":%d,"t":"%s"}\n' % (i, "\xc3\xa9".encode() * (i % 5))
        for i in range(1000)
    )
    stamps = [1_700_000_000 + i for i in range(1000)]
    conditions = ["0xaa", "0xbb"]
    page = Rows.from_lines(EncodedLines(bytearray(lines), conditions), stamps)
    parked = spool.park(page)
    assert len(parked) == 1000
    assert parked.ends is None
    assert spool.peak_bytes == len(lines)
    taken = spool.take(parked)
    assert taken.encoded is not None
    assert bytes(taken.encoded.lines) == lines
    assert taken.encoded.condition_ids == conditions
    assert list(taken.stamps) == stamps
    assert taken.newest() == 1_700_000_999
    # Cut at a window's edge after the round trip: the lines of the rows kept, in order.
    edge = taken.where(lambda stamp: 1_700_000_010 <= stamp < 1_700_000_020)
    assert edge.encoded is not None
    assert edge.encoded.lines == b"".join(lines.split(b"\n")[i] + b"\n" for i in range(10, 20))
    spool.close()
    assert spool.open_segments == 0


def test_pages_taken_out_of_order_and_segments_freed(tmp_path: Path) -> None:
    # Tiny segments: each holds a page or two, and is closed once all of its pages are read.
    spool = Spool(str(tmp_path), segment_bytes=30_000)
    pages = [_page(i * 300, 300) for i in range(12)]
    parked = [spool.park(page) for page in pages]
    assert spool.pages_parked == 12
    assert spool.open_segments > 3
    assert spool.peak_bytes == sum(sum(len(raw) for raw in page.raw) for page in pages)
    for index in [*range(1, 12, 2), *range(0, 12, 2)]:  # odd pages first, then even
        _same(spool.take(parked[index]), pages[index])
    # The segment still being appended to may stay open; every full one is closed.
    assert spool.open_segments <= 1
    spool.close()
    assert spool.open_segments == 0


def _files_open_in(directory: Path) -> int:
    """This process's open files that were made in `directory` (anonymous: unlinked)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the directory listing's own, closed by now
            continue
        count += link.startswith(str(directory) + "/")
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts files by /proc")
def test_emptied_segments_are_written_again_and_the_rest_closed(tmp_path: Path) -> None:
    # Writing into a file's pages again costs less than writing new ones: up to
    # `free_segments` emptied files wait to be reused; beyond those they are closed.
    spool = Spool(str(tmp_path), segment_bytes=30_000, free_segments=2)
    first = [_page(i * 300, 300) for i in range(12)]
    parked = [spool.park(page) for page in first]
    files = _files_open_in(tmp_path)
    assert files > 3
    for page, where in zip(first, parked, strict=True):
        _same(spool.take(where), page)
    assert spool.open_segments == 0
    assert spool.free_segments == 2
    assert _files_open_in(tmp_path) == 2  # the rest closed, their space freed
    # Shorter pages into the reused files: each reads back as itself, nothing of the old.
    second = [_page(10_000 + i * 50, 50) for i in range(6)]
    parked = [spool.park(page) for page in second]
    assert _files_open_in(tmp_path) == 2  # no new file: both reused
    for index in (5, 0, 3, 1, 4, 2):
        _same(spool.take(parked[index]), second[index])
    spool.close()
    assert spool.free_segments == 0
    assert _files_open_in(tmp_path) == 0


def test_parked_files_are_anonymous(tmp_path: Path) -> None:
    # Nothing to clean up after a crash: the files have no name in the directory.
    spool = Spool(str(tmp_path))
    spool.park(_page(0, 500))
    assert os.listdir(tmp_path) == []
    spool.close()


def test_a_missing_directory_refuses_the_page(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        spool.park(_page(0, 10))
    assert spool.open_segments == 0
