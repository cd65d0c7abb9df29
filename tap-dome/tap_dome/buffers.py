"""Big buffers reused from page to page in the tap's own process, instead of mapped afresh.

A page of 1,000 fills is about 1 MB of lines, read from a helper process (codec.py) or back
from the page spool (spool.py). The tap fixes glibc's mmap threshold at 256 KiB, which keeps
its heap flat (`concurrency.limit_malloc_arenas`), so each such buffer was a mapping of its
own: faulted in 4 KiB at a time, zeroed by the kernel, unmapped when freed. On Pro's
million-fill wallet at page 1000 that was ~650,000 page faults, about a fifth of the tap's
own process's CPU.

A buffer here is handed out again only once nothing else refers to it. Python counts every
holder (the page's rows, a memoryview, a write in progress), so a buffer still in use is
never overwritten: a page that is kept stays whole, and the pool allocates a new buffer
instead. Buffers are kept up to `MAX_BUFFERS`, about as many as the pages the tap holds in
memory at once (budget.py), so the pool adds no memory the run would not use.
"""

from __future__ import annotations

import sys
import threading

# Smaller buffers come from the heap anyway (below the mmap threshold): not worth pooling.
MIN_POOLED_BYTES = 256 << 10
MAX_BUFFERS = 64
_ZEROS = bytes(1 << 20)  # what a buffer grows by, a chunk at a time


def _unused_count() -> int:
    """What `sys.getrefcount` says of a buffer that only the pool's list holds, counted in
    the same way `BufferPool.take` counts (its list, its loop variable, the call's argument)."""
    probe = [bytearray(1)]
    for held in probe:
        return sys.getrefcount(held)
    raise AssertionError("unreachable")


_UNUSED = _unused_count()


class BufferPool:
    """Thread-safe: `take(size)` gives a bytearray of exactly `size` bytes (its old content,
    to be overwritten) that no one else holds."""

    def __init__(self, max_buffers: int = MAX_BUFFERS) -> None:
        self._buffers: list[bytearray] = []
        self._max = max_buffers
        self._lock = threading.Lock()
        self.reused = 0  # buffers handed out again (for tests and the curious)

    def take(self, size: int) -> bytearray:
        """A buffer of `size` bytes: a free one of the pool's, resized, or a new one."""
        if size < MIN_POOLED_BYTES:
            return bytearray(size)
        with self._lock:
            for held in self._buffers:
                if sys.getrefcount(held) <= _UNUSED:
                    _resize(held, size)
                    self.reused += 1
                    return held
            buffer = bytearray(size)
            if len(self._buffers) < self._max:
                self._buffers.append(buffer)
            return buffer

    def __len__(self) -> int:
        return len(self._buffers)


def _resize(buffer: bytearray, size: int) -> None:
    """Cut or grow `buffer` to `size` bytes in place (within its allocation, mostly)."""
    while len(buffer) < size:
        buffer.extend(memoryview(_ZEROS)[: size - len(buffer)])
    del buffer[size:]


BUFFERS = BufferPool()
