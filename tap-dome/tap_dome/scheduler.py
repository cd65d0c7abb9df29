"""Fetching many wallets' windows concurrently, handed to the consumer strictly in order.

singer-sdk emits one partition (wallet) at a time, and the API answers each request only
after a round trip, so the tier's rate is reached only with many requests in flight at
once (Little's law: rate x latency; see concurrency.py). Three kinds of thread share the
work, under one lock:

- the consumer (the stream) calls `iter_wallet` wallet by wallet and drains each window's
  pages in order; the window it waits on is the *head*;
- one dispatcher sends the next request: always the earliest one in emission order that
  may go, so the pages the consumer needs next are fetched first;
- worker threads (as many as are in flight) carry one request each and hand back its page.

A window is one cursor chain: one request at a time. So a long window is cut into time
slices that are walked in parallel (windows.py). Its first page says how many fills it
holds; it is kept, not wasted: it already holds every fill of the window's newest part.
A slice whose first page still shows too many fills is cut again. A window is cut into
as many slices as there are request slots nothing else is ready to use, at least
`MIN_FANOUT` (within the slices its fills call for).

The end of a run is where a chain costs most: the last chains walk alone, one round trip
per page, while the tier's budget goes unused. So when a chain's page comes back, nothing
else is ready to be sent, no request waits at the rate limiter and slots are free, the rest
of its window is cut too
(`_cut_rest`): its pages so far and that page's complete part stay, as a part of their own,
and the rest is read as slices in parallel. The head's chain is cut so whenever its page
comes back with more and no request waits at the rate limiter, however busy the slots
are: the consumer waits on it while the other chains' pages pile up on disk.

Memory stays flat in the size and number of wallets: fills waiting for the consumer plus
requests in flight stay within a budget (`FillBudget`) that grows with the in-flight
limit, not with the data, up to a fixed cap. A page is read from its socket only once one
of `READING_SLOTS` is free, and holds it until it is stored: under latency, the requests
in flight beyond those slots hold no page in memory, so they count against the disk's
share of the budget, not memory's. Pages take the slots in emission order, and the head's
page needs none, so the pages the consumer needs next are read first.

Slices are short (a few pages each), so the budget covers enough of them to keep every
request slot busy. When the consumer waits on the head with nothing to emit, the head may
fetch beyond the budget, so it is never starved by pages of later windows and nothing
deadlocks. The first error that retrying cannot fix stops the dispatcher and is raised to
the consumer.

The API's data clock (the newest fill timestamp any response has shown) is tracked for
the bookmarks: see `WindowDone` in events.py.
"""

from __future__ import annotations

import enum
import functools
import heapq
import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tap_dome.client import ORDERS, Endpoint, window_params
from tap_dome.concurrency import (
    LATENCY_WEIGHT,
    ConcurrencyGate,
    ReadingSlots,
    Slot,
    WorkerPool,
)
from tap_dome.events import Event, FillsFetched, WindowDone
from tap_dome.fetch import PageFetcher
from tap_dome.page import Page, page_of
from tap_dome.pagination import DomePaginator
from tap_dome.rows import Rows
from tap_dome.spool import Parked, Spool
from tap_dome.windows import (
    Covered,
    Window,
    covered_by_first_page,
    estimate_fills,
    estimate_rest,
    seconds_per_fill,
    slice_count,
    split,
    split_where_filled,
)

WAIT_SLICE_SECONDS = 1.0
# Fills a slice is cut to hold, in pages: between MIN_ and MAX_SLICE_PAGES, about
# SLICE_FILLS fills. Short slices let more chains run for the same memory; each slice's
# last page is on average half empty, so very short ones cost extra requests.
SLICE_FILLS = 800
MIN_SLICE_PAGES = 4
MAX_SLICE_PAGES = 8
# A window is cut into this many slices at once at least (more when more request slots are
# free); a slice that still holds too many fills is cut again when its first page shows
# it. Cutting step by step keeps the slices that fall where the guess of where the fills
# are was wrong (one request each, when empty) few.
MIN_FANOUT = 16
# A chain's rest is cut into this many slices per page it holds (so that most hold under a
# page: one round trip), within the free request slots.
REST_SLICES_PER_PAGE = 1.25
# Fills held in memory at most, waiting or in flight (a fill is held as its JSON text, under
# 1 KB with its share of the page): under 40 MB.
MAX_BUFFERED_FILLS = 40_000
# Fills parked on disk at most (spool.py; 16 bytes each stay in memory): under 400 MB of
# temporary files, enough for the chains of a huge wallet to run far ahead of its head.
MAX_PARKED_FILLS = 400_000
# A base latency (the shortest recent round trip: concurrency.py) at least this long parks
# pages on disk (see FillBudget): the head's cursor chain walks one round trip at a time
# while the other chains run ahead, and their pages would fill the memory budget and stop
# the fetching. With a shorter one (a fast network, a local server) the consumer catches up
# with its head by itself, and fetching far ahead would only cost memory: more big pages in
# flight at once. The average would not do: on a busy machine, requests to a local server
# queue for CPU, and their round trips average 35-85 ms while the fastest take a few.
PARK_MIN_LATENCY_SECONDS = 0.05
# Pages read from their sockets and parsed at once, at most, until each is stored (in
# memory or on disk): a request in flight holds no memory until its page is read, so
# under latency many may be in flight (rate x latency) while few pages are in memory. As
# many as the default helper processes: 2 to 4 did alike at the Pro tier's page of 1,000
# under latency, 8 worse (more pages parsed at once contend for the one GIL).
READING_SLOTS = 4
# Pages that wallets after the current one may hold, per request slot: enough to keep
# every slot busy while the current wallet ends, never so much that it waits for room.
AHEAD_PAGES_PER_REQUEST = 2


class JobState(enum.Enum):
    """Where a window job stands."""

    PENDING = "pending"  # its first page is not in yet
    ACTIVE = "active"  # walking its cursor chain
    DONE = "done"  # every page fetched (some may still wait for the consumer)
    SPLIT = "split"  # replaced by its slices (its children)


@dataclass(eq=False)
class WindowJob:
    """One window of one wallet, walked page by page, one request at a time."""

    wallet: str
    window: Window
    # Place in emission order: the wallet's index in the plan, then slice indexes.
    order: tuple[int, ...]
    state: JobState = JobState.PENDING
    paginator: DomePaginator = field(default_factory=DomePaginator)
    pages: deque[Rows | Parked] = field(default_factory=deque)  # in memory or on disk
    children: list[WindowJob] = field(default_factory=list)
    estimate: int | None = None  # fills expected in the window (a slice: from its cut)
    expected: int = 0  # fills the request in flight is counted for in the budget
    # The API's data clock as known when this window's first request was sent, raised by
    # the window's own fills: the window is complete through min(end, this).
    data_clock: int | None = None

    def seen_through(self) -> int | None:
        """The newest second this window is known complete through (see WindowDone)."""
        return None if self.data_clock is None else min(self.window.end, self.data_clock)


@dataclass(frozen=True)
class Cut:
    """How a window is read instead of as one chain: its slices, and the covered part."""

    covered: Covered | None
    slices: list[Window]
    fills_per_slice: int
    rest: bool = False  # cut to use free request slots (`_cut_rest`), not for its size

    @property
    def kept(self) -> Rows:
        """The first page's fills kept (those of the covered part)."""
        return Rows([], [], one_line=True) if self.covered is None else self.covered.fills

    def parts(self) -> list[Window | Covered]:
        """The children in emission (time) order."""
        if self.covered is None:
            return list(self.slices)
        if self.covered.newest:
            return [*self.slices, self.covered]
        return [self.covered, *self.slices]


@dataclass
class SchedulerCounts:
    """What the scheduler did, for the run's closing log line."""

    requests: int = 0
    peak_in_flight: int = 0
    peak_fills_held: int = 0  # in memory: in flight and waiting
    peak_fills_parked: int = 0  # on disk
    windows_cut: int = 0  # on their first page
    rests_cut: int = 0  # chains whose rest was cut to use free request slots
    slices: int = 0
    first_pages_kept: int = 0
    first_pages_dropped: int = 0


def slice_pages(page_size: int) -> int:
    """Pages a slice is cut to hold at this page size (see SLICE_FILLS)."""
    return max(MIN_SLICE_PAGES, min(MAX_SLICE_PAGES, SLICE_FILLS // max(1, page_size)))


class FillBudget:
    """Fills held for the consumer, in memory or parked on disk, and whether one more request
    may be sent.

    A request in flight counts as the fills it is expected to bring (a full page when its
    window has more; for a window's first request, what recent first pages held) until it
    arrives; then its page counts as the fills it holds until the consumer takes them, as
    *waiting* (in memory) or *parked* (on disk, spool.py).

    Per request slot, the wallet being emitted may hold about half a slice per chain plus
    the page in flight; later wallets share `AHEAD_PAGES_PER_REQUEST` pages more. Their
    separate share matters: thousands of small wallets are always ready to fetch, and
    without it they would fill the budget while the current wallet's chains wait for room.

    Under latency (`parking`), that rule is what would hold the rate down: the consumer
    waits on its head chain, one round trip at a time, while the other chains' pages fill
    the budget and then wait for room. So then the wallet being emitted may fetch on until
    memory (`in_memory`: the waiting pages and those being read) reaches `max_fills`, or
    the requests in flight and the parked pages reach `max_parked` (each page in flight
    must find room on disk), and a page that arrives while the waiting pages fill half the
    memory budget is parked on disk. From the first page on: pages that came in before
    parking began would stay in memory until the consumer reaches them, which for the first
    pages of a huge wallet's slices is the whole run.
    """

    def __init__(
        self,
        page_size: int,
        max_fills: int = MAX_BUFFERED_FILLS,
        max_parked: int = MAX_PARKED_FILLS,
        reading_slots: int = READING_SLOTS,
    ) -> None:
        self.page_size = page_size
        self.max_fills = max(max_fills, page_size)
        self.max_parked = max(0, max_parked)
        self.reading_slots = reading_slots
        self.own_pages = slice_pages(page_size) // 2 + 1
        self.in_flight = 0
        self.waiting = 0
        self.parked = 0
        # Being written to disk: in memory until the write succeeds (then parked), so a disk
        # that refuses pages never lets memory overshoot its budget.
        self.writing = 0
        self.parking = False
        # Whether a round trip has been seen: until then the whole memory budget is used.
        self.latency_known = False
        self._by_wallet: dict[str, int] = {}
        self._first_page = float(page_size)  # moving average of first pages' fills

    @property
    def total(self) -> int:
        """Every fill held: in flight, waiting in memory, being written, parked on disk."""
        return self.in_flight + self.waiting + self.writing + self.parked

    @property
    def in_memory(self) -> int:
        """Fills held in memory: waiting, being written to disk, and in flight; of these,
        only as many as `READING_SLOTS` pages, since a page is read from its socket only
        once it has a slot (`PageFetcher.fetch_timed`)."""
        reading = min(self.in_flight, self.reading_slots * self.page_size)
        return reading + self.waiting + self.writing

    def expected(self, job: WindowJob) -> int:
        """The fills `job`'s next request will likely bring: a full page when its window
        has more; for a slice's first page, its share of the cut window's fills; for a
        wallet's first page, what recent wallets' first pages held."""
        if job.state is not JobState.PENDING:
            return self.page_size
        if job.estimate is not None:
            return max(1, min(self.page_size, job.estimate))
        return max(1, math.ceil(self._first_page))

    def must_park(self, fills: int) -> bool:
        """Should a page of `fills` fills that is not the head's go to disk?"""
        if self.parked + self.writing + fills > self.max_parked:
            return False
        limit = self.max_fills // 2 if self.parking else self.max_fills
        return self.waiting + fills > limit

    def sent(self, wallet: str, expected: int) -> None:
        """A request of `wallet` left; count `expected` fills until it arrives."""
        self.in_flight += expected
        self._add(wallet, expected)

    def arrived(self, job: WindowJob, fills: int, kept: int, *, parked: bool = False) -> None:
        """`job`'s page (`fills` fills) arrived and `kept` of them wait for the consumer,
        in memory or (`parked`) on their way to disk (`written` or `unparked` then)."""
        if job.state is JobState.PENDING and job.estimate is None:
            self._first_page += LATENCY_WEIGHT * (fills - self._first_page)
        self.in_flight -= job.expected
        if parked:
            self.writing += kept
        else:
            self.waiting += kept
        self._add(job.wallet, kept - job.expected)

    def written(self, fills: int) -> None:
        """A page being written is on disk now."""
        self.writing -= fills
        self.parked += fills

    def unparked(self, fills: int) -> None:
        """A page being written stays in memory after all (the disk refused it)."""
        self.writing -= fills
        self.waiting += fills

    def released(self, wallet: str, fills: int, *, parked: bool = False) -> None:
        """The consumer took `fills` fills of `wallet`, from memory or (`parked`) disk."""
        if parked:
            self.parked -= fills
        else:
            self.waiting -= fills
        self._add(wallet, -fills)

    def allows(self, wallet: str, current: str | None, slots: int) -> bool:
        """May `wallet` send one more request, with `slots` requests allowed in flight?"""
        own = self.own_pages * slots * self.page_size
        ahead = AHEAD_PAGES_PER_REQUEST * slots * self.page_size
        total = self.total
        if wallet != current:
            held_ahead = total - self._by_wallet.get(current or "", 0)
            if held_ahead >= ahead:
                return False
        if self.parking and self.max_parked:
            # Every page in flight must find room on disk: a page that finds none waits
            # in memory, and there many requests in flight would add up.
            on_disk = self.in_flight + self.writing + self.parked
            return self.in_memory < self.max_fills and on_disk < self.max_parked
        # Without latency the consumer keeps up by itself: half the budget does as well
        # (200,000 fills: the same speed) and holds memory as flat as a small wallet's.
        local = self.max_fills // 2 if self.latency_known else self.max_fills
        if wallet == current:
            return total < min(local, own + ahead)
        return total < local

    def _add(self, wallet: str, fills: int) -> None:
        left = self._by_wallet.get(wallet, 0) + fills
        if left:
            self._by_wallet[wallet] = left
        else:
            self._by_wallet.pop(wallet, None)


class FetchScheduler:
    """Owns the fetching of one run; the consumer calls `iter_wallet` in plan order.

    `max_concurrency` caps the requests in flight; within it, the limit follows the tier's
    rate and the observed latency.
    """

    def __init__(
        self,
        plans: list[tuple[str, Window | None]],
        fetcher: PageFetcher,
        *,
        endpoint: Endpoint = ORDERS,
        page_size: int,
        max_concurrency: int,
        max_window_fills: int,
        logger: logging.Logger,
        max_buffered_fills: int = MAX_BUFFERED_FILLS,
        max_parked_fills: int = MAX_PARKED_FILLS,
        spool_directory: str | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._endpoint = endpoint
        self._page_size = page_size
        self._max_window_fills = max_window_fills
        self._slice_fills = slice_pages(page_size) * page_size
        self._budget = FillBudget(page_size, max_buffered_fills, max_parked_fills)
        self._spool = Spool(spool_directory)
        self._reading = ReadingSlots(READING_SLOTS)  # see FillBudget.in_memory
        self._gate = ConcurrencyGate(fetcher.limiter.burst_rate, max(1, max_concurrency))
        self._pool = WorkerPool("dome-fetch")
        self._logger = logger
        self._cond = threading.Condition()
        self._ready: list[tuple[tuple[int, ...], int, WindowJob]] = []  # a heap
        self._sequence = itertools.count()
        self._in_flight = 0
        self._head: WindowJob | None = None
        self._current = plans[0][0] if plans else None  # the wallet being emitted
        self._fatal: BaseException | None = None
        self._closed = False
        self._data_clock: int | None = None  # newest fill timestamp any response has shown
        self.counts = SchedulerCounts()
        # The API's count for each wallet's whole planned window, from its first page (the
        # completeness audit uses it: audits.py), and when that page came back.
        self.first_totals: dict[str, tuple[Window, int, float]] = {}
        self._top: dict[str, list[WindowJob]] = {}
        self._unstarted = sum(window is not None for _, window in plans)  # no request sent yet
        for index, (wallet, window) in enumerate(plans):
            jobs = [] if window is None else [WindowJob(wallet, window, (index,))]
            self._top[wallet] = jobs
            for job in jobs:
                self._queue(job)
        self._dispatcher = threading.Thread(target=self._dispatch, name="dome-dispatch")
        self._dispatcher.daemon = True

    def start(self) -> FetchScheduler:
        """Start sending requests."""
        self._dispatcher.start()
        return self

    def close(self) -> None:
        """Stop sending requests (a request in flight finishes on its own)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._pool.close()
        self._spool.close()
        counts = self.counts
        if counts.requests:
            self._logger.info(
                "Fetching: %d requests, up to %d in flight (latency ~%.0f ms, limit %d of "
                "max %d); %d windows cut into %d slices, %d first pages kept, %d dropped, "
                "%d chains' rests cut; %d pages parked on disk (peak %.0f MB)",
                counts.requests,
                counts.peak_in_flight,
                self._gate.latency * 1000,
                self._gate.limit,
                self._gate.cap,
                counts.windows_cut,
                counts.slices,
                counts.first_pages_kept,
                counts.first_pages_dropped,
                counts.rests_cut,
                self._spool.pages_parked,
                self._spool.peak_bytes / 1e6,
            )

    # Consumer side

    @property
    def all_started(self) -> bool:
        """Has a first request gone out for every wallet of the plan?"""
        return self._unstarted == 0

    @property
    def data_clock(self) -> int | None:
        """The newest fill timestamp that any response of this run has shown."""
        return self._data_clock

    def iter_wallet(self, wallet: str) -> Iterator[Event]:
        """A wallet's pages, oldest window first; `WindowDone` marks each window complete."""
        for job in self._top.pop(wallet, []):
            yield from self._drain(job)

    def _drain(self, job: WindowJob) -> Iterator[Event]:
        with self._cond:
            self._head = job  # with nothing to emit, the head may fetch beyond the budget
            self._current = job.wallet
            self._cond.notify_all()
        while True:
            with self._cond:
                while not job.pages and job.state not in (JobState.DONE, JobState.SPLIT):
                    if self._fatal is not None:
                        raise self._fatal
                    self._cond.wait(WAIT_SLICE_SECONDS)
                if self._fatal is not None:
                    raise self._fatal
                item = job.pages.popleft() if job.pages else None
                if item is not None:
                    parked = isinstance(item, Parked)
                    self._budget.released(job.wallet, len(item), parked=parked)
                    self._cond.notify_all()
            if item is not None:
                yield FillsFetched(self._spool.take(item) if isinstance(item, Parked) else item)
            elif job.state is JobState.SPLIT:
                for child in job.children:
                    yield from self._drain(child)
                return
            else:
                yield WindowDone(job.window, job.seen_through())
                return

    # Dispatcher side

    def _queue(self, job: WindowJob) -> None:
        """`job` may send its next request."""
        heapq.heappush(self._ready, (job.order, next(self._sequence), job))

    def _claim(self) -> WindowJob | None:
        """The next request to send, if the gate and the budget allow one (under the lock)."""
        if not self._ready or self._in_flight >= self._gate.limit:
            return None
        job = self._ready[0][2]
        starved = job is self._head and not job.pages  # the consumer waits on it
        if not starved and not self._budget.allows(job.wallet, self._current, self._gate.limit):
            return None
        heapq.heappop(self._ready)
        self._in_flight += 1
        job.expected = self._budget.expected(job)
        self._budget.sent(job.wallet, job.expected)
        counts = self.counts
        counts.requests += 1
        counts.peak_in_flight = max(counts.peak_in_flight, self._in_flight)
        budget = self._budget
        counts.peak_fills_held = max(counts.peak_fills_held, budget.in_memory)
        if job.state is JobState.PENDING:
            job.data_clock = self._data_clock
            if len(job.order) == 1:
                self._unstarted -= 1
        return job

    def _dispatch(self) -> None:
        """The dispatcher thread: send each request as soon as it may go."""
        while True:
            with self._cond:
                job = None
                while not self._closed and self._fatal is None:
                    job = self._claim()
                    if job is not None:
                        break
                    self._cond.wait(WAIT_SLICE_SECONDS)
                if job is None:
                    return
                params = self._params(job)
                # Pages are read in emission order; the head's, which the consumer waits
                # on, without a slot.
                reading = None if job is self._head else self._reading.slot(job.order)
            self._pool.submit(functools.partial(self._fetch, job, params, reading))

    def _params(self, job: WindowJob) -> dict[str, Any]:
        return window_params(job.wallet, job.window, self._page_size, job.paginator.current_value)

    # Worker side

    def _fetch(self, job: WindowJob, params: dict[str, Any], reading: Slot | None) -> None:
        """A worker thread: one request of `job` (its only one in flight), then its page."""
        try:
            response, seconds = self._fetcher.fetch_timed(self._endpoint, params, reading)
        except BaseException as exc:  # handed to the consumer thread, raised there
            self._fail(exc)
            return
        try:  # the page holds its reading slot until it is stored
            self._store(job, response, seconds)
        finally:
            if reading is not None:
                reading.release()

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            if self._fatal is None:
                self._fatal = exc
            self._cond.notify_all()

    def _store(self, job: WindowJob, response: Any, seconds: float) -> None:
        """`job`'s page in memory or on disk, or `job` cut; its next request queued."""
        try:
            page = page_of(response)
            newest = page.rows.newest()
            spare = self._observe(seconds, full=page.has_more)
            cut = self._cut(job.window, page, spare) if job.state is JobState.PENDING else None
            if cut is None and page.has_more and spare <= 1 and self._urgent(job):
                spare = self._gate.cap
            if cut is None and page.has_more and spare > 1:
                cut = self._cut_rest(job, page, spare)
            if cut is None:
                job.paginator.advance(response)
        except BaseException as exc:
            self._fail(exc)
            return
        with self._cond:
            self._in_flight -= 1
            self._budget.parking = self._gate.base_latency >= PARK_MIN_LATENCY_SECONDS
            self._budget.latency_known = True
            self._see(job, newest)
            if len(job.order) == 1 and job.state is JobState.PENDING and page.total is not None:
                self.first_totals[job.wallet] = (job.window, page.total, time.time())
            # The page's fills that wait for the consumer: for a cut window, its first
            # page's fills of the part that page covers, kept as that part's only page.
            kept_rows = page.rows if cut is None else cut.kept
            kept = len(kept_rows)
            park = kept > 0 and job is not self._head and self._budget.must_park(kept)
            self._budget.arrived(job, len(page.rows), kept, parked=park)
            if not park:
                self._place(job, cut, kept_rows)
                self._cond.notify_all()
                return
        # Written outside the lock; the job sends no request until its page is placed.
        rows: Rows | Parked = self._park(kept_rows)
        with self._cond:
            if isinstance(rows, Parked):
                self._budget.written(len(rows))
                parked = self._budget.parked
                self.counts.peak_fills_parked = max(self.counts.peak_fills_parked, parked)
            else:
                self._budget.unparked(len(rows))
            self._place(job, cut, rows)
            self._cond.notify_all()

    def _observe(self, seconds: float, *, full: bool) -> int:
        """Note a round trip of `seconds` (`full`: its page had more after it); the request
        slots that nothing is ready to use once this one is free (0 while any job waits to
        be sent, or requests wait at the rate limiter: more chains would only cost the
        partly empty last page of each)."""
        with self._cond:
            self._gate.observe(seconds, full=full)
            if self._ready:
                return 0
            spare = max(0, self._gate.limit - self._in_flight + 1)
        return 0 if spare and self._fetcher.limiter.saturated else spare

    def _urgent(self, job: WindowJob) -> bool:
        """Is `job` the head, with the rate limit to spare? Then its chain's rest is cut
        however busy the request slots are: the consumer waits on it, one round trip a
        page, while the other chains' pages pile up. With the limit reached, the slices'
        partly empty last pages would only cost more of it."""
        return job is self._head and not self._fetcher.limiter.saturated

    def _place(self, job: WindowJob, cut: Cut | None, rows: Rows | Parked) -> None:
        """`job`'s page in, and its next request queued; or `job` read as `cut`'s slices."""
        if cut is None:
            self._add_page(job, rows)
        else:
            self._replace(job, cut, rows)

    def _park(self, rows: Rows) -> Rows | Parked:
        """`rows` on disk, or in memory still when the disk refuses (then never again)."""
        try:
            return self._spool.park(rows)
        except OSError as exc:
            with self._cond:
                if self._budget.max_parked:
                    self._budget.max_parked = 0
                    self._logger.warning("Parking pages on disk failed, so none are: %s", exc)
            return rows

    def _see(self, job: WindowJob, newest: int | None) -> None:
        """Raise the run's and the job's data clocks (a dropped page counts too)."""
        if newest is None:
            return
        if self._data_clock is None or newest > self._data_clock:
            self._data_clock = newest
        if job.data_clock is None or newest > job.data_clock:
            job.data_clock = newest

    def _add_page(self, job: WindowJob, rows: Rows | Parked) -> None:
        if len(rows):
            job.pages.append(rows)
        if job.paginator.finished:
            job.state = JobState.DONE
        else:
            job.state = JobState.ACTIVE
            self._queue(job)

    def _cut(self, window: Window, first: Page, spare: int) -> Cut | None:
        """How to read a window whose first page is `first`, or None: as one chain."""
        if not first.has_more:
            return None
        total = estimate_fills(window, first)
        if slice_count(total, self._slice_fills, self._max_window_fills) < 2:
            return None
        covered = covered_by_first_page(window, first.rows)
        if covered is None:  # the page is dropped and the whole window sliced
            slices = split(window, self._count(total, spare))
            return Cut(None, slices, total // max(1, len(slices))) if slices else None
        rest_fills = max(0, total - len(covered.fills))
        slices = split_where_filled(
            covered.rest,
            rest_fills,
            seconds_per_fill(first.rows),
            self._count(rest_fills, spare),
            newest_first=covered.newest,
        )
        slices = slices or [covered.rest]
        return Cut(covered, slices, rest_fills // len(slices))

    def _count(self, fills: int, spare: int) -> int:
        wanted = slice_count(fills, self._slice_fills, self._max_window_fills)
        return min(max(MIN_FANOUT, spare), wanted)

    def _cut_rest(self, job: WindowJob, page: Page, spare: int) -> Cut | None:
        """The rest of `job`'s window, after `page`, as up to `spare` slices of a page or
        more each; or None: its chain walks on (too little left, or the page shows no
        order). The pages so far and `page`'s complete part are the covered part."""
        covered = covered_by_first_page(job.window, page.rows)
        if covered is None:
            return None
        rest_fills = estimate_rest(job.window, page, job.paginator.rows_read, covered.rest)
        if rest_fills <= self._page_size:  # one request reads it anyway
            return None
        count = min(spare, math.ceil(REST_SLICES_PER_PAGE * rest_fills / self._page_size))
        density = seconds_per_fill(page.rows)
        slices = split_where_filled(
            covered.rest, rest_fills, density, count, newest_first=covered.newest
        )
        if not slices:
            return None
        return Cut(covered, slices, rest_fills // len(slices), rest=True)

    def _replace(self, job: WindowJob, cut: Cut, kept: Rows | Parked) -> None:
        """Read `job` as its slices, queued by their place in emission order; `kept` is the
        covered part's page (`cut.kept`, in memory or parked)."""
        job.state = JobState.SPLIT
        for index, part in enumerate(cut.parts()):
            order = (*job.order, index)
            if isinstance(part, Covered):  # complete already: the pages so far, kept
                child = WindowJob(job.wallet, part.window, order, JobState.DONE)
                child.data_clock = job.data_clock
                child.pages.extend(job.pages)  # the pages of a chain whose rest is cut
                job.pages.clear()
                if len(kept):
                    child.pages.append(kept)
            else:
                child = WindowJob(job.wallet, part, order, estimate=cut.fills_per_slice)
                self._queue(child)
            job.children.append(child)
        counts = self.counts
        counts.slices += len(cut.slices)
        if cut.rest:
            counts.rests_cut += 1
        elif cut.covered is None:
            counts.windows_cut += 1
            counts.first_pages_dropped += 1
        else:
            counts.windows_cut += 1
            counts.first_pages_kept += 1
        if cut.rest:
            what = "has slots to spare; reading the rest of its chain"
        else:
            what = "is long; reading it" + (" (its first page kept)" if cut.covered else "")
        self._logger.debug(
            "Wallet %s: window [%d, %d] %s as %d slices",
            job.wallet,
            job.window.start,
            job.window.end,
            what,
            len(cut.slices),
        )
