"""The simulator's state and request dispatch, independent of the HTTP server.

``SimulatorCore`` owns the data (store), the data clock, faults and statistics; it maps
one request (method, path, query, headers, body) to a :class:`Response`. The API
lives under ``/v1``; the control plane under ``/_sim`` (also ``/v1/_sim``) needs no
key and is not counted in the statistics.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

import orjson

from .api import serve_orders
from .api_activity import serve_activity
from .api_markets import serve_markets
from .api_wallet import serve_wallet
from .clock import DataClock
from .dataset import Dataset
from .faults import FaultController, Faults
from .identity import activity_id, order_id
from .responses import Response, error, json_response
from .server_limits import parse_rate_limit, retry_after_header
from .stats import RequestStats
from .store import LATE_AGE_SECONDS, Store, legacy_row
from .wallets import WalletDirectory

__all__ = ["API_ORDERS_ROUTE", "API_ROUTES", "SimulatorCore"]

API_ORDERS_ROUTE = "/v1/polymarket/orders"
#: Path -> endpoint name (faults.ROUTES).
API_ROUTES = {
    API_ORDERS_ROUTE: "orders",
    "/v1/polymarket/activity": "activity",
    "/v1/polymarket/markets": "markets",
    "/v1/polymarket/wallet": "wallet",
}
Serve = Callable[[Faults, Mapping[str, Sequence[str]], bool], Response]
_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
_NOT_JSON = b'{"orders": [{"token_id": "1", <!-- upstream hiccup --> ]'


def _number(name: str, value: object) -> float:
    """A finite number from JSON or a query string (``"60"``); anything else is a clear error."""
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
    raise ValueError(f"{name} must be a number, not {value!r}")


def _age(value: Sequence[int]) -> tuple[int, int]:
    """``late_age`` as ``(min, max)`` whole seconds, ``0 <= min <= max``."""
    if isinstance(value, str) or len(value) != 2:
        raise ValueError("late_age must be [min_seconds, max_seconds]")
    low, high = int(value[0]), int(value[1])
    if not 0 <= low <= high:
        raise ValueError("late_age must satisfy 0 <= min_seconds <= max_seconds")
    return low, high


class SimulatorCore:
    """Data, clock, faults and stats of one simulator; see the module docstring."""

    def __init__(
        self,
        seed: int = 7,
        api_key: str = "sim-key",
        dataset: Dataset | None = None,
        rate_limit: tuple[int, int] | str | None = None,
        latency: tuple[float, float] = (0.0, 0.0),
        *,
        retry_after: int | str | None = "auto",
        data_lag: float = 0.0,
        frozen_now: float | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self.seed = seed
        self._api_key = api_key
        self.dataset = dataset if dataset is not None else Dataset.standard(seed)
        self.clock = DataClock(data_lag, frozen_now)
        self.store = Store(self.dataset, self.clock)
        self.directory = WalletDirectory(seed, self.store.wallets, self.dataset.roles)
        base = Faults().merged(
            rate_limit=parse_rate_limit(rate_limit), latency=latency, retry_after=retry_after
        )
        self.faults = FaultController(base, seed)
        self._stats = RequestStats()
        self._control: dict[tuple[str, str], Callable[[Mapping[str, Any]], Any]] = {
            ("GET", "health"): lambda _: self.health(),
            ("GET", "wallets"): lambda _: {"wallets": self.wallets, "roles": self.dataset.roles},
            ("GET", "truth"): lambda a: self.truth(a.get("wallet") or None),
            ("GET", "activity_truth"): lambda a: self.activity_truth(a.get("wallet") or None),
            ("GET", "fill_count"): lambda a: {"count": self._fill_count(a)},
            ("GET", "markets_truth"): lambda _: self.markets_truth(),
            ("GET", "wallet_mappings"): lambda _: self.wallet_mappings(),
            ("POST", "resolve_market"): lambda a: self.resolve_market(**a),
            ("GET", "stats"): lambda _: self.stats(),
            ("POST", "reset_stats"): self._post_reset_stats,
            ("POST", "advance"): lambda a: self.advance(**a),
            ("GET", "clock"): lambda _: self.clock.describe(),
            ("POST", "clock"): lambda a: self.set_clock(**a),
            ("GET", "faults"): lambda _: self.faults.faults.to_json(),
            ("POST", "faults"): self._post_faults,
            ("POST", "clear_faults"): lambda _: self.clear_faults(),
        }

    @property
    def api_key(self) -> str:
        """The key clients must send as ``Authorization: Bearer <key>``."""
        return self._api_key

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(seed={self.seed}, wallets={len(self.wallets)})"

    # ------------------------------------------------------------- public control

    @property
    def wallets(self) -> list[str]:
        """Lowercase wallet addresses, dataset order first (stable)."""
        return self.store.wallets

    @property
    def roles(self) -> dict[str, str]:
        """Role name -> wallet for the profile's special wallets (e.g. ``"burst"``)."""
        return self.dataset.roles

    def truth(self, wallet: str | None = None) -> list[dict[str, Any]]:
        """Every fill visible at the data clock, as the API serves it, newest first, plus order_id.

        Rows follow the current ``no_log_index`` fault (and so does their order_id).
        """
        legacy = self.faults.current.no_log_index
        out: list[dict[str, Any]] = []
        for _, blob in self.store.visible(wallet):
            row = orjson.loads(blob)
            if legacy:
                legacy_row(row)
            row["order_id"] = order_id(row)
            out.append(row)
        return out

    def fill_count(
        self, wallet: str, start_time: int | None = None, end_time: int | None = None
    ) -> int:
        """Fills of ``wallet`` visible now with ``start_time <= timestamp <= end_time``.

        What ``pagination.total`` of a first orders page says for that query: the ground truth
        of a completeness audit.
        """
        store = self.store
        store.promote_due()
        with store.lock:
            book = store.books.get(wallet.lower())
            if book is None:
                return 0
            lo, hi = book.bounds(start_time, end_time)
            return hi - lo

    def activity_truth(self, wallet: str | None = None) -> list[dict[str, Any]]:
        """Every activity row visible at the data clock, newest first, plus ``activity_id``.

        ``activity_id`` as docs/contracts.md defines it; rows follow ``no_log_index``.
        """
        legacy = self.faults.current.no_log_index
        out: list[dict[str, Any]] = []
        for _, blob in self.store.visible(wallet, "activity"):
            row = orjson.loads(blob)
            if legacy:
                legacy_row(row)
            row["activity_id"] = activity_id(row)
            out.append(row)
        return out

    def markets_truth(self) -> list[dict[str, Any]]:
        """Every market as ``/polymarket/markets`` serves it at the data clock, by condition_id.

        It covers every condition_id of every fill (served or not yet indexed).
        """
        self.store.promote_due()
        with self.store.lock:
            return self.store.catalog.describe(self.clock.now())

    def wallet_mappings(self) -> list[dict[str, Any]]:
        """``{eoa, proxy, wallet_type, handle, pseudonym, image}`` of every simulated wallet."""
        return self.directory.mappings()

    def resolve_market(
        self, condition_id: str, winner: str | int = 0, at: float | None = None
    ) -> dict[str, Any]:
        """Close and resolve a market now (or at ``at``, not before the data clock).

        ``winner``: 0 or 1 (side_a / side_b), a token_id or a label. Returns the market as
        served from then on. Redemptions are not added for it (scheduled resolutions have
        them); fills stamped after ``at`` that were made before stay on it.
        """
        now = self.clock.now()
        when = now if at is None else _number("at", at)
        if when < now - 1e-6:
            raise ValueError("at must not be before the data clock (it never goes back)")
        with self.store.lock:
            market = self.store.catalog.resolve(str(condition_id), winner, int(when))
            self.store.version += 1
            return self.store.catalog.to_api(market, max(now, when))

    def stats(self) -> dict[str, Any]:
        """Request counts since the last reset; see stats.py."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Start counting afresh."""
        self._stats.reset()

    def advance(
        self,
        seconds: float = 0.0,
        new_fills_per_wallet: int = 0,
        late_fills_per_wallet: int = 0,
        wallets: Sequence[str] | None = None,
        late_age: Sequence[int] = LATE_AGE_SECONDS,
        new_activity_per_wallet: int = 0,
    ) -> dict[str, Any]:
        """Move the data clock forward, then add fills relative to it; see the package docstring.

        ``late_age`` is ``[min, max]`` seconds before the data clock for the late fills;
        ``new_activity_per_wallet`` adds SPLITs at the head. ``markets_resolved`` lists the
        markets whose resolution the data clock passed.
        """
        counts = [
            int(new_fills_per_wallet),
            int(late_fills_per_wallet),
            int(new_activity_per_wallet),
        ]
        if min(counts) < 0:
            raise ValueError("fill and activity counts must be >= 0")
        new_fills_per_wallet, late_fills_per_wallet, new_activity_per_wallet = counts
        if isinstance(wallets, str):
            raise ValueError("wallets must be a list of addresses")
        age = _age(late_age)
        before = self.clock.now()
        now = self.clock.advance(_number("seconds", seconds))
        became_visible = self.store.promote_due()
        targets = self.wallets if wallets is None else [w.lower() for w in wallets]
        new = late = splits = 0
        for wallet in targets:
            if new_fills_per_wallet:
                new += self.store.add_head(wallet, new_fills_per_wallet)
            if late_fills_per_wallet:
                late += self.store.add_late(wallet, late_fills_per_wallet, age)
            if new_activity_per_wallet:
                splits += self.store.add_splits(wallet, new_activity_per_wallet)
        resolved = sorted(
            m.condition_id
            for m in self.store.catalog.markets.values()
            if m.resolve_at is not None and before < m.resolve_at <= now
        )
        return {
            "now": now,
            "offset": self.clock.offset,
            "new_fills": new,
            "late_fills": late,
            "new_activity": splits,
            "became_visible": became_visible,
            "markets_resolved": resolved,
            "clock": self.clock.describe(),
        }

    def set_clock(
        self, lag: float | None = None, frozen_now: float | None = None, freeze: bool = False
    ) -> dict[str, Any]:
        """Run the data clock live ``lag`` seconds behind the wall, or frozen; see clock.py.

        Fills the new data clock has reached become visible at once. Returns the clock.
        """
        self.clock.set(
            lag=None if lag is None else _number("lag", lag),
            frozen_now=None if frozen_now is None else _number("frozen_now", frozen_now),
            freeze=freeze in (True, "true", "1"),
        )
        became_visible = self.store.promote_due()
        return {**self.clock.describe(), "became_visible": became_visible}

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change some fault settings (see faults.Faults); returns the full configuration."""
        return self.faults.configure(**changes).to_json()

    def clear_faults(self) -> dict[str, Any]:
        """Back to the constructor's rate limit and latency, with no other fault."""
        return self.faults.clear().to_json()

    def health(self) -> dict[str, Any]:
        """Liveness plus a summary of the data."""
        counts = self.store.counts()
        return {
            "ok": True,
            "now": self.clock.now(),
            "offset": self.clock.offset,
            "clock": self.clock.describe(),
            "wallets": len(self.wallets),
            "visible_fills": counts["visible"],
            "pending_fills": counts["pending"],
        }

    def _fill_count(self, args: Mapping[str, Any]) -> int:
        if not args.get("wallet"):
            raise ValueError("wallet is required")
        bounds = [
            None if args.get(name) in (None, "") else int(_number(name, args[name]))
            for name in ("start_time", "end_time")
        ]
        return self.fill_count(str(args["wallet"]), *bounds)

    def _post_reset_stats(self, _: Mapping[str, Any]) -> dict[str, Any]:
        self.reset_stats()
        return {"ok": True}

    def _post_faults(self, body: Mapping[str, Any]) -> dict[str, Any]:
        changes = dict(body)
        if changes.pop("clear", False):
            self.faults.clear()
        return self.set_faults(**changes)

    # ------------------------------------------------------------------ dispatch

    def dispatch(
        self,
        method: str,
        path: str,
        query: str,
        authorization: str | None,
        body: bytes = b"",
    ) -> tuple[Response, bool]:
        """Answer one request; the flag says whether it was counted (call ``done()``)."""
        route = path.rstrip("/") or "/"
        for prefix in ("/_sim/", "/v1/_sim/"):
            if route.startswith(prefix):
                return self._dispatch_control(method, route[len(prefix) :], query, body), False
        params = parse_qs(query, keep_blank_values=True)
        user = (params.get("user") or [""])[0].strip().lower()
        delay = self.faults.arrival_latency()
        if delay:  # on its way in: counted and rate limited only once it arrives
            time.sleep(delay)
        self._count(user or None, API_ROUTES.get(route))
        try:
            response = self._dispatch_api(method, route, params, authorization)
        except Exception as exc:  # a simulator bug must surface as a 500, not a hang
            response = error(500, "Internal Server Error", f"simulator error: {exc!r}")
        response.delay += self.faults.latency()
        self._stats.respond(
            None if response.drop else response.status, response.rows, limited=response.limited
        )
        return response, True

    def _count(self, wallet: str | None, route: str | None) -> None:
        """A request reaches the counter (after any ``arrival_latency``)."""
        self._stats.arrive(wallet, route)

    def done(self) -> None:
        """A counted request has been answered (or dropped)."""
        self._stats.finish()

    def _dispatch_api(
        self,
        method: str,
        route: str,
        params: Mapping[str, Sequence[str]],
        authorization: str | None,
    ) -> Response:
        name = API_ROUTES.get(route)
        if name is None:
            return error(404, "Not Found", "route not found")
        if method != "GET":
            return error(405, "Method Not Allowed", f"{method} is not allowed here; use GET")
        if not self._authorized(authorization):
            return error(401, "Unauthorized", "Missing or invalid API key")
        faults = self.faults.current
        wait = self.faults.admit()
        if wait is not None:
            limited = self._too_many(faults, wait)
            limited.limited = True
            return limited
        serve = self._serve(name)
        kind = self.faults.next_failure(name)
        if kind is None:
            return serve(faults, params, True)
        return self._failure(kind, faults, params, serve)

    def _serve(self, name: str) -> Serve:
        """The handler of one endpoint, as ``(faults, params, mutate) -> Response``."""
        store = self.store
        if name == "orders":
            return lambda f, p, mutate: serve_orders(store, f, p, mutate=mutate)
        if name == "activity":
            return lambda f, p, _: serve_activity(store, f, p)
        if name == "markets":
            return lambda f, p, _: serve_markets(store, f, p)
        return lambda _, p, __: serve_wallet(store, self.directory, p)

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode(), self._api_key.encode())

    @staticmethod
    def _too_many(faults: Faults, wait: float) -> Response:
        headers: tuple[tuple[str, str], ...] = ()
        if faults.retry_after == "auto":
            headers = (("Retry-After", str(retry_after_header(wait))),)
        elif faults.retry_after is not None:
            headers = (("Retry-After", str(faults.retry_after)),)
        return error(429, "Too Many Requests", "Rate limit exceeded", headers=headers)

    def _failure(
        self, kind: str, faults: Faults, params: Mapping[str, Sequence[str]], serve: Serve
    ) -> Response:
        if kind == "500_json":
            return error(500, "Internal Server Error", "simulated failure")
        if kind == "502_html":
            return Response(502, _HTML_502, content_type="text/html")
        if kind == "503":
            return error(503, "Service Unavailable", "simulated outage")
        if kind == "429":
            return self._too_many(faults, 1.0)
        if kind == "invalid_json":
            return Response(200, _NOT_JSON)
        if kind == "drop":
            return Response(0, drop=True)
        full = serve(faults, params, kind == "timeout")
        if kind == "timeout":
            full.delay += faults.timeout_sleep
            return full
        # truncated: cut the real page in the middle; Content-Length matches what is sent.
        return Response(full.status, full.body[: max(1, len(full.body) // 2)])

    def _dispatch_control(self, method: str, name: str, query: str, body: bytes) -> Response:
        handler = self._control.get((method, name))
        if handler is None:
            return error(404, "Not Found", f"no control route {method} /_sim/{name}")
        try:
            args: dict[str, Any] = {k: v[0] for k, v in parse_qs(query).items()}
            if body.strip():
                payload = orjson.loads(body)
                if not isinstance(payload, dict):
                    raise ValueError("the JSON body must be an object")
                args.update(payload)
            return json_response(200, handler(args))
        except (ValueError, TypeError) as exc:
            return error(400, "Bad Request", str(exc))
        except Exception as exc:  # report, don't drop the connection
            return error(500, "Internal Server Error", f"simulator error: {exc!r}")
