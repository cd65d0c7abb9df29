"""Singer output, buffered: a write per page of fills, not a system call per message.

The SDK's msgspec writer flushes stdout after every message; at tens of thousands of
fills per second those writes cost more than building the records. Here RECORD lines are
buffered and every other message (SCHEMA, STATE, BATCH, ...) flushes the buffer, so a
STATE never reaches the target before the records it covers, and nothing a STATE covers is
ever left in the buffer. A slow trickle of records is still flushed within a second, and
whatever is left is written when the process exits (the SDK writes no final STATE when the
state has not changed, so the end of a run must not depend on one).
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from singer_sdk.contrib.msgspec import MsgSpecWriter, encoder
from singer_sdk.singerlib import Message, SingerMessageType, StateMessage

FLUSH_BYTES = 1 << 20
# A page's lines of at least this size are written as they are, never copied into the
# buffer (a page of 1,000 fills is ~1 MB: the copy cost the tap's main thread ~10%).
DIRECT_BYTES = 64 << 10
FLUSH_SECONDS = 1.0


_WRITERS: weakref.WeakSet[BufferedMessageWriter] = weakref.WeakSet()


class _Writing:
    """Whether stdout is being written, and what to do once it no longer is.

    A signal that arrives while a write to a full pipe waits runs its handler inside that
    write; a handler that ended the process then would cut a line in half. So a handler
    asks `after_writes` instead: its stop runs at once, or when the write in progress ends.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.pending: Callable[[], None] | None = None

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending is not None:
                self.pending()

    def after_writes(self, action: Callable[[], None]) -> None:
        if self.depth:
            self.pending = action
        else:
            action()


WRITING = _Writing()


def flush_all() -> None:
    """Flush every live writer's buffer (the CLI calls it when its command ends)."""
    for writer in list(_WRITERS):
        writer.flush_buffered()


class BufferedMessageWriter(MsgSpecWriter):
    """MsgSpecWriter with an output buffer and a bulk path for pages of RECORD lines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffer = bytearray()
        self._flushed_at = time.monotonic()
        _WRITERS.add(self)

    def serialize_message(self, message: Message) -> bytearray:
        """As the SDK's, but a STATE is encoded as it stands: the SDK first deep-copies it
        (`dataclasses.asdict`), which for ten thousand wallets costs more than the write."""
        if isinstance(message, StateMessage):
            return bytearray(encoder.encode({"type": "STATE", "value": message.value}) + b"\n")
        return super().serialize_message(message)

    def write_message(self, message: Message) -> None:
        """Buffer a RECORD line; write anything else at once, after what is buffered."""
        self._buffer += self.format_message(message)
        if message.type != SingerMessageType.RECORD:
            self.flush()
        else:
            self._maybe_flush()

    def write_lines(self, lines: bytes | bytearray) -> None:
        """Complete RECORD lines, built in bulk by the stream (records.py).

        A page's lines of DIRECT_BYTES or more, or that fill the buffer, are written as
        they are, after what is buffered, not copied into the buffer first.
        """
        if len(lines) < DIRECT_BYTES and len(self._buffer) + len(lines) < FLUSH_BYTES:
            self._buffer += lines
            self._maybe_flush()
            return
        with WRITING.guard():
            out = sys.stdout.buffer
            if self._buffer:
                _write_all(out, self._buffer)
                self._buffer.clear()
            _write_all(out, lines)
            sys.stdout.flush()
        self._flushed_at = time.monotonic()

    def flush(self) -> None:
        """Write out everything buffered (stdout is looked up now: tests redirect it)."""
        with WRITING.guard():
            if self._buffer:
                _write_all(sys.stdout.buffer, self._buffer)
                self._buffer.clear()
            sys.stdout.flush()
        self._flushed_at = time.monotonic()

    def flush_buffered(self) -> None:
        """Write out what is buffered, if anything (at exit, and after the CLI's command)."""
        if self._buffer:
            try:
                self.flush()
            except (BrokenPipeError, ValueError):  # the reader is gone, or stdout is closed
                self._buffer.clear()

    def _maybe_flush(self) -> None:
        if len(self._buffer) >= FLUSH_BYTES or time.monotonic() - self._flushed_at >= FLUSH_SECONDS:
            self.flush()


def _write_all(out: Any, data: bytes | bytearray) -> None:
    """Write all of `data`: a signal that interrupts a write to a pipe makes a buffered
    writer return having taken only part of it (seen: a line cut after 4 KiB when the
    tap was stopped), and what it did not take is the caller's to write again."""
    view = memoryview(data)
    while view:
        view = view[out.write(view) :]


atexit.register(flush_all)
