"""Activity rows (``GET /polymarket/activity``): a wallet's splits, merges and redemptions.

Generated per wallet from its fills, so they agree with what the orders endpoint serves:

- **SPLIT** (USDC -> one share of each outcome) and **MERGE** (one of each -> USDC) happen on
  markets open at that time; a MERGE never exceeds the SPLIT before it. The row's
  ``token_id`` is the market's first outcome token (side_a); the event concerns both.
- **REDEEM** only on resolved markets, after the resolution, of the winning token, for the
  wallet's net position in it at the close (fills BUY - SELL, plus splits, minus merges), when
  that is positive (wallets without splits never redeem: some wallets have no activity at
  all). Redemptions of markets that resolve after the dataset's ``now`` are
  stamped after the resolution, so they appear as the data clock passes it.
- ``price`` is USDC per share (per complete set for SPLIT and MERGE): always 1.0.
  ``order_hash`` is ``""`` (no CLOB order is involved).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .fill import Fill, FillKey
from .markets import Market, MarketPool, below, block_number_at

__all__ = ["ACTIVITY_FIELDS", "ACTIVITY_SIDES", "Activity", "generate_activity", "new_split"]

ACTIVITY_SIDES = ("MERGE", "SPLIT", "REDEEM")

#: The fields of one activity row as the Dome API documents them, in that order.
ACTIVITY_FIELDS: tuple[str, ...] = (
    "token_id", "side", "market_slug", "condition_id", "shares", "shares_normalized", "price",
    "block_number", "log_index", "tx_hash", "title", "timestamp", "order_hash", "user",
)  # fmt: skip

_REDEEM_DELAY = (60, 6 * 3600)  # seconds after the resolution a holder redeems


@dataclass(slots=True)
class Activity:
    """One SPLIT, MERGE or REDEEM event; same paging key and visibility rules as a fill."""

    token_id: str
    side: str
    market_slug: str
    condition_id: str
    shares: int
    price: float
    block_number: int
    log_index: int
    tx_hash: str
    title: str
    timestamp: int
    user: str
    indexed_at: int | None = None

    @property
    def key(self) -> FillKey:
        """The keyset-pagination position: (timestamp, tx_hash, log_index)."""
        return (self.timestamp, self.tx_hash, self.log_index)

    @property
    def visible_from(self) -> int:
        """The data clock from which the API serves this row."""
        return self.timestamp if self.indexed_at is None else max(self.timestamp, self.indexed_at)

    def to_api(self) -> dict[str, Any]:
        """The JSON object the API returns for this row (field order as documented)."""
        return {
            "token_id": self.token_id,
            "side": self.side,
            "market_slug": self.market_slug,
            "condition_id": self.condition_id,
            "shares": self.shares,
            "shares_normalized": self.shares / 1e6,
            "price": self.price,
            "block_number": self.block_number,
            "log_index": self.log_index,
            "tx_hash": self.tx_hash,
            "title": self.title,
            "timestamp": self.timestamp,
            "order_hash": "",
            "user": self.user.lower(),
        }


def _hex(rng: random.Random, nbytes: int) -> str:
    return f"0x{rng.getrandbits(8 * nbytes):0{2 * nbytes}x}"


def _event(
    rng: random.Random, user: str, market: Market, side: str, token: int, shares: int, ts: int
) -> Activity:
    return Activity(
        token_id=market.token_ids[token],
        side=side,
        market_slug=market.slug,
        condition_id=market.condition_id,
        shares=shares,
        price=1.0,
        block_number=block_number_at(ts),
        log_index=below(rng, 300),
        tx_hash=_hex(rng, 32),
        title=market.title,
        timestamp=ts,
        user=user,
    )


def new_split(
    rng: random.Random,
    pool: MarketPool,
    user: str,
    ts: int,
    closes_at: Callable[[Market], int | None] | None = None,
) -> Activity | None:
    """A SPLIT at ``ts`` on a market open then (None when every market is closed).

    ``closes_at`` gives a market's current close (resolutions made at run time); default: its
    schedule.
    """
    close_of = closes_at or (lambda market: market.close_at)
    open_markets = [m for m in pool.markets if (close := close_of(m)) is None or ts < close]
    if not open_markets:
        return None
    market = open_markets[below(rng, len(open_markets))]
    return _event(rng, user, market, "SPLIT", 0, (1 + below(rng, 5000)) * 10_000, ts)


def generate_activity(
    rng: random.Random,
    pool: MarketPool,
    user: str,
    fills: Iterable[Fill],
    events: int,
    span: tuple[int, int],
) -> list[Activity]:
    """``events`` splits (some followed by a merge) in ``span``, then the redemptions they imply."""
    start, end = span
    rows: list[Activity] = []
    if events <= 0:
        return rows  # a wallet without activity never redeems either
    held: dict[str, int] = defaultdict(int)  # token_id -> raw shares held at the close
    for fill in fills:
        traded = pool.by_condition.get(fill.condition_id)
        if traded is None or traded.close_at is None or fill.timestamp >= traded.close_at:
            continue
        held[fill.token_id] += fill.shares if fill.side == "BUY" else -fill.shares

    # The first split is on a market redeemed within the span, if there is one, and large
    # enough to leave a winning position: every active wallet shows a REDEEM.
    redeemable = [
        m for m in pool.markets
        if m.close_at is not None and m.resolve_at is not None and start < m.close_at
        and m.resolve_at + sum(_REDEEM_DELAY) <= end
    ]  # fmt: skip
    if redeemable:
        market = redeemable[below(rng, len(redeemable))]
        ts = start + below(rng, int(market.close_at or start) - start)
        shortfall = max(0, -held[market.token_ids[market.winner]])
        rows.append(
            _event(rng, user, market, "SPLIT", 0, (1 + below(rng, 5000)) * 10_000 + shortfall, ts)
        )
        events -= 1
    for _ in range(events if end >= start else 0):
        ts = start + below(rng, end - start + 1)
        split = new_split(rng, pool, user, ts)
        if split is None:
            continue
        rows.append(split)
        market = pool.by_condition[split.condition_id]
        last = end if market.close_at is None else min(end, market.close_at - 1)
        if rng.random() < 0.4 and last > ts:
            merge_ts = ts + 1 + below(rng, last - ts)
            shares = max(10_000, int(split.shares * (0.2 + 0.8 * rng.random())) // 10_000 * 10_000)
            rows.append(_event(rng, user, market, "MERGE", 0, shares, merge_ts))

    for row in rows:
        market = pool.by_condition[row.condition_id]
        if market.close_at is None or row.timestamp >= market.close_at:
            continue
        sign = 1 if row.side == "SPLIT" else -1
        for token_id in market.token_ids:
            held[token_id] += sign * row.shares
    for market in pool.markets:
        if market.resolve_at is None:
            continue
        shares = held.get(market.token_ids[market.winner], 0)
        if shares > 0:
            ts = market.resolve_at + _REDEEM_DELAY[0] + below(rng, _REDEEM_DELAY[1])
            rows.append(_event(rng, user, market, "REDEEM", market.winner, shares, ts))
    return rows
