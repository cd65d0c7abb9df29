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
    """Counts what the run did; a daemon thread logs it every `interval` seconds."""

    def __init__(
        self,
        *,
        wallets_total: int,
        stats: FetchStats,
        logger: logging.Logger,
        interval: float,
    ) -> None:
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
        elapsed = max(time.monotonic() - self._started, 1e-6)
        stats = self._stats
        parts = [
            f"wallets {self.wallets_done}/{self.wallets_total}",
            f"fills {self.fills:,} ({self.fills / elapsed:,.0f}/s)",
            f"requests {stats.requests:,} ({stats.requests / elapsed:.1f}/s)",
            f"429s {stats.rate_limited}",
            f"retries {stats.retries}",
            f"elapsed {_duration(elapsed)}",
        ]
        remaining = self.wallets_total - self.wallets_done
        if not final and self.wallets_done and remaining:
            parts.append(f"ETA ~{_duration(elapsed / self.wallets_done * remaining)}")
        return ("done: " if final else "progress: ") + ", ".join(parts)

    def log(self, *, final: bool = False) -> None:
        """Log the progress line now."""
        self._logger.info(self.line(final=final))
