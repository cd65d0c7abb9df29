"""One limiter shared by every request of a run, enforcing all of the tier's budgets.

Dome enforces a per-second and a per-10-second budget at once. A sliding log of send times
keeps every window of either length under its budget, wherever the server's windows start.
A 429 pauses everybody, not just the thread that got it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

# Requests leave at send time but are counted at arrival; a little slack keeps jitter in
# latency from pushing two requests into the same server window.
WINDOW_SLACK_SECONDS = 0.05


class RateLimiter:
    """Blocks callers of `acquire()` until a request fits every (window, budget) pair."""

    def __init__(
        self,
        budgets: list[tuple[float, int]],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not budgets or any(window <= 0 or limit < 1 for window, limit in budgets):
            raise ValueError(f"rate budgets must be positive, got {budgets!r}")
        self._budgets = [(window + WINDOW_SLACK_SECONDS, int(limit)) for window, limit in budgets]
        self._log: deque[float] = deque(maxlen=max(limit for _, limit in self._budgets))
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def for_rates(cls, per_second: float, per_10_seconds: int) -> RateLimiter:
        """The limiter for a tier: `per_second` may be fractional (e.g. 0.5 = one per 2 s)."""
        if per_second <= 0 or per_10_seconds < 1:
            raise ValueError("requests_per_second and requests_per_10_seconds must be positive")
        # Below one per second, the budget is "one request per 1/rate seconds".
        first = (1.0, int(per_second)) if per_second >= 1 else (1.0 / per_second, 1)
        return cls([first, (10.0, per_10_seconds)])

    def acquire(self) -> float:
        """Wait for a free slot and take it; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                delay = self._delay(now)
                if delay <= 0:
                    self._log.append(now)
                    return waited
            self._sleep(delay)
            waited += delay

    def _delay(self, now: float) -> float:
        delay = self._paused_until - now
        log = self._log
        for window, limit in self._budgets:
            if len(log) >= limit:
                oldest_in_window = log[-limit]
                delay = max(delay, oldest_in_window + window - now)
        return delay

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (after a 429 with Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
