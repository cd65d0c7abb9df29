"""Concurrent fetching of many wallets' windows, handed out strictly in emission order.

singer-sdk emits one partition (wallet) at a time. Waiting on one request at a time would
leave most of the API tier unused, so worker threads fetch pages of the next windows while
the current one is emitted. Every page of one window is fetched in sequence (the cursor
chains them); different windows, of one wallet or of many, are fetched in parallel.

Memory stays flat: all windows together hold at most `page_budget` pages, buffered or in
flight (default three per worker). Pending windows are opened earliest first in emission
order and workers serve the earliest open window, so pages near the consumer come first.
The window the consumer waits on may always fetch, even with the budget spent on later
windows, so it is never starved and nothing deadlocks. The first error
that retrying cannot fix stops every worker and is raised to the consumer.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from tap_dome.events import Event, FillsFetched, WindowDone
from tap_dome.fetch import PageFetcher
from tap_dome.page import page_of
from tap_dome.pagination import DomePaginator
from tap_dome.windows import Window, estimate_fills, split

WAIT_SLICE_SECONDS = 1.0


class JobState(enum.Enum):
    """Where a window job stands."""

    PENDING = "pending"
    ACTIVE = "active"
    DONE = "done"
    SPLIT = "split"


@dataclass(eq=False)
class WindowJob:
    """One window of one wallet, walked page by page."""

    wallet: str
    window: Window
    order: tuple[int, ...]
    state: JobState = JobState.PENDING
    paginator: DomePaginator = field(default_factory=DomePaginator)
    pages: deque[list[dict[str, Any]]] = field(default_factory=deque)
    children: list[WindowJob] = field(default_factory=list)
    in_flight: bool = False
    first_page: bool = True
    # The API's data clock as known when this window's first request was sent, raised by
    # the window's own fills: the window is complete through min(end, this).
    data_clock: int | None = None

    def seen_through(self) -> int | None:
        """The newest second this window is known complete through (see WindowDone)."""
        return None if self.data_clock is None else min(self.window.end, self.data_clock)


class FetchScheduler:
    """Owns the worker threads of one run; the consumer calls `iter_wallet` in plan order."""

    def __init__(
        self,
        plans: list[tuple[str, Window | None]],
        fetcher: PageFetcher,
        *,
        page_size: int,
        max_concurrency: int,
        max_window_fills: int,
        logger: logging.Logger,
        page_budget: int | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._page_size = page_size
        self._max_window_fills = max_window_fills
        self._page_budget = page_budget or max(4, 3 * max_concurrency)
        self._max_open = 4 * max(1, max_concurrency)
        self._pages_held = 0  # buffered in jobs plus requests in flight
        self._logger = logger
        self._cond = threading.Condition()
        self._pending: list[tuple[tuple[int, ...], int, WindowJob]] = []  # a heap
        self._sequence = itertools.count()
        self._wanted: WindowJob | None = None
        self._current: WindowJob | None = None
        self._open: list[WindowJob] = []
        self._top: dict[str, list[WindowJob]] = {}
        self._fatal: BaseException | None = None
        self._closed = False
        self._data_clock: int | None = None  # newest fill timestamp any response has shown
        for index, (wallet, window) in enumerate(plans):
            jobs = [] if window is None else [WindowJob(wallet, window, (index,))]
            self._top[wallet] = jobs
            for job in jobs:
                self._push(job)
        self._threads = [
            threading.Thread(target=self._work, name=f"dome-fetch-{i}", daemon=True)
            for i in range(max(1, max_concurrency))
        ]

    def start(self) -> FetchScheduler:
        """Start the workers."""
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        """Stop the workers (a request in flight finishes on its own)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # Consumer side

    @property
    def data_clock(self) -> int | None:
        """The newest fill timestamp that any response of this run has shown."""
        return self._data_clock

    def iter_wallet(self, wallet: str) -> Iterator[Event]:
        """A wallet's pages, oldest window first; `WindowDone` marks each window complete."""
        for job in self._top.get(wallet, []):
            yield from self._drain(job)

    def _drain(self, job: WindowJob) -> Iterator[Event]:
        self._current = job
        while True:
            orders: list[dict[str, Any]] | None = None
            with self._cond:
                while True:
                    if self._fatal is not None:
                        raise self._fatal
                    if job.pages:
                        orders = job.pages.popleft()
                        self._pages_held -= 1
                        self._cond.notify_all()
                        break
                    if job.state is JobState.SPLIT or job.state is JobState.DONE:
                        break
                    if job.state is JobState.PENDING and self._wanted is not job:
                        self._wanted = job
                        self._cond.notify_all()
                    self._cond.wait(WAIT_SLICE_SECONDS)
                state = job.state if orders is None else None
                if state is JobState.DONE:
                    self._open.remove(job)
                    self._cond.notify_all()
            if orders is not None:
                yield FillsFetched(orders)
            elif state is JobState.SPLIT:
                for child in job.children:
                    yield from self._drain(child)
                return
            else:
                yield WindowDone(job.window, job.seen_through())
                return

    # Worker side

    def _push(self, job: WindowJob) -> None:
        heapq.heappush(self._pending, (job.order, next(self._sequence), job))

    def _activate(self, job: WindowJob) -> None:
        job.state = JobState.ACTIVE
        self._open.append(job)

    def _next_job(self) -> WindowJob | None:
        wanted = self._wanted
        if wanted is not None and wanted.state is JobState.PENDING:
            self._activate(wanted)  # its heap entry is skipped when it comes up
        while self._pending and (
            len(self._open) < self._max_open or self._pending[0][2].state is not JobState.PENDING
        ):
            job = heapq.heappop(self._pending)[2]
            if job.state is JobState.PENDING:
                self._activate(job)
        ready = [job for job in self._open if job.state is JobState.ACTIVE and not job.in_flight]
        if not ready:
            return None
        job = min(ready, key=lambda job: job.order)
        if self._pages_held >= self._page_budget and job is not self._current:
            return None
        return job

    def _params(self, job: WindowJob) -> dict[str, Any]:
        params: dict[str, Any] = {
            "user": job.wallet,
            "start_time": job.window.start,
            "end_time": job.window.end,
            "limit": self._page_size,
        }
        token = job.paginator.current_value
        if token is not None:
            params.update(token.as_params())
        return params

    def _work(self) -> None:
        while True:
            with self._cond:
                job = None
                while not self._closed and self._fatal is None:
                    job = self._next_job()
                    if job is not None:
                        break
                    self._cond.wait(WAIT_SLICE_SECONDS)
                if job is None:
                    return
                job.in_flight = True
                self._pages_held += 1
                params = self._params(job)
                if job.first_page:
                    job.data_clock = self._data_clock
            try:
                response = self._fetcher.fetch(params)
                with self._cond:
                    job.in_flight = False
                    self._accept(job, response)
                    self._cond.notify_all()
            except BaseException as exc:  # handed to the consumer thread, raised there
                with self._cond:
                    if self._fatal is None:
                        self._fatal = exc
                    self._cond.notify_all()
                return

    def _accept(self, job: WindowJob, response: requests.Response) -> None:
        page = page_of(response)
        newest = newest_timestamp(page.orders)
        if newest is not None:
            if self._data_clock is None or newest > self._data_clock:
                self._data_clock = newest
            if job.data_clock is None or newest > job.data_clock:
                job.data_clock = newest
        if job.first_page:
            job.first_page = False
            estimate = estimate_fills(job.window, page) if page.has_more else len(page.orders)
            children = split(job.window, estimate, self._max_window_fills)
            if children:
                self._pages_held -= 1  # the probe page is dropped
                self._split(job, children)
                return
        job.paginator.advance(response)
        if page.orders:
            job.pages.append(page.orders)
        else:
            self._pages_held -= 1
        if job.paginator.finished:
            job.state = JobState.DONE

    def _split(self, job: WindowJob, windows: list[Window]) -> None:
        """Replace `job` by its slices, queued by their place in emission order."""
        job.children = [
            WindowJob(job.wallet, window, (*job.order, i)) for i, window in enumerate(windows)
        ]
        job.state = JobState.SPLIT
        self._open.remove(job)
        for child in job.children:
            self._push(child)
        self._logger.debug(
            "Wallet %s: window [%d, %d] holds too many fills; reading it as %d slices",
            job.wallet,
            job.window.start,
            job.window.end,
            len(windows),
        )


def newest_timestamp(fills: list[dict[str, Any]]) -> int | None:
    """The largest `timestamp` among raw fills (numbers or numeric strings), or None."""
    newest: int | None = None
    for fill in fills:
        value = fill.get("timestamp")
        if value is None:
            continue
        stamp = value if type(value) is int else int(float(value))
        if newest is None or stamp > newest:
            newest = stamp
    return newest
