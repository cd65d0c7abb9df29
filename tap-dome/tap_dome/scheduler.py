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
requests in flight stay within a budget (`FillBudget`, budget.py) that grows with the
in-flight limit, not with the data, up to a fixed cap. A page is read from its socket only
once one of `READING_SLOTS` is free, and holds it until it is stored: under latency, the requests
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

import functools
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tap_dome.budget import (
    MAX_BUFFERED_FILLS,
    MAX_PARKED_FILLS,
    READING_SLOTS,
    FillBudget,
    slice_pages,
)
from tap_dome.client import ORDERS, Endpoint, window_params
from tap_dome.concurrency import (
    ConcurrencyGate,
    ReadingSlots,
    Slot,
    WorkerPool,
)
from tap_dome.events import Event, FillsFetched, WindowDone
from tap_dome.fetch import PageFetcher
from tap_dome.jobs import JobState, WindowJob
from tap_dome.page import Page, page_of
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
# A window is cut into this many slices at once at least (more when more request slots are
# free); a slice that still holds too many fills is cut again when its first page shows
# it. Cutting step by step keeps the slices that fall where the guess of where the fills
# are was wrong (one request each, when empty) few.
MIN_FANOUT = 16
# A chain's rest is cut into this many slices per page it holds (so that most hold under a
# page: one round trip), within the free request slots.
REST_SLICES_PER_PAGE = 1.25
# A base latency (the shortest recent round trip: concurrency.py) at least this long parks
# pages on disk (see FillBudget): the head's cursor chain walks one round trip at a time
# while the other chains run ahead, and their pages would fill the memory budget and stop
# the fetching. With a shorter one (a fast network, a local server) the consumer catches up
# with its head by itself, and fetching far ahead would only cost memory: more big pages in
# flight at once. The average would not do: on a busy machine, requests to a local server
# queue for CPU, and their round trips average 35-85 ms while the fastest take a few.
PARK_MIN_LATENCY_SECONDS = 0.05


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
            self._logger.info(self._closing_line())

    def _closing_line(self) -> str:
        """What the fetching did, for the log: the cutting and the parking only if any."""
        counts = self.counts
        parts = [
            f"Fetching: {_plural(counts.requests, 'request')}, up to {counts.peak_in_flight} "
            f"in flight (latency ~{self._gate.latency * 1000:.0f} ms, limit "
            f"{self._gate.limit} of max {self._gate.cap})"
        ]
        if counts.windows_cut or counts.rests_cut:
            parts.append(
                f"{_plural(counts.windows_cut, 'window')} cut into "
                f"{_plural(counts.slices, 'slice')}, {counts.first_pages_kept} first pages "
                f"kept, {counts.first_pages_dropped} dropped, {counts.rests_cut} chains' "
                "rests cut"
            )
        if self._spool.pages_parked:
            parts.append(
                f"{_plural(self._spool.pages_parked, 'page')} parked on disk "
                f"(peak {self._spool.peak_bytes / 1e6:.0f} MB)"
            )
        return "; ".join(parts)

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


def _plural(count: int, noun: str) -> str:
    """`1 request`, `2 requests`."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
