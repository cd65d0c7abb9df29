"""One sync of a per-wallet stream: what to read for each wallet, how, and the checkpoints.

Built once per run by the stream. It holds the resolved settings, the Dome client (client.py:
the only place requests are made, behind the tap's one rate limiter), and owns the fetch
scheduler, the progress line and the checkpoint policy. The stream only turns its events
into records and STATE messages.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, MutableMapping
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
        states: list[tuple[str, MutableMapping[str, Any]]],
        replication_key: str,
        logger: logging.Logger,
    ) -> None:
        self.settings = settings
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
        self._remaining: deque[str] = deque()
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
            yield from scheduler.iter_wallet(wallet)
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

    def _scheduler_for(self, wallet: str) -> FetchScheduler:
        """The running scheduler, or a new one when syncs come out of the planned order."""
        if self._scheduler is not None and self._remaining and self._remaining[0] == wallet:
            self._remaining.popleft()
            return self._scheduler
        self.close()
        wallets = list(self.wallets)
        order = wallets[wallets.index(wallet) :] if wallet in wallets else [wallet]
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
        self._progress = Progress(
            wallets_total=len(order),
            stats=self._client.stats,
            logger=self._logger,
            interval=settings.progress_interval,
        ).start()
        self._remaining = deque(order[1:])
        return self._scheduler
