"""Pages parked on disk while they wait for the consumer, so fetching ahead costs no memory.

Under real latency the stream waits on its head slice's cursor chain, one page per round
trip, while the other chains run ahead. Their pages must wait somewhere: in memory they would
make memory grow with the lookahead (budget.py caps it), so beyond a share of that cap
they are parked here. A parked page is its rows' JSON text, written as one block into an
anonymous temporary file; only each row's timestamp and, for rows not yet written out as
lines, its end offset stay in memory (8-16 bytes a row). Reading it back is one `pread` (and
for rows not written out, slicing): no parsing, about 0.3 ms per 1,000 fills. A page already
written out as lines (codec.py) is parked and read back whole, with no step per row.

Files are segments of about `segment_bytes`, written one after another. A segment whose pages
have all been taken is written again from its start (up to `FREE_SEGMENTS` of them wait for
that), and only beyond those is it closed, its disk space freed: writing into a file's pages
that the system already holds costs about an eighth of writing into new ones (which it must
find, zero and, at close, free again), and under latency most pages of a big wallet pass
through here. They are anonymous (unlinked on creation), so a crash leaves nothing behind.
Thread-safe: workers park, the consumer takes.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import msgspec

from tap_dome.buffers import BUFFERS
from tap_dome.rows import EncodedLines, Rows

SEGMENT_BYTES = 8 * 1024 * 1024
# Emptied segments kept to be written again, at most (64 MiB of disk at the default size).
FREE_SEGMENTS = 8


class _Segment:
    """One temporary file, appended to until full; closed when its last page is taken."""

    __slots__ = ("file", "full", "pages", "size")

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.size = 0  # bytes reserved so far
        self.pages = 0  # pages in it not taken yet
        self.full = False


@dataclass(frozen=True, slots=True)
class Parked:
    """Where one page's rows are on disk, and what of them stays in memory."""

    segment: _Segment
    offset: int
    size: int  # the block's bytes
    ends: array[int] | None  # each row's end offset in the block; None for lines
    values: array[int] | list[Any]  # each row's raw `timestamp` value
    stamps: array[int] | list[int | None]  # each row's timestamp in seconds
    one_line: bool
    # A page written out as lines (codec.py): its condition ids; the block is its lines.
    condition_ids: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.stamps)


class Spool:
    """Anonymous temporary files in `directory` (the system's temp directory by default)."""

    def __init__(
        self,
        directory: str | None = None,
        segment_bytes: int = SEGMENT_BYTES,
        free_segments: int = FREE_SEGMENTS,
    ) -> None:
        self._directory = directory
        self._segment_bytes = max(1, segment_bytes)
        self._free_cap = max(0, free_segments)
        self._lock = threading.Lock()
        self._segment: _Segment | None = None  # the one being appended to
        self._open: set[_Segment] = set()  # every file open, emptied ones included
        self._free: list[_Segment] = []  # emptied, to be written again from the start
        self._bytes = 0  # bytes parked and not taken yet
        self.pages_parked = 0
        self.peak_bytes = 0

    @property
    def open_segments(self) -> int:
        """Temporary files open now that hold a page not taken yet."""
        with self._lock:
            return len(self._open) - len(self._free)

    @property
    def free_segments(self) -> int:
        """Emptied files kept open to be written again."""
        with self._lock:
            return len(self._free)

    def park(self, rows: Rows) -> Parked:
        """Write `rows` to disk; raises OSError when the disk refuses (nothing is kept then)."""
        encoded = rows.encoded
        ends: array[int] | None = None  # lines are read back whole: no row's end is needed
        if encoded is not None:
            block = encoded.lines
        else:
            block = b"".join(rows.raw)
            ends = array("q", itertools.accumulate(len(raw) for raw in rows.raw))
        values, stamps = _compact(rows.values, rows.stamps)
        with self._lock:
            segment = self._segment
            if segment is None or segment.full:
                if self._free:
                    segment = self._free.pop()
                else:
                    # Closed by `_taken` or close(): not a `with` block.
                    file = tempfile.TemporaryFile(dir=self._directory)  # noqa: SIM115
                    segment = _Segment(file)
                    self._open.add(segment)
                self._segment = segment
            offset = segment.size
            segment.size += len(block)
            segment.pages += 1
            if segment.size >= self._segment_bytes:
                segment.full = True
        try:
            written = os.pwrite(segment.file.fileno(), block, offset)
            if written != len(block):
                raise OSError(f"short write to the page spool: {written} of {len(block)} bytes")
        except BaseException:
            self._taken(segment)
            raise
        with self._lock:
            self._bytes += len(block)
            self.peak_bytes = max(self.peak_bytes, self._bytes)
            self.pages_parked += 1
        condition_ids = None if encoded is None else encoded.condition_ids
        return Parked(
            segment, offset, len(block), ends, values, stamps, rows.one_line, condition_ids
        )

    def take(self, parked: Parked) -> Rows:
        """Read a parked page back (once): its rows, as they were parked."""
        size = parked.size
        block = BUFFERS.take(size)  # a page's lines are ~1 MB: no fresh mapping for each
        try:
            got = os.preadv(parked.segment.file.fileno(), [block], parked.offset)
        finally:
            self._taken(parked.segment, size)
        if got != size:
            raise OSError(f"the page spool lost data: read {got} of {size} bytes")
        if parked.condition_ids is not None:  # lines (codec.py): read back whole
            # A typed row's stamp is an int, so they come packed (_compact).
            packed = parked.stamps
            stamps = packed if isinstance(packed, array) else [int(s or 0) for s in packed]
            return Rows.from_lines(EncodedLines(block, parked.condition_ids), stamps)
        view = memoryview(block)
        bounds = itertools.pairwise(itertools.chain((0,), parked.ends or ()))
        raw = [msgspec.Raw(view[start:end]) for start, end in bounds]
        return Rows.restored(raw, parked.values, parked.stamps, one_line=parked.one_line)

    def close(self) -> None:
        """Close every file (pages not taken are dropped)."""
        with self._lock:
            segments, self._open = self._open, set()
            self._segment = None
            self._free = []
        for segment in segments:
            segment.file.close()

    def _taken(self, segment: _Segment, size: int = 0) -> None:
        with self._lock:
            self._bytes -= size
            segment.pages -= 1
            if segment.pages or (not segment.full and segment is self._segment):
                return
            if segment is self._segment:
                self._segment = None
            if len(self._free) < self._free_cap:
                segment.size = 0
                segment.full = False
                self._free.append(segment)
                return
            self._open.discard(segment)
        segment.file.close()


def _compact(values: Sequence[Any], stamps: Sequence[int | None]) -> tuple[Any, Any]:
    """Timestamps as 8-byte integers when they all are integers (the usual case)."""
    if all(type(value) is int for value in values):
        packed = array("q", values)
        return packed, packed
    return list(values), list(stamps)
