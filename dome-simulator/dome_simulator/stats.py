"""Request statistics, so tests can check what a client actually did.

Requests are counted at arrival (after any ``arrival_latency``; before latency, auth or
faults), including the ones answered with 429 or an injected failure, so
``max_in_1s``/``max_in_10s`` show the client's real peak rates over sliding windows
``(t - 1, t]`` and ``(t - 10, t]``. ``rate_limited`` counts the 429s the rate-limit budget
gave (``by_status[429]`` also counts injected ones); ``max_in_flight`` is the most requests
open at once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

__all__ = ["RequestStats"]


class RequestStats:
    """Thread-safe counters; ``snapshot()`` returns a JSON-ready dict."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget everything (the in-flight count stays: those requests are still open)."""
        with self._lock:
            self._requests = 0
            self._by_status: Counter[int] = Counter()
            self._by_wallet: Counter[str] = Counter()
            self._by_route: Counter[str] = Counter()
            # route -> [first, last] arrival, seconds since the statistics began
            self._span_by_route: dict[str, list[float]] = {}
            self._since = self._clock()
            self._rows = 0
            self._dropped = 0
            self._limited = 0
            self._last_1s: deque[float] = deque()
            self._last_10s: deque[float] = deque()
            self._max_1s = 0
            self._max_10s = 0
            self._in_flight = getattr(self, "_in_flight", 0)
            self._max_in_flight = self._in_flight

    def arrive(self, wallet: str | None, route: str | None = None) -> None:
        """Count a request the moment it arrives (``route``: orders, activity, ...)."""
        with self._lock:
            now = self._clock()
            self._requests += 1
            if wallet:
                self._by_wallet[wallet] += 1
            if route:
                self._by_route[route] += 1
                at = round(now - self._since, 6)
                self._span_by_route.setdefault(route, [at, at])[1] = at
            for window, span in ((self._last_1s, 1.0), (self._last_10s, 10.0)):
                window.append(now)
                while window[0] <= now - span:
                    window.popleft()
            self._max_1s = max(self._max_1s, len(self._last_1s))
            self._max_10s = max(self._max_10s, len(self._last_10s))
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def respond(self, status: int | None, rows: int = 0, *, limited: bool = False) -> None:
        """Record how a request ended; ``None`` means the connection was dropped."""
        with self._lock:
            self._limited += limited
            if status is None:
                self._dropped += 1
            else:
                self._by_status[status] += 1
            self._rows += rows

    def finish(self) -> None:
        """The request's handler is done (response written or connection dropped)."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    def snapshot(self) -> dict[str, Any]:
        """``requests, by_status, max_in_1s, max_in_10s, rows_served, rate_limited,
        requests_by_wallet, requests_by_route`` (API endpoints; unknown routes uncounted),
        ``arrivals_by_route`` (each route's first and last arrival, in seconds since the
        statistics began or were reset: which endpoint's requests overlapped which), plus
        ``dropped`` (connections closed without a response) and in-flight counts."""
        with self._lock:
            return {
                "requests": self._requests,
                "by_status": dict(sorted(self._by_status.items())),
                "max_in_1s": self._max_1s,
                "max_in_10s": self._max_10s,
                "rows_served": self._rows,
                "rate_limited": self._limited,
                "requests_by_wallet": dict(self._by_wallet),
                "requests_by_route": dict(self._by_route),
                "arrivals_by_route": {r: list(span) for r, span in self._span_by_route.items()},
                "dropped": self._dropped,
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
            }
