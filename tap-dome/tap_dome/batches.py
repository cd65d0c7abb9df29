"""Batch files for Singer BATCH messages, written a page of records at a time.

In batch mode (the `batch_config` setting) the tap writes its records to files and emits
one BATCH message per file instead of a RECORD line per fill; a loader then loads each file
whole (a BigQuery load job, one DuckDB INSERT). The SDK's own batcher encodes record by
record and compresses at gzip's slowest level, which makes batch mode slower than RECORD
lines; this writer takes each page's lines built in bulk (records.py) and compresses at
level 1. The files are
the SDK's: JSON Lines, one record per line, gzip or not, named and stored through the
configured storage root, so any Singer loader that reads BATCH messages reads them.
"""

from __future__ import annotations

import gzip
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import IO, TYPE_CHECKING

from tap_dome.checkpoints import STATE_EVERY_SECONDS

if TYPE_CHECKING:  # the SDK's own type for `batch_config` (private module, types only)
    from singer_sdk.helpers._batch import BatchConfig

GZIP_LEVEL = 1
# A file is also finished once it has been open as long as the STATE cadence of RECORD
# lines (checkpoints.py), so a STATE follows within seconds however slowly records come and
# a crash costs the same bounded re-read in both modes.
MAX_FILE_SECONDS = STATE_EVERY_SECONDS


def fast_batches_apply(config: BatchConfig) -> bool:
    """Whether this writer can produce what `config` asks for (JSON Lines, gzip or none)."""
    encoding = config.encoding
    return encoding.format == "jsonl" and (encoding.compression or "none") in ("gzip", "none")


class BatchFiles:
    """Files of about `batch_size` records, or `max_seconds` of them; `add` yields manifests."""

    def __init__(
        self,
        config: BatchConfig,
        *,
        tap_name: str,
        stream_name: str,
        max_seconds: float = MAX_FILE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._gzip = (config.encoding.compression or "none") == "gzip"
        prefix = config.storage.prefix or ""
        self._stem = f"{prefix}{tap_name}--{stream_name}-{uuid.uuid4()}"
        self._size = max(1, config.batch_size or 10_000)
        self._index = 0
        self._rows = 0
        self._name = ""
        self._max_seconds = max_seconds
        self._clock = clock
        self._opened_at = 0.0
        self._files = ExitStack()  # the storage's open file, closed when the batch is done
        self._out: IO[bytes] | None = None

    def add(self, lines: bytes | bytearray, count: int) -> Iterator[list[str]]:
        """Append a page's `count` record lines; yields a manifest whenever a file is full."""
        if not count:
            return
        if self._out is None:
            self._open()
        assert self._out is not None
        self._out.write(lines)
        self._rows += count
        if self._rows >= self._size or self._clock() - self._opened_at >= self._max_seconds:
            yield self._finish()

    def close(self) -> Iterator[list[str]]:
        """Finish the last, partly filled file (if any) and yield its manifest."""
        if self._out is not None and self._rows:
            yield self._finish()

    def _open(self) -> None:
        self._index += 1
        extension = ".json.gz" if self._gzip else ".json"
        self._name = f"{self._stem}-{self._index}{extension}"
        raw: IO[bytes] = self._files.enter_context(self._config.storage.open(self._name, "wb"))
        if self._gzip:
            packed = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL)
            self._files.callback(packed.close)  # runs before the file under it is closed
            raw = packed  # type: ignore[assignment]  # a GzipFile is a binary file
        self._out = raw
        self._rows = 0
        self._opened_at = self._clock()

    def _finish(self) -> list[str]:
        """Close the file (complete on disk before its BATCH message) and name it."""
        self._files.close()  # the gzip stream first, then the file under it
        self._files = ExitStack()
        self._out = None
        self._rows = 0
        return [self._config.storage.get_url(self._name)]
