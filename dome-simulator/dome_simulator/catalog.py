"""The markets the simulator serves (``GET /polymarket/markets``) and their state over time.

Every ``condition_id`` that appears in a fill has a market here: the seeded pool's markets
(markets.py) and, for hand-made fills (``Dataset.from_fills``), markets derived from those
fills (their two tokens and labels; a missing second token is made up). A market's state is a
function of the data clock: ``open`` until ``close_at``, then ``closed``; from ``resolve_at``
on it has a ``completed_time`` and a ``winning_side``. ``resolve`` resolves one at once.

Volumes are the notional (``shares_normalized * price``) of the fills the simulator serves on
the market: all time, and over the week, month and year before the data clock. So a client
can check them against the orders; real volumes also count untracked traders.

Not thread-safe on its own: the store calls it with its lock held.
"""

from __future__ import annotations

import hashlib
import time
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from .fill import Fill
from .markets import Market, MarketPool

__all__ = ["MARKET_FIELDS", "Catalog"]

_DAY = 86_400
_WINDOWS = (
    ("volume_1_week", 7 * _DAY),
    ("volume_1_month", 30 * _DAY),
    ("volume_1_year", 365 * _DAY),
)
_OTHER_LABEL = {"Yes": "No", "No": "Yes", "Up": "Down", "Down": "Up"}

#: The fields of one market as the API documents them, in that order.
MARKET_FIELDS: tuple[str, ...] = (
    "market_slug", "event_slug", "condition_id", "title", "description", "start_time",
    "end_time", "completed_time", "close_time", "game_start_time", "tags", "volume_1_week",
    "volume_1_month", "volume_1_year", "volume_total", "resolution_source", "image",
    "negative_risk_id", "side_a", "side_b", "winning_side", "status", "extra_fields",
)  # fmt: skip


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _datetime(ts: int) -> str:
    """The API's ``game_start_time`` format: ``YYYY-MM-DD HH:MM:SS.000`` (UTC)."""
    return time.strftime("%Y-%m-%d %H:%M:%S.000", time.gmtime(ts))


@dataclass(slots=True)
class _Volume:
    """The served fills' notional on one market, in timestamp order, with prefix sums."""

    times: list[int]
    notional: list[float]
    dirty: bool = False
    prefix: tuple[float, ...] = ()

    def add(self, ts: int, amount: float) -> None:
        self.times.append(ts)
        self.notional.append(amount)
        self.dirty = True

    def since(self, after: float) -> float:
        """Notional of fills with ``timestamp > after``."""
        if self.dirty:
            pairs = sorted(zip(self.times, self.notional, strict=True))
            self.times = [t for t, _ in pairs]
            self.notional = [n for _, n in pairs]
            running, sums = 0.0, [0.0]
            for amount in self.notional:
                running += amount
                sums.append(running)
            self.prefix, self.dirty = tuple(sums), False
        if not self.prefix:
            return 0.0
        return self.prefix[-1] - self.prefix[bisect_right(self.times, after)]


class Catalog:
    """Markets by condition_id, their schedule (with resolutions made at run time), volumes."""

    def __init__(self, pool: MarketPool, explicit: Iterable[Fill] = ()) -> None:
        self.pool = pool
        self.markets: dict[str, Market] = dict(pool.by_condition)
        self._start: dict[str, int] = {cid: pool.now - 3 * 365 * _DAY for cid in self.markets}
        self._derive(explicit)
        self._volume: dict[str, _Volume] = {cid: _Volume([], []) for cid in self.markets}

    def _derive(self, fills: Iterable[Fill]) -> None:
        tokens: dict[str, dict[str, str]] = {}
        first: dict[str, Fill] = {}
        for fill in fills:
            if fill.condition_id in self.markets:
                continue
            first.setdefault(fill.condition_id, fill)
            tokens.setdefault(fill.condition_id, {}).setdefault(fill.token_id, fill.token_label)
            start = self._start.get(fill.condition_id, fill.timestamp)
            self._start[fill.condition_id] = min(start, fill.timestamp - _DAY)
        for cid, seen in tokens.items():
            pairs = list(seen.items())[:2]
            if len(pairs) == 1:
                token, label = pairs[0]
                other = str(int(_digest("token", cid, token), 16) % (1 << 256))
                pairs.append((other, _OTHER_LABEL.get(label, f"Not {label}" if label else "")))
            fill = first[cid]
            self.markets[cid] = Market(
                title=fill.title,
                slug=fill.market_slug,
                condition_id=cid,
                token_ids=(pairs[0][0], pairs[1][0]),
                labels=(pairs[0][1], pairs[1][1]),
                neg_risk=False,
            )

    # ---------------------------------------------------------------- lifecycle

    def closes_at(self, market: Market) -> int | None:
        """When trading on ``market`` stops (None: not scheduled)."""
        current = self.markets.get(market.condition_id, market)
        return current.close_at

    def resolve(self, condition_id: str, winner: str | int, at: int) -> Market:
        """Close and resolve one market at ``at`` (the data clock); ``winner``: 0/1, token, label.

        Refused for an unknown market or one already resolved by then.
        """
        market = self.markets.get(condition_id.lower())
        if market is None:
            raise ValueError(f"unknown condition_id {condition_id!r}")
        if market.resolve_at is not None and market.resolve_at <= at:
            raise ValueError(f"market {condition_id} is already resolved")
        outcome = self._outcome(market, winner)
        close = at if market.close_at is None else min(market.close_at, at)
        resolved = replace(market, close_at=close, resolve_at=at, winner=outcome)
        self.markets[market.condition_id] = resolved
        return resolved

    @staticmethod
    def _outcome(market: Market, winner: str | int) -> int:
        if winner in (0, 1, "0", "1"):
            return int(winner)
        for index, (token, label) in enumerate(zip(market.token_ids, market.labels, strict=True)):
            if winner in (token, label):
                return index
        raise ValueError(
            f"winner must be 0, 1, a token_id or a label of the market ({list(market.labels)}), "
            f"not {winner!r}"
        )

    # ------------------------------------------------------------------ volumes

    def record(self, condition_id: str, ts: int, notional: float) -> None:
        """A fill became visible: count its notional."""
        volume = self._volume.get(condition_id)
        if volume is not None:
            volume.add(ts, notional)

    def record_fill(self, fill: Fill) -> None:
        """``record`` for a Fill object."""
        self.record(fill.condition_id, fill.timestamp, fill.shares / 1e6 * fill.price)

    def record_blob(self, blob: bytes) -> None:
        """``record`` for a serialized fill (one promoted from the pending heap)."""
        row = orjson.loads(blob)
        self.record(row["condition_id"], row["timestamp"], row["shares_normalized"] * row["price"])

    # ------------------------------------------------------------ API objects

    def describe(self, now: float, only: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every market (or those of the condition ids ``only``) as the API serves it at data
        clock ``now``, by condition_id. Looked up by id when named, as an indexed API does:
        describing a thousand markets per request (~30 ms) held the store's lock long enough
        to delay the counting of every other request."""
        ids = sorted(self.markets) if only is None else sorted(set(only) & self.markets.keys())
        return [self.to_api(self.markets[cid], now) for cid in ids]

    def to_api(self, market: Market, now: float) -> dict[str, Any]:
        """One market's JSON object at data clock ``now``."""
        closed = market.close_at is not None and now >= market.close_at
        resolved = market.resolve_at is not None and now >= market.resolve_at
        sides = [
            {"id": token, "label": label}
            for token, label in zip(market.token_ids, market.labels, strict=True)
        ]
        volume = self._volume[market.condition_id]
        event = market.event_slug
        sports = "Sports" in market.tags
        up_down = "Up or Down" in market.tags
        extra: dict[str, Any] = {}
        if up_down:
            base = 50_000 + int(_digest("beat", market.condition_id)[:6], 16) % 60_000
            final = base * (1.01 if market.winner == 0 else 0.99)
            extra = {
                "price_to_beat": float(base),
                "final_price": round(final, 2) if resolved else None,
            }
        row: dict[str, Any] = {
            "market_slug": market.slug,
            "event_slug": event,
            "condition_id": market.condition_id,
            "title": market.title,
            "description": (
                f"This market resolves to {market.labels[0]} or {market.labels[1]}. "
                f"Simulated by dome-simulator: {market.title}"
            ),
            "start_time": self._start[market.condition_id],
            "end_time": market.close_at
            if market.close_at is not None
            else self.pool.now + 730 * _DAY,
            "completed_time": market.resolve_at if resolved else None,
            "close_time": market.close_at if closed else None,
            "game_start_time": (
                _datetime(market.close_at - 3 * 3600) if sports and market.close_at else None
            ),
            "tags": list(market.tags),
            **{name: round(volume.since(now - span), 6) for name, span in _WINDOWS},
            "volume_total": round(volume.since(float("-inf")), 6),
            "resolution_source": f"https://polymarket.com/event/{event or market.slug}",
            "image": f"https://polymarket-upload.s3.us-east-2.amazonaws.com/{market.slug}.png",
            "negative_risk_id": "0x" + _digest("neg-risk", event)[:64] if market.neg_risk else None,
            "side_a": sides[0],
            "side_b": sides[1],
            "winning_side": sides[market.winner] if resolved else None,
            "status": "closed" if closed else "open",
            "extra_fields": extra,
        }
        return row
