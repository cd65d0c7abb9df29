"""One sync of a per-wallet stream: what to read for each wallet, how, and the checkpoints.

Built once per run by the stream. It holds the resolved settings, the Dome client (client.py:
the only place requests are made, behind the tap's one rate limiter), and owns the fetch
scheduler, the progress line and the checkpoint policy. The stream only turns its events
into records and STATE messages.

Streams sync one after another, and the end of one is where the tier's budget goes unused:
its last requests come back one round trip after another while the next stream has sent
nothing yet. So once this run's scheduler has sent a first request for every wallet, it
calls `on_all_started` (once): the tap starts the next per-wallet stream's fetching
(`prefetch`), within that stream's own memory budget, and that stream finds its first
pages waiting when its turn comes.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tap_dome.checkpoints import Checkpoints
from tap_dome.client import DomeClient, Endpoint
from tap_dome.events import Event
from tap_dome.progress import Progress
from tap_dome.scheduler import FetchScheduler
from tap_dome.settings import RunSettings
from tap_dome.windows import Window


class SyncRun:
    """The run's machinery; `events(wallet)` is called once per wallet, in plan order."""

    def __init__(
        self,
        settings: RunSettings,
        *,
        wallets: tuple[str, ...],
        client: DomeClient,
        endpoint: Endpoint,
        states: list[tuple[str, Mapping[str, Any] | None]],
        replication_key: str,
        logger: logging.Logger,
        name: str,
        on_all_started: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.name = name  # the stream's, for its progress line
        self.wallets = wallets
        # Kept past the scheduler's end, for the streams that follow (services.py).
        self.first_totals: dict[str, tuple[Window, int, float]] = {}
        self.data_clock: int | None = None
        self.checkpoints = Checkpoints(
            replication_key=replication_key,
            every_fills=settings.max_window_fills // 2,
        )
        self.checkpoints.track(states)  # a bad bookmark fails here, before any request
        self._client = client
        self._endpoint = endpoint
        self._logger = logger
        self._scheduler: FetchScheduler | None = None
        self._progress: Progress | None = None
        self._remaining: deque[str] = deque()  # wallets the scheduler will hand over next
        self._on_all_started = on_all_started
        self.finished = False  # every wallet of the plan has been read

    def window(self, wallet: str) -> Window | None:
        """What to read for a wallet: from its bookmark minus lookback (or start_date) on."""
        settings = self.settings
        start = settings.start_time
        bookmark = self.checkpoints.bookmark(wallet)
        if bookmark is not None:
            if settings.end_is_fixed and bookmark >= settings.end_time:
                return None
            start = max(start, bookmark - settings.lookback)
        start = min(start, settings.end_time - 1)
        return Window(start, settings.end_time)

    def events(self, wallet: str) -> Iterator[Event]:
        """The wallet's fills and completed windows, oldest first."""
        scheduler = self._scheduler_for(wallet)
        try:
            for event in scheduler.iter_wallet(wallet):
                yield event
                if self._on_all_started is not None and scheduler.all_started:
                    hook, self._on_all_started = self._on_all_started, None
                    hook()
        except BaseException:
            self.close()
            raise
        if self._progress is not None:
            self._progress.wallets_done += 1
        if not self._remaining:
            self.close()
            self.finished = True

    def count_fills(self, count: int) -> None:
        """Fills handed to the output: for the checkpoint cadence and the progress line."""
        self.checkpoints.fills_emitted(count)
        if self._progress is not None:
            self._progress.fills += count

    def close(self) -> None:
        """Stop the workers and log the final progress line."""
        if self._scheduler is not None:
            self._scheduler.close()
            self.first_totals.update(self._scheduler.first_totals)
            clock = self._scheduler.data_clock
            if clock is not None and (self.data_clock is None or clock > self.data_clock):
                self.data_clock = clock
            self._scheduler = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self._remaining.clear()

    def prefetch(self) -> None:
        """Start fetching every wallet's pages now, before the stream's turn (see above)."""
        if self._scheduler is None and self.wallets and not self.finished:
            self._logger.info(
                "Reading ahead: %d wallet(s), while the stream before this one finishes",
                len(self.wallets),
            )
            self._start(list(self.wallets))

    def _scheduler_for(self, wallet: str) -> FetchScheduler:
        """The running scheduler, or a new one when syncs come out of the planned order."""
        if self._scheduler is None or not self._remaining or self._remaining[0] != wallet:
            self.close()
            wallets = list(self.wallets)
            self._start(wallets[wallets.index(wallet) :] if wallet in wallets else [wallet])
        scheduler = self._scheduler
        assert scheduler is not None
        if self._progress is None:
            self._progress = Progress(
                label=self.name,
                noun=self._endpoint.noun,
                wallets_total=len(self._remaining),
                stats=self._client.fetcher.stats_for(self._endpoint.path),
                logger=self._logger,
                interval=self.settings.progress_interval,
            ).start()
        self._remaining.popleft()
        return scheduler

    def _start(self, order: list[str]) -> None:
        """A scheduler for `order`'s wallets, sending requests from now on."""
        settings = self.settings
        self._scheduler = FetchScheduler(
            [(w, self.window(w)) for w in order],
            self._client.fetcher,
            endpoint=self._endpoint,
            page_size=settings.page_size,
            max_concurrency=settings.max_concurrency,
            max_window_fills=settings.max_window_fills,
            logger=self._logger,
        ).start()
        self._remaining = deque(order)
