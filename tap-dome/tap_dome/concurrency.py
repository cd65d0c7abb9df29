"""How many requests to keep in flight, and the threads that carry them.

The tier's budget is a rate; with network latency, a rate needs that many requests in
flight at once (Little's law: in flight = rate x latency). Too few and the tier goes unused;
too many and pages pile up in memory waiting for the consumer. `ConcurrencyGate` sizes the
limit from the tier's burst rate and the latency it observes; `WorkerPool` supplies threads
as the limit needs them.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import math
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Before the first answer the latency is unknown: assume a slow network (more in flight
# costs only a few idle threads; too few would waste the first seconds of the budget).
INITIAL_LATENCY_SECONDS = 0.5
# Weight of each new observation in the moving average: about the last ten requests count.
LATENCY_WEIGHT = 0.2
# The base latency is the shortest of this many recent round trips: the part that no
# queueing on this machine or at the server adds (as TCP's minimum RTT estimates the path).
BASE_LATENCY_SAMPLES = 32
# In flight = rate x latency x HEADROOM + SPARE: latency varies from request to request,
# and a few requests should wait at the limiter so that no freed slot goes unused.
HEADROOM = 1.5
SPARE = 2
# glibc's mallopt parameter for the most malloc arenas, and the number to allow.
M_ARENA_MAX = -8
MALLOC_ARENAS = 1
# Response bodies above this size get their own mapping, returned to the system when freed.
# Set explicitly, it also stops glibc from raising the threshold after each free, which
# otherwise moves page-1000 bodies (~700 KB) into the heap, where they fragment it.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 * 1024
# A helper process (codec.py) instead keeps its freed memory for its next page: allocations
# below this many bytes come from its heap, and its heap is returned to the system only
# beyond M_TRIM_THRESHOLD's bytes free at its top.
M_TRIM_THRESHOLD = -1
HELPER_MMAP_THRESHOLD_BYTES = 16 << 20
HELPER_TRIM_THRESHOLD_BYTES = 64 << 20


class ConcurrencyGate:
    """The in-flight limit: Little's law on `rate` and the observed latency, within `cap`.

    Not thread-safe on its own: the scheduler calls it under its lock.
    """

    def __init__(self, rate: float, cap: int) -> None:
        if rate <= 0 or cap < 1:
            raise ValueError(f"need rate > 0 and cap >= 1, got {rate!r}, {cap!r}")
        self.rate = rate
        self.cap = cap
        self.latency = INITIAL_LATENCY_SECONDS
        self._observed = False
        self._recent: deque[float] = deque(maxlen=BASE_LATENCY_SAMPLES)
        self._recent_full: deque[float] = deque(maxlen=BASE_LATENCY_SAMPLES)

    def observe(self, seconds: float, *, full: bool = True) -> None:
        """One round trip took `seconds` (network and server, not the limiter's wait);
        `full`: its page had more after it (a long chain's page, not a short last one)."""
        self._recent.append(seconds)
        if full:
            self._recent_full.append(seconds)
        if not self._observed:
            self.latency, self._observed = seconds, True
        else:
            self.latency += LATENCY_WEIGHT * (seconds - self.latency)

    @property
    def base_latency(self) -> float:
        """The shortest recent round trip: the network's share of the latency, without the
        time requests spent queued behind each other (at the server or for this process's
        CPU), which the moving average includes. Before any answer: the initial guess.

        Of full pages when there are any: a short page (an empty slice, a small wallet's
        only page) can come back far sooner than a long chain's full pages, whose round
        trips are what parking is for (scheduler.py)."""
        recent = self._recent_full or self._recent
        return min(recent, default=INITIAL_LATENCY_SECONDS)

    @property
    def limit(self) -> int:
        """Requests that may be in flight (or waiting at the limiter) right now."""
        wanted = math.ceil(self.rate * self.latency * HEADROOM) + SPARE
        return max(1, min(self.cap, wanted))


def limit_malloc_arenas() -> None:
    """Keep glibc from giving each worker thread its own malloc arena, and bodies in the heap.

    Workers allocate the response bodies; the consumer thread frees them. With an arena per
    thread, glibc keeps the freed memory spread over many arenas and the process's memory
    grows with the run (a 200,000-fill wallet took 17% more than a 50,000-fill one); with
    one it stays flat. A fixed mmap threshold keeps large bodies out of the heap (measured:
    1.17-1.20x without it, 1.06-1.14x with it). Elsewhere than glibc: nothing to do.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_ARENA_MAX, MALLOC_ARENAS)
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def reuse_freed_memory() -> None:
    """Have glibc keep a helper process's freed memory for its next page.

    A helper handles one page at a time, and every page allocates about the same: the body,
    its rows, its lines (a few MB). Forked from the tap, it inherits the tap's fixed 256 KiB
    mmap threshold (`limit_malloc_arenas`), so each of those buffers was a fresh mapping,
    faulted in page by page and unmapped again: measured in one process on the same pages,
    3.9 us a row against 2.9 us with the heap kept. The heap stays the size of one page's
    work. Elsewhere than glibc: nothing to do.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, HELPER_MMAP_THRESHOLD_BYTES)
    mallopt(M_TRIM_THRESHOLD, HELPER_TRIM_THRESHOLD_BYTES)


class ReadingSlots:
    """At most `count` holders at once; a free slot goes to the waiter with the lowest key.

    The scheduler's pages queue here to be read (see FetchScheduler), keyed by their place
    in emission order: the pages the consumer needs next are read first, not whichever
    came back first. Thread-safe.
    """

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"need count >= 1, got {count!r}")
        self._free = count
        self._lock = threading.Lock()
        self._waiting: list[tuple[Any, int, threading.Event]] = []  # a heap
        self._sequence = itertools.count()

    @property
    def waiting(self) -> int:
        """Claims waiting for a slot now."""
        with self._lock:
            return len(self._waiting)

    def slot(self, key: Any) -> Slot:
        """A claim to be acquired (by `key`'s turn) and released once."""
        return Slot(self, key)

    def _acquire(self, key: Any) -> None:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            turn = threading.Event()
            heapq.heappush(self._waiting, (key, next(self._sequence), turn))
        turn.wait()  # set by `_release`, which hands its slot over

    def _release(self) -> None:
        with self._lock:
            if self._waiting:
                heapq.heappop(self._waiting)[2].set()
            else:
                self._free += 1


class Slot:
    """One claim on ReadingSlots: `acquire` waits its turn, `release` frees the slot."""

    __slots__ = ("_key", "_slots")

    def __init__(self, slots: ReadingSlots, key: Any) -> None:
        self._slots = slots
        self._key = key

    def acquire(self) -> None:
        """Wait until a slot is this claim's."""
        self._slots._acquire(self._key)

    def release(self) -> None:
        """Free the slot (to the next waiter, if any)."""
        self._slots._release()


class WorkerPool:
    """Daemon threads that run submitted tasks; a thread is started only when none is idle.

    Daemon threads, unlike concurrent.futures', never hold the process open at exit: a
    request stuck in its retries must not keep a failed run alive.
    """

    def __init__(self, name: str) -> None:
        limit_malloc_arenas()
        self._name = name
        self._tasks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0

    def submit(self, task: Callable[[], None]) -> None:
        """Run `task` on an idle thread, or on a new one."""
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                thread = threading.Thread(
                    target=self._run, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._tasks.put(task)

    def close(self) -> None:
        """Let every thread end once its current task is done."""
        with self._lock:
            for _ in self._threads:
                self._tasks.put(None)

    def _run(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            task()
            with self._lock:
                self._idle += 1


def ordered_map(task: Callable[[T], R], items: Iterable[T], width: int, name: str) -> Iterator[R]:
    """`task` over `items` on up to `width` threads at once; the results in `items`' order.

    For requests that do not depend on each other (markets by id, wallet lookups): one at a
    time, each would wait a round trip, and the tier's rate needs many in flight (see
    ConcurrencyGate). At most `width` results wait for the caller, so memory stays bounded
    however many items there are. A task's exception is raised in the caller, at its place
    in the order; tasks still running then end on their own (daemon threads, WorkerPool).
    """
    pending = iter(items)
    if width <= 1:
        yield from map(task, pending)
        return
    pool = WorkerPool(name)
    boxes: deque[queue.SimpleQueue[tuple[bool, R | BaseException]]] = deque()

    def submit(item: T) -> None:
        box: queue.SimpleQueue[tuple[bool, R | BaseException]] = queue.SimpleQueue()

        def run() -> None:
            try:
                box.put((True, task(item)))
            except BaseException as exc:  # raised in the caller's thread
                box.put((False, exc))

        boxes.append(box)
        pool.submit(run)

    try:
        for item in itertools.islice(pending, width):
            submit(item)
        while boxes:
            ok, value = boxes.popleft().get()
            if not ok:
                assert isinstance(value, BaseException)
                raise value
            for item in itertools.islice(pending, 1):
                submit(item)
            yield value  # type: ignore[misc]
    finally:
        pool.close()
