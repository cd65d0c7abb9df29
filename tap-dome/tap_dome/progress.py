"""A progress line at a steady cadence, so a long backfill shows where it stands."""

from __future__ import annotations

import logging
import threading
import time

from tap_dome.fetch import FetchStats


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Counts what one stream's sync did; a daemon thread logs it every `interval` seconds.

    The line names its stream (`label`): under Meltano only the message is shown, not the
    logger's name. `stats` are the stream's own requests (`PageFetcher.stats_for`), and its
    time runs from the first of them: a stream read ahead (run.py) began before its turn.
    """

    def __init__(
        self,
        *,
        label: str,
        noun: str,
        wallets_total: int,
        stats: FetchStats,
        logger: logging.Logger,
        interval: float,
    ) -> None:
        self.label = label
        self.noun = noun
        self.wallets_total = wallets_total
        self.wallets_done = 0
        self.fills = 0
        self._stats = stats
        self._logger = logger
        self._interval = interval
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dome-progress", daemon=True)

    def start(self) -> Progress:
        """Begin logging at the cadence."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the ticker and log the final line."""
        self._stop.set()
        self.log(final=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.log()

    def line(self, *, final: bool = False) -> str:
        """The progress line (also used by tests)."""
        stats = self._stats
        elapsed = max(time.monotonic() - min(self._started, stats.started), 1e-6)
        parts = [
            f"wallets {self.wallets_done}/{self.wallets_total}",
            f"{self.noun} {self.fills:,} ({self.fills / elapsed:,.0f}/s)",
            f"requests {stats.requests:,} ({stats.requests / elapsed:.1f}/s)",
            f"429s {stats.rate_limited}",
            f"retries {stats.retries}",
            f"elapsed {_duration(elapsed)}",
        ]
        ahead = self._started - stats.started
        if ahead >= 1:  # its first requests went out while the stream before it synced
            parts[-1] += f" ({_duration(ahead)} of it read ahead, before its turn)"
        remaining = self.wallets_total - self.wallets_done
        if not final and self.wallets_done and remaining:
            parts.append(f"ETA ~{_duration(elapsed / self.wallets_done * remaining)}")
        return f"{self.label} {'done' if final else 'progress'}: " + ", ".join(parts)

    def log(self, *, final: bool = False) -> None:
        """Log the progress line now."""
        self._logger.info(self.line(final=final))
