"""Pages turned into RECORD lines in helper processes, beside the tap's own.

Turning a page into Singer lines (decode it typed, complete each row, encode it: records.py)
costs a few microseconds a row, and in one Python process it shares the GIL with
everything else the tap does: at a few hundred thousand fills a second that work is what
bounds the tap. Here a fetch worker hands each page's body to a helper process and waits
for the page's lines (its GIL released while it waits), so the encoding runs on another
core while the tap fetches, schedules and writes.

A helper only ever encodes: it writes nothing, logs nothing and holds no state the run
needs. Whatever it cannot do (a page that is not typed, a helper that died) the tap does
itself, from the body it still holds, so nothing is lost and nothing is written twice.
Helpers are forked (Linux), before the run's fetch threads start.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import socket
import struct
import sys
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from tap_dome.buffers import BUFFERS, BufferPool
from tap_dome.concurrency import reuse_freed_memory
from tap_dome.records import RecordBuilder
from tap_dome.rows import EncodedLines, Rows, is_one_line

_LENGTH = struct.Struct("<Q")  # the length before each frame
SOCKET_BUFFER_BYTES = 4 << 20  # a page in one write where the system allows it
# A smaller body (under ~100 fills) costs more to send to a helper and back than to write
# in the tap: it never goes to one.
MIN_HELPER_BODY_BYTES = 64 << 10
_TIMESTAMP = attrgetter("timestamp")


@dataclass(frozen=True)
class EncodeSpec:
    """What a helper needs to write one stream's pages (sent once, then named by `name`).

    `builder` makes the helper's own RecordBuilder (`RecordBuilder.recipe`: its typed
    decoder learns fields on its own); `head` opens each line (a RECORD message's
    envelope, or b"" in a batch file).
    """

    name: str
    builder: Callable[[], RecordBuilder]
    rows_field: str
    head: bytes


@dataclass(frozen=True)
class EncodedPage:
    """A typed page as a helper wrote it: its rows (lines ready to go) and pagination."""

    rows: Rows
    pagination: Any


class _Channel:
    """One end of a helper's socket: length-prefixed frames, each read with one call into
    a buffer of its size (a page is ~1 MB: no chunked reads, no copies). The tap's ends read
    into buffers of its pool (buffers.py); a helper's own heap is kept (`_serve`)."""

    __slots__ = ("buffers", "sock", "specs_sent")

    def __init__(self, sock: socket.socket, buffers: BufferPool | None = None) -> None:
        self.sock = sock
        self.buffers = buffers
        self.specs_sent: set[str] = set()  # what this helper already knows (the tap's end)
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):  # the system's own size is fine too
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)

    def send(self, data: bytes | bytearray) -> None:
        self.sock.sendall(_LENGTH.pack(len(data)))
        self.sock.sendall(data)

    def send_object(self, value: Any) -> None:
        self.send(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def recv(self) -> bytearray:
        (size,) = _LENGTH.unpack(self._exactly(_LENGTH.size))
        return self._exactly(size)

    def recv_object(self) -> Any:
        return pickle.loads(self.recv())

    def _exactly(self, size: int) -> bytearray:
        buffer = bytearray(size) if self.buffers is None else self.buffers.take(size)
        view = memoryview(buffer)
        while view:
            got = self.sock.recv_into(view, len(view), socket.MSG_WAITALL)
            if got == 0:
                raise EOFError("the other end closed its socket")
            view = view[got:]
        return buffer


class EncoderPool:
    """Helper processes that encode pages; `encode` is safe from any thread.

    Each helper has one socket; a fetch worker takes a free one, sends the body, and waits
    for the answer. When every helper is busy the page is the tap's own to write, so the
    work spreads over the tap and its helpers as each has time for it. When a helper fails
    the pool stops using helpers (one warning), and every page from then on is written in
    the tap's own process. The helpers are stopped when the tap exits (`close`).
    """

    def __init__(
        self,
        processes: int,
        logger: logging.Logger,
        min_body_bytes: int = MIN_HELPER_BODY_BYTES,
    ) -> None:
        self._logger = logger
        self._min_body_bytes = min_body_bytes
        self._free: queue.Queue[_Channel] = queue.Queue()
        self._children: list[Any] = []
        self._specs: dict[str, EncodeSpec] = {}
        self._lock = threading.Lock()
        self._broken = False
        # Pages offered: written by a helper, found every helper busy, too small to send,
        # not typed.
        self.counts = {"written": 0, "busy": 0, "small": 0, "untyped": 0}
        context = multiprocessing.get_context("fork")
        tap_ends: list[socket.socket] = []
        for _ in range(processes):
            ours, theirs = socket.socketpair()
            tap_ends.append(ours)
            # The helper closes its copies of the tap's ends (its own and the earlier
            # helpers'): else a helper would never see the tap close its socket.
            child = context.Process(target=_serve, args=(theirs, tap_ends[:]), daemon=True)
            child.start()
            theirs.close()
            self._children.append(child)
            self._free.put(_Channel(ours, BUFFERS))

    @classmethod
    def start(
        cls,
        processes: int,
        logger: logging.Logger,
        min_body_bytes: int = MIN_HELPER_BODY_BYTES,
    ) -> EncoderPool | None:
        """A pool of `processes` helpers, or None when there are to be none (0, or a
        platform without fork). A body under `min_body_bytes` is never sent to one."""
        if processes <= 0 or "fork" not in multiprocessing.get_all_start_methods():
            return None
        pool = cls(processes, logger, min_body_bytes)
        atexit.register(pool.close)  # before multiprocessing's own: the helpers end cleanly
        return pool

    @property
    def pids(self) -> list[int]:
        """The helpers' process ids."""
        return [child.pid for child in self._children]

    def register(self, spec: EncodeSpec) -> None:
        """Make `spec` known; helpers learn it with the first page that names it."""
        with self._lock:
            self._specs[spec.name] = spec

    def encode(self, spec: str, wallet: str, tail: bytes, body: bytes) -> EncodedPage | None:
        """The page's lines, or None: not typed, or no helper free (the tap writes it)."""
        if self._broken:
            return None
        if len(body) < self._min_body_bytes:  # cheaper to write here than to send
            self._count("small")
            return None
        try:
            channel = self._free.get_nowait()
        except queue.Empty:  # every helper busy: this page is the tap's own to write
            self._count("busy")
            return None
        try:
            if spec not in channel.specs_sent:
                channel.send_object(self._specs[spec])
                channel.specs_sent.add(spec)
            channel.send_object((spec, wallet, tail))
            channel.send(body)
            header = channel.recv_object()
            if header is not None:
                lines = channel.recv()
        except (EOFError, OSError, pickle.PickleError) as exc:
            self._fail(exc)
            channel.sock.close()
            return None
        self._free.put(channel)
        if header is None:
            self._count("untyped")
            return None
        self._count("written")
        packed, condition_ids, pagination = header
        stamps = array("q")
        stamps.frombytes(packed)
        rows = Rows.from_lines(EncodedLines(lines, condition_ids), stamps.tolist())
        return EncodedPage(rows, pagination)

    def close(self) -> None:
        """Stop every helper (each ends when its socket closes); log what they wrote."""
        if not self._children:
            return
        counts = self.counts
        if sum(counts.values()):
            self._logger.info(
                "Helper processes wrote %d of %d pages; the tap wrote %d itself (%d found "
                "every helper busy, %d were too small to send, %d did not fit the typed path).",
                counts["written"],
                sum(counts.values()),
                sum(counts.values()) - counts["written"],
                counts["busy"],
                counts["small"],
                counts["untyped"],
            )
        self._broken = True
        while True:
            try:
                self._free.get_nowait().sock.close()
            except queue.Empty:
                break
        for child in self._children:
            child.join(timeout=5)
            if child.is_alive():
                child.kill()
        self._children = []

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if not self._broken:
                self._broken = True
                self._logger.warning(
                    "An encoding helper process failed (%s); the tap encodes every page "
                    "itself from now on (nothing is lost).",
                    type(exc).__name__,
                )


def _serve(sock: socket.socket, tap_ends: list[socket.socket]) -> None:
    """A helper's loop: a page in, its lines out, until the tap closes its socket."""
    for end in tap_ends:
        end.close()
    reuse_freed_memory()
    _detach_from_output()
    # Not the tap's handlers: an interrupt is the tap's to handle; the helper ends when
    # the tap closes its socket, or at once when it is terminated.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    channel = _Channel(sock)
    builders: dict[str, tuple[EncodeSpec, RecordBuilder]] = {}
    while True:
        try:
            message = channel.recv_object()
            if isinstance(message, EncodeSpec):  # a stream's spec, before its first page
                builders[message.name] = (message, message.builder())
                continue
            name, wallet, tail = message
            body = channel.recv()
        except (EOFError, OSError):
            return
        spec, builder = builders[name]
        try:
            answer = _encode(builder, spec, wallet, tail, body)
        except Exception:  # any page it cannot write, the tap writes itself
            answer = None
        try:
            if answer is None:
                channel.send_object(None)
                continue
            lines, header = answer
            channel.send_object(header)
            channel.send(lines)
        except OSError:
            return


def _encode(
    builder: RecordBuilder, spec: EncodeSpec, wallet: str, tail: bytes, body: bytearray
) -> tuple[bytes | bytearray, tuple[bytes, list[Any], Any]] | None:
    """One typed page's lines and (timestamps packed, condition ids, pagination).

    The body is decoded once, rows and pagination together: a typed row's `timestamp` is
    an int, so the stamps are read off the rows (a page that is not typed, or has no
    rows, the tap writes itself)."""
    decoder = builder.typed_rows(spec.rows_field)
    if decoder is None or not is_one_line(body):
        return None
    page = decoder.page(body)
    if page is None or not page[0]:
        return None
    typed, pagination = page
    stamps = array("q", map(_TIMESTAMP, typed))
    seen: set[Any] = set()
    lines = builder.typed_lines(typed, wallet, seen, head=spec.head, tail=tail)
    return lines, (stamps.tobytes(), list(seen), pagination)


def _detach_from_output() -> None:
    """A forked helper shares the tap's stdout, where Singer messages go: point it at
    /dev/null, so that nothing a helper does can ever reach it. Its Python streams are
    replaced, never flushed: what the tap had buffered in them when it forked is the tap's
    to write, once."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    # Kept referenced, so that they are never flushed as they are freed.
    _INHERITED.extend((sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__))
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for its life
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for its life


_INHERITED: list[Any] = []
