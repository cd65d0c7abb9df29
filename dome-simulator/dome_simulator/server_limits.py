"""The API's two rate-limit buckets: requests per second and per 10 seconds.

Both are sliding windows over arrival times (``(t - 1, t]`` and ``(t - 10, t]``),
so a client must respect both at once, as on the real tiers. Only admitted
requests use budget: a client that keeps retrying into a 429 is not locked out
forever, but every 429 is still counted in the request statistics.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["TIER_LIMITS", "SlidingWindowLimiter", "parse_rate_limit", "retry_after_header"]

#: Tier name -> (requests per second, requests per 10 seconds), from the Dome API pricing page.
TIER_LIMITS: dict[str, tuple[int, int]] = {"free": (10, 100), "dev": (100, 500), "pro": (300, 3000)}


def parse_rate_limit(value: object) -> tuple[int, int] | None:
    """Accept a tier name, ``"none"``/``None``, or a ``(per_second, per_10s)`` pair."""
    if value is None or value == "none":
        return None
    if isinstance(value, str):
        try:
            return TIER_LIMITS[value.lower()]
        except KeyError:
            raise ValueError(
                f"unknown rate-limit tier {value!r}; use {sorted(TIER_LIMITS)}"
            ) from None
    if isinstance(value, list | tuple) and len(value) == 2:
        per_second, per_10s = int(value[0]), int(value[1])
        if per_second < 1 or per_10s < 1:
            raise ValueError("rate limits must be >= 1")
        return per_second, per_10s
    raise ValueError("rate_limit must be a tier name, null, or [per_second, per_10_seconds]")


class SlidingWindowLimiter:
    """Admits a request only if both windows still have room; see the module docstring."""

    def __init__(
        self, per_second: int, per_10s: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_second = per_second
        self.per_10s = per_10s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_1s: deque[float] = deque()
        self._last_10s: deque[float] = deque()

    def admit(self) -> float | None:
        """None when admitted, else the seconds until a slot frees (for Retry-After)."""
        with self._lock:
            now = self._clock()
            while self._last_1s and self._last_1s[0] <= now - 1.0:
                self._last_1s.popleft()
            while self._last_10s and self._last_10s[0] <= now - 10.0:
                self._last_10s.popleft()
            wait = 0.0
            if len(self._last_1s) >= self.per_second:
                wait = self._last_1s[-self.per_second] + 1.0 - now
            if len(self._last_10s) >= self.per_10s:
                wait = max(wait, self._last_10s[-self.per_10s] + 10.0 - now)
            if wait > 0.0:
                return wait
            self._last_1s.append(now)
            self._last_10s.append(now)
            return None


def retry_after_header(wait: float) -> int:
    """Retry-After as the API would send it: whole seconds, at least 1."""
    return max(1, math.ceil(wait))
