"""One limiter shared by every request of a run, enforcing all of the tier's budgets.

Dome enforces a per-second and a per-10-second budget at once. A sorted log of send times
keeps every window of either length under its budget, wherever the server's windows start.

Each caller reserves the next free slot and sleeps until it, so callers leave in the order
they asked (the scheduler asks in emission order) and no thread wakes just to find the
slot taken. A thread may wake late (the machine is busy, the GIL is taken), and the server
counts a request when it arrives: so on waking, a caller moves its entry in the log to
the moment it really leaves, and the slots reserved after that see the true time.
Slots are spaced too (half a budget's average gap): a whole budget released at one
instant would reach the server as one bunch, and the server would count the last of it
late enough to share a window with the next bunch. A 429 pauses everybody, not just the
thread that got it. A run's log starts with the send times the run before it left, when
they are still inside a window (`seed`, ledger.py): the server's windows hold them too.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterable

# Requests are counted at arrival, a moment after they leave; slack keeps jitter in that
# moment from pushing one request too many into a server window: at least
# WINDOW_SLACK_SECONDS, or WINDOW_SLACK_SHARE of a longer window (0.3 s of 10 s). Measured
# on a loaded machine against the simulator, a server saw its requests up to about 0.14 s
# closer together than they left (load average 6, the simulator in the same process: 0.1 s
# let a 429 through). The margin costs an eighth of a second's burst, which on the Free tier
# (whose per-second budget is also its sustained rate) is the ceiling: about 0.87.
WINDOW_SLACK_SECONDS = 0.15
WINDOW_SLACK_SHARE = 0.03
# A 429 although the log kept every budget means the server counts requests further from
# when they left than the slack allows (latency before its counter, more jitter than
# measured here) or that another client spends the same key's budget. Each such 429 widens
# every window's slack by SLACK_GROWTH, at most once per shortest window (one clash brings
# several 429s at once), up to MAX_SLACK_SHARE of the window (0.5 s of 1 s).
SLACK_GROWTH = 1.5
MAX_SLACK_SHARE = 0.5
# Consecutive slots are at least this share of a budget's average gap (window / limit)
# apart: bursts still run at twice the budget's average rate.
SPACING_SHARE = 0.5


def window_slack(window: float) -> float:
    """The slack added to a budget's window."""
    return max(WINDOW_SLACK_SECONDS, WINDOW_SLACK_SHARE * window)


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
        self._windows = [(float(window), int(limit)) for window, limit in budgets]
        self._slack = [window_slack(window) for window, _ in self._windows]
        self._budgets = self._with_slack()
        self._keep = max(limit for _, limit in self._budgets)  # entries the budgets look at
        self._widened_at: float | None = None
        self._log: list[float] = []  # send times, sorted; reservations in the future too
        self._spacing = SPACING_SHARE * max(window / limit for window, limit in budgets)
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

    def _with_slack(self) -> list[tuple[float, int]]:
        return [
            (w + slack, limit) for (w, limit), slack in zip(self._windows, self._slack, strict=True)
        ]

    @property
    def slack(self) -> float:
        """The seconds added to the shortest window (see WINDOW_SLACK_SECONDS, `widen`)."""
        return self._slack[self._windows.index(min(self._windows))]

    def widen(self) -> float | None:
        """After a 429 that the log did not foresee: widen every window's slack (see
        SLACK_GROWTH). Returns the shortest window's new slack; None when it was widened
        less than that window ago (the same clash) or every slack is at its cap."""
        with self._lock:
            now = self._clock()
            shortest = min(window for window, _ in self._budgets)
            if self._widened_at is not None and now - self._widened_at < shortest:
                return None
            wider = [
                min(MAX_SLACK_SHARE * window, slack * SLACK_GROWTH)
                for (window, _), slack in zip(self._windows, self._slack, strict=True)
            ]
            if wider == self._slack:
                return None
            self._slack = wider
            self._budgets = self._with_slack()
            self._widened_at = now
        return self.slack

    @property
    def burst_rate(self) -> float:
        """Requests per second allowed over the shortest window (Dev: 100, not 50)."""
        window, limit = min(self._budgets)
        return limit / window

    @property
    def saturated(self) -> bool:
        """Is any caller waiting for its slot (a reservation in the future)? Then the
        budget, not the number of requests in flight, sets the pace."""
        with self._lock:
            return bool(self._log) and self._log[-1] > self._clock()

    def acquire(self) -> float:
        """Wait for a free slot and take it; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                slot = max(now, self._free_at())
                self._insert(slot)
            if slot > now:
                self._sleep(slot - now)
                waited += slot - now
            with self._lock:
                self._discard(slot)
                now = self._clock()
                if now >= self._paused_until:
                    self._insert(max(now, slot))  # when it really leaves
                    return waited
            # A 429 paused everyone while this caller slept: queue again.

    @property
    def horizon(self) -> float:
        """The longest window the budgets look back over, slack included (10.3 s)."""
        return max(window for window, _ in self._budgets)

    def sent_within(self, seconds: float) -> list[float]:
        """When the requests of the last `seconds` left (this limiter's clock), oldest
        first; slots reserved for callers still asleep are not sends yet."""
        with self._lock:
            now = self._clock()
            return [at for at in self._log if now - seconds < at <= now]

    def seed(self, sent: Iterable[float]) -> None:
        """Count requests that left before this limiter existed (another run's, on this
        limiter's clock: ledger.py), so the budgets see what the server sees. Times in the
        future are not sends: they are left out."""
        with self._lock:
            now = self._clock()
            for at in sent:
                if at <= now:
                    self._insert(at)

    def _insert(self, at: float) -> None:
        bisect.insort(self._log, at)
        if len(self._log) > 2 * self._keep:
            del self._log[: -self._keep]

    def _discard(self, at: float) -> None:
        index = bisect.bisect_left(self._log, at)
        if index < len(self._log) and self._log[index] == at:
            del self._log[index]

    def _free_at(self) -> float:
        """The earliest time a new request fits every budget, given the slots taken."""
        at = self._paused_until
        log = self._log
        if log:
            at = max(at, log[-1] + self._spacing)
        for window, limit in self._budgets:
            if len(log) >= limit:
                at = max(at, log[-limit] + window)
        return at

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (after a 429 with Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
