"""Switchable faults: API-version differences, injected failures, rate limits, latency.

Everything is deterministic and counting-based so tests are reproducible:
``fail_next={"503": 2}`` fails exactly the next two API requests, and
``fail_every={"drop": 5}`` fails every 5th one, counting API requests (every endpoint:
orders, activity, markets, wallet; or only those named in ``fail_routes``) that got
past auth and the rate limit since ``fail_every`` was last set. ``fail_next`` wins
over ``fail_every``; with several kinds in ``fail_next`` they run in the given order.

Failure kinds (:data:`FAIL_KINDS`):

- ``500_json``: 500 with a JSON error body.
- ``502_html``: 502 with an HTML body (a proxy error page).
- ``503``: 503 with a JSON error body.
- ``429``: 429 with a Retry-After header (per ``retry_after``).
- ``truncated``: 200 whose body is the real page cut in half; Content-Length is the
  length actually sent, so only the JSON parse fails.
- ``invalid_json``: 200 with a body that is not JSON.
- ``drop``: the connection is closed without any response.
- ``timeout``: the answer (a normal one) comes after ``timeout_sleep`` seconds.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from .server_limits import SlidingWindowLimiter, parse_rate_limit

__all__ = ["FAIL_KINDS", "ROUTES", "FaultController", "Faults"]

FAIL_KINDS = ("500_json", "502_html", "503", "429", "truncated", "invalid_json", "drop", "timeout")

#: The API endpoints, by the name ``fail_routes`` and the statistics use.
ROUTES = ("orders", "activity", "markets", "wallet")

RetryAfter = int | Literal["auto"] | None


@dataclass(frozen=True)
class Faults:
    """One complete fault configuration (immutable; see :meth:`merged`).

    Which endpoints each setting affects: rate limit, latency and injected failures, all;
    the rest, orders and activity (the paged event streams) unless said otherwise.

    - ``sort``: ``"desc"`` (the API's newest-first order) or ``"asc"`` (oldest first).
    - ``no_pagination_key``: never send pagination_key, so clients must fall back to offset
      (markets too).
    - ``no_log_index``: rows omit block_number and log_index (older API versions).
    - ``offset_limit``: an offset above this is refused with 401 and a ``docs`` link
      (markets too).
    - ``omit_total``: pagination has no ``total`` (orders and markets; activity's ``count``
      stays).
    - ``omit_has_more``: pagination has no ``has_more`` (the ``pagination_key`` alone says
      there is more; orders and activity).
    - ``null_empty_rows``: an empty page's rows are ``null``, not ``[]`` (orders and
      activity).
    - ``empty_pages``: every page reached by a pagination_key is preceded by an empty page
      with ``has_more: true`` and a new key (a server that filters rows after reading a
      page of them; orders and activity).
    - ``unknown_wallet_404``: orders and activity for a ``user`` the simulator has no rows
      of answer 404 "No wallet mapping", as ``/polymarket/wallet`` does.
    - ``insert_on_walk``: each orders page served for a pagination_key adds a new fill at
      the head of that wallet (fills arriving during a walk; orders only).
    - ``rate_limit``: ``(per_second, per_10_seconds)`` or None; tier names accepted.
    - ``retry_after``: Retry-After on 429s: ``"auto"`` (seconds until a slot frees,
      at least 1), a fixed integer, or None to omit the header.
    - ``fail_next`` / ``fail_every``: ``{kind: n}``; see the module docstring.
    - ``fail_routes``: the endpoints (``ROUTES``) injected failures hit; empty: all of them.
    - ``latency``: ``(min_s, max_s)`` added to every API request, uniform and seeded.
    - ``arrival_latency``: ``(min_s, max_s)`` slept before a request is counted and rate
      limited (uniform, seeded): latency on the way in, in front of the server's counter,
      so requests that left a client evenly spaced are counted unevenly.
    - ``timeout_sleep``: how long the ``timeout`` kind stalls.
    """

    sort: Literal["desc", "asc"] = "desc"
    no_pagination_key: bool = False
    no_log_index: bool = False
    offset_limit: int | None = None
    omit_total: bool = False
    omit_has_more: bool = False
    null_empty_rows: bool = False
    empty_pages: bool = False
    unknown_wallet_404: bool = False
    insert_on_walk: bool = False
    rate_limit: tuple[int, int] | None = None
    retry_after: RetryAfter = "auto"
    fail_next: Mapping[str, int] = field(default_factory=dict)
    fail_every: Mapping[str, int] = field(default_factory=dict)
    fail_routes: tuple[str, ...] = ()
    latency: tuple[float, float] = (0.0, 0.0)
    arrival_latency: tuple[float, float] = (0.0, 0.0)
    timeout_sleep: float = 5.0

    def merged(self, **changes: Any) -> Faults:
        """A copy with ``changes`` validated and applied; unknown names raise."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s) {unknown}; known: {sorted(known)}")
        clean: dict[str, Any] = {}
        for name, value in changes.items():
            clean[name] = _VALIDATORS.get(name, _flag)(name, value)
        return replace(self, **clean)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``GET /_sim/faults`` shows)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["fail_next"] = dict(self.fail_next)
        out["fail_every"] = dict(self.fail_every)
        out["fail_routes"] = list(self.fail_routes)
        out["rate_limit"] = list(self.rate_limit) if self.rate_limit else None
        out["latency"] = list(self.latency)
        out["arrival_latency"] = list(self.arrival_latency)
        return out


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def _sort(name: str, value: Any) -> str:
    if value not in ("desc", "asc"):
        raise ValueError("sort must be 'desc' or 'asc'")
    return str(value)


def _optional_count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer or null")
    return value


def _rate(name: str, value: Any) -> tuple[int, int] | None:
    return parse_rate_limit(value)


def _retry_after(name: str, value: Any) -> RetryAfter:
    if value is None or value == "auto":
        return value  # type: ignore[no-any-return]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("retry_after must be 'auto', a non-negative integer, or null")
    return value


def _kinds(name: str, value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping of failure kind to count")
    out: dict[str, int] = {}
    for kind, count in value.items():
        if kind not in FAIL_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; known: {list(FAIL_KINDS)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"{name}[{kind!r}] must be a non-negative integer")
        if name == "fail_every" and count == 0:
            continue  # every 0th request: never
        out[kind] = count
    return out


def _routes(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"{name} must be a list of endpoint names {list(ROUTES)}")
    unknown = [route for route in value if route not in ROUTES]
    if unknown:
        raise ValueError(f"unknown endpoint(s) {unknown} in {name}; known: {list(ROUTES)}")
    return tuple(value)


def _latency(name: str, value: Any) -> tuple[float, float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        low = high = float(value)
    elif isinstance(value, list | tuple) and len(value) == 2:
        low, high = float(value[0]), float(value[1])
    else:
        raise ValueError("latency must be seconds or [min_s, max_s]")
    if not 0.0 <= low <= high:
        raise ValueError("latency must satisfy 0 <= min_s <= max_s")
    return low, high


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds")
    return float(value)


_VALIDATORS = {
    "sort": _sort,
    "offset_limit": _optional_count,
    "rate_limit": _rate,
    "retry_after": _retry_after,
    "fail_next": _kinds,
    "fail_every": _kinds,
    "fail_routes": _routes,
    "latency": _latency,
    "arrival_latency": _latency,
    "timeout_sleep": _seconds,
}


class FaultController:
    """The live fault state of one simulator: config, counters, limiter, latency RNG."""

    def __init__(self, base: Faults, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._base = base
        self._rng = random.Random(f"dome-sim:{seed}:latency")
        self._arrival_rng = random.Random(f"dome-sim:{seed}:arrival")
        self._faults = base
        self._limiter: SlidingWindowLimiter | None = None
        self._next: list[list[Any]] = []
        self._every_count = 0
        self._install(base, fail_next=True, fail_every=True, rate=True)

    @property
    def current(self) -> Faults:
        """The configuration in force (cheap: for the request path)."""
        return self._faults

    @property
    def faults(self) -> Faults:
        """The current configuration, with ``fail_next`` showing what is left."""
        with self._lock:
            remaining = {kind: n for kind, n in self._next if n > 0}
            return replace(self._faults, fail_next=remaining)

    def configure(self, **changes: Any) -> Faults:
        """Apply some settings, keep the others (counters restart for those given)."""
        new = self._faults.merged(**changes)
        with self._lock:
            self._install(
                new,
                fail_next="fail_next" in changes,
                fail_every="fail_every" in changes,
                rate="rate_limit" in changes,
            )
        return self.faults

    def clear(self) -> Faults:
        """Back to the simulator's constructor settings (its rate limit and latency)."""
        with self._lock:
            self._install(self._base, fail_next=True, fail_every=True, rate=True)
        return self.faults

    def _install(self, faults: Faults, *, fail_next: bool, fail_every: bool, rate: bool) -> None:
        if fail_next:
            self._next = [[kind, n] for kind, n in faults.fail_next.items() if n > 0]
        if fail_every:
            self._every_count = 0
        if rate:
            limit = faults.rate_limit
            self._limiter = SlidingWindowLimiter(*limit) if limit else None
        self._faults = faults

    def latency(self) -> float:
        """This request's added latency in seconds (seeded uniform draw)."""
        low, high = self._faults.latency
        if high <= 0.0:
            return 0.0
        with self._lock:
            return self._rng.uniform(low, high)

    def arrival_latency(self) -> float:
        """How long this request takes to reach the counter (seeded uniform draw)."""
        low, high = self._faults.arrival_latency
        if high <= 0.0:
            return 0.0
        with self._lock:
            return self._arrival_rng.uniform(low, high)

    def admit(self) -> float | None:
        """Rate limit: None when admitted, else seconds until a slot frees."""
        limiter = self._limiter
        return None if limiter is None else limiter.admit()

    def next_failure(self, route: str = "orders") -> str | None:
        """The injected failure for this API request, if any (consumes the counters)."""
        routes = self._faults.fail_routes
        if routes and route not in routes:
            return None
        with self._lock:
            self._every_count += 1
            while self._next:
                slot = self._next[0]
                if slot[1] > 0:
                    slot[1] -= 1
                    kind: str = slot[0]
                    if slot[1] == 0:
                        self._next.pop(0)
                    return kind
                self._next.pop(0)
            for kind, every in self._faults.fail_every.items():
                if self._every_count % every == 0:
                    return kind
            return None
