"""A seeded pool of markets and the orders and fills traded on them.

Kept apart from the dataset layout so that fills made while the simulator runs
(``advance``, ``insert_on_walk``) come from the same generator as the history.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from .fill import CTF_EXCHANGE, NEG_RISK_CTF_EXCHANGE, Fill

__all__ = ["DRAW", "Market", "MarketPool", "Order", "below", "block_number_at"]

_DAY = 86_400
_HOUR = 3_600


class _Draw(enum.Enum):
    DRAW = "draw"


#: Pass as ``taker`` to draw the taker at random (an address, an exchange, or null).
DRAW = _Draw.DRAW

# (title, slug, outcome labels, neg_risk). Several titles are deliberately non-ASCII.
_TEMPLATES: tuple[tuple[str, str, tuple[str, str], bool], ...] = (
    ("Will Bitcoin reach $150,000 by December 31? 🚀", "bitcoin-150k-dec-31", ("Yes", "No"), False),
    ("Bitcoin Up or Down - 3PM ET?", "btc-up-or-down-3pm-et", ("Up", "Down"), False),
    ("台湾总统选举 2028：国民党会获胜吗？", "taiwan-election-2028-kmt", ("Yes", "No"), True),  # noqa: RUF001
    (
        "Élection présidentielle : Marine Le Pen élue ?",
        "france-election-le-pen",
        ("Yes", "No"),
        True,
    ),
    ("東京の7月の最高気温は35°Cを超える？", "tokyo-july-high-35c", ("Yes", "No"), False),  # noqa: RUF001
    ("Lakers vs. Celtics", "nba-lal-bos-2026-01-15", ("Lakers", "Celtics"), False),
    ("Fed decision in March: 25 bp cut?", "fed-march-25bp-cut", ("Yes", "No"), True),
    ("Will ETH flip BTC this cycle? 🦄🔥", "eth-flippening-this-cycle", ("Yes", "No"), False),
    ("São Paulo FC vence o Brasileirão?", "sao-paulo-brasileirao", ("Yes", "No"), False),
    ("Ölpreis über 100 $ bis Juni?", "oil-over-100-june", ("Yes", "No"), False),
    ("Москва: выше 30°C в июле?", "moscow-over-30c-july", ("Yes", "No"), False),
    ("Who wins Eurovision 2026? 🎤 Sweden", "eurovision-2026-sweden", ("Yes", "No"), True),
    ("Will it rain in NYC tomorrow?", "nyc-rain-tomorrow", ("Yes", "No"), False),
    (
        "Real Madrid vs. FC Barcelona — El Clásico",
        "laliga-rma-bar",
        ("Real Madrid", "Barcelona"),
        False,
    ),
    (
        "Will the S&P 500 close above 7,000 on Friday?",
        "spx-above-7000-friday",
        ("Yes", "No"),
        False,
    ),
    ("Solana Up or Down - 12PM ET?", "sol-up-or-down-12pm-et", ("Up", "Down"), False),
)

# When each market closes, relative to the dataset's ``now`` (None: open for the foreseeable
# future), how long after closing its outcome is known, its tags and its event. Markets that
# closed before ``now`` carry no fills after their close (see MarketPool.reassign_closed); the
# ones closing after it resolve as the data clock passes (``advance``).
_LIFECYCLE: dict[str, tuple[int | None, int, tuple[str, ...], str]] = {
    "bitcoin-150k-dec-31": (None, 0, ("Crypto", "Bitcoin"), "bitcoin-price-2026"),
    "btc-up-or-down-3pm-et": (-25 * _DAY, 900, ("Crypto", "Up or Down"), "btc-up-or-down"),
    "taiwan-election-2028-kmt": (None, 0, ("Politics", "Elections"), "taiwan-election-2028"),
    "france-election-le-pen": (None, 0, ("Politics", "Elections"), "france-election-2027"),
    "tokyo-july-high-35c": (-12 * _DAY, 6 * _HOUR, ("Weather",), "tokyo-weather-july"),
    "nba-lal-bos-2026-01-15": (-6 * _DAY, 3 * _HOUR, ("Sports", "NBA"), "nba-lal-bos-2026-01-15"),
    "fed-march-25bp-cut": (30 * 60, _HOUR, ("Economy", "Fed"), "fed-decision-march"),
    "eth-flippening-this-cycle": (None, 0, ("Crypto", "Ethereum"), "eth-flippening"),
    "sao-paulo-brasileirao": (7 * _DAY, 2 * _HOUR, ("Sports", "Soccer"), "brasileirao-winner"),
    "oil-over-100-june": (-_HOUR, 2 * _HOUR, ("Economy", "Commodities"), "oil-price-june"),
    "moscow-over-30c-july": (-3 * _DAY, 4 * _HOUR, ("Weather",), "moscow-weather-july"),
    "eurovision-2026-sweden": (30 * _DAY, _HOUR, ("Culture", "Eurovision"), "eurovision-2026"),
    "nyc-rain-tomorrow": (600, 600, ("Weather",), "nyc-weather"),
    "laliga-rma-bar": (-40 * _DAY, 2 * _HOUR, ("Sports", "Soccer"), "laliga-el-clasico"),
    "spx-above-7000-friday": (_DAY, _HOUR, ("Economy", "Stocks"), "spx-weekly"),
    "sol-up-or-down-12pm-et": (-2 * _HOUR, 900, ("Crypto", "Up or Down"), "sol-up-or-down"),
}

# Open markets that take over the orders of markets already closed at their fill time.
# Both are non-neg-risk and have non-ASCII titles, so reassigned fills keep their edge cases.
_SUCCESSORS = ("bitcoin-150k-dec-31", "eth-flippening-this-cycle")

_FEES = (0, 0, 10, 25)

# Polygon makes a block about every 2 s; anchor chosen near a real block/time pair.
_BLOCK_ANCHOR_TS = 1_700_000_000
_BLOCK_ANCHOR = 50_000_000


def block_number_at(ts: int) -> int:
    """A plausible Polygon block number for a Unix time (monotonic in time)."""
    return _BLOCK_ANCHOR + (ts - _BLOCK_ANCHOR_TS) // 2


def below(rng: random.Random, n: int) -> int:
    """A uniform integer in ``[0, n)``: ``randrange`` is several times slower in bulk."""
    return int(rng.random() * n)


def _hex(rng: random.Random, nbytes: int) -> str:
    return f"0x{rng.getrandbits(8 * nbytes):0{2 * nbytes}x}"


@dataclass(frozen=True, slots=True)
class Market:
    """One binary market: two outcome tokens (uint256 ids as decimal strings).

    ``close_at`` / ``resolve_at`` (Unix seconds, None: not scheduled) are when trading stops
    and when the outcome ``winner`` (0 or 1: which token wins) becomes known.
    """

    title: str
    slug: str
    condition_id: str
    token_ids: tuple[str, str]
    labels: tuple[str, str]
    neg_risk: bool
    close_at: int | None = None
    resolve_at: int | None = None
    winner: int = 0
    tags: tuple[str, ...] = ()
    event_slug: str | None = None

    @property
    def has_unicode_title(self) -> bool:
        """True when the title is not plain ASCII (the tap must round-trip it)."""
        return not self.title.isascii()


@dataclass(frozen=True, slots=True)
class Order:
    """A CLOB order; several fills may share it (partial fills)."""

    order_hash: str
    market: Market
    outcome: int
    side: str
    price: float


class MarketPool:
    """The markets of one dataset, plus factories for orders and fills on them."""

    def __init__(self, seed: int, now: int = 0, *, extra: int = 0) -> None:
        """The template markets, then `extra` plain open ones (a wallet list that trades
        thousands of markets, as real ones do: the markets stream then needs many requests)."""
        if extra < 0:
            raise ValueError("extra markets must be >= 0")
        rng = random.Random(f"dome-sim:{seed}:markets")
        markets = []
        for title, slug, labels, neg_risk in _TEMPLATES:
            token_ids = (str(rng.getrandbits(256)), str(rng.getrandbits(256)))
            condition_id = _hex(rng, 32)
            close_in, resolve_after, tags, event_slug = _LIFECYCLE[slug]
            close_at = None if close_in is None else now + close_in
            resolve_at = None if close_at is None else close_at + resolve_after
            winner = below(random.Random(f"dome-sim:{seed}:winner:{slug}"), 2)
            markets.append(
                Market(
                    title,
                    slug,
                    condition_id,
                    token_ids,
                    labels,
                    neg_risk,
                    close_at,
                    resolve_at,
                    winner,
                    tags,
                    event_slug,
                )
            )
        extra_rng = random.Random(f"dome-sim:{seed}:extra-markets")
        for index in range(extra):
            token_ids = (str(extra_rng.getrandbits(256)), str(extra_rng.getrandbits(256)))
            markets.append(
                Market(
                    f"Market {index}: will it happen?",
                    f"market-{index}",
                    _hex(extra_rng, 32),
                    token_ids,
                    ("Yes", "No"),
                    index % 3 == 0,
                    tags=("Other",),
                    event_slug=f"event-{index // 10}",
                )
            )
        self.now = now
        self.markets: tuple[Market, ...] = tuple(markets)
        self.unicode_markets = tuple(m for m in self.markets if m.has_unicode_title)
        self.by_condition = {m.condition_id: m for m in self.markets}
        by_slug = {m.slug: m for m in self.markets}
        self._successors = tuple(by_slug[slug] for slug in _SUCCESSORS)

    def successor(self, market: Market) -> Market:
        """The open market that takes over orders placed after ``market`` closed."""
        index = self.markets.index(market) if market in self.markets else 0
        return self._successors[index % len(self._successors)]

    def reassign_closed(
        self, fills: list[Fill], closes_at: Callable[[Market], int | None] | None = None
    ) -> int:
        """Move every order with a fill at or after its market's close to an open market.

        Keeps the data consistent (no trading on a closed market) without changing any fill's
        time, amount or identity; an order moves whole, so its partial fills stay on one
        market. Exchange takers follow the new market. Returns how many fills moved.
        """
        close_of = closes_at or (lambda market: market.close_at)
        late: set[str] = set()
        for fill in fills:
            market = self.by_condition.get(fill.condition_id)
            if market is None:
                continue
            close = close_of(market)
            if close is not None and fill.timestamp >= close:
                late.add(fill.order_hash)
        moved = 0
        for fill in fills:
            if fill.order_hash not in late:
                continue
            market = self.by_condition.get(fill.condition_id)
            if market is None or market in self._successors:
                continue
            target = self.successor(market)
            outcome = market.token_ids.index(fill.token_id)
            fill.token_id = target.token_ids[outcome]
            fill.token_label = target.labels[outcome]
            fill.market_slug = target.slug
            fill.condition_id = target.condition_id
            fill.title = target.title
            if fill.taker in (CTF_EXCHANGE, NEG_RISK_CTF_EXCHANGE):
                fill.taker = NEG_RISK_CTF_EXCHANGE if target.neg_risk else CTF_EXCHANGE
            moved += 1
        return moved

    def new_order(self, rng: random.Random, market: Market | None = None) -> Order:
        """A fresh order at a 2- or 3-decimal price strictly inside (0, 1)."""
        market = market or self.markets[below(rng, len(self.markets))]
        decimals = 3 if rng.random() < 0.2 else 2
        price = round(0.01 + 0.98 * rng.random(), decimals)
        price = min(max(price, 0.001), 0.999)
        side = "BUY" if rng.random() < 0.6 else "SELL"
        return Order(_hex(rng, 32), market, below(rng, 2), side, price)

    def transaction(
        self,
        rng: random.Random,
        user: str,
        ts: int,
        orders: list[Order],
        *,
        indexed_at: int | None = None,
        taker: str | _Draw | None = DRAW,
    ) -> list[Fill]:
        """The fills of ``user``'s orders settled by one transaction at time ``ts``.

        ``taker=DRAW`` draws the taker at random; pass an address or ``None`` to force it.
        Fills of the same order in one transaction get distinct share amounts, so
        even the weak fallback identity (without log_index) keeps them apart.
        """
        tx_hash = _hex(rng, 32)
        block = block_number_at(ts)
        log_index = below(rng, 300)
        seen: set[tuple[str, int]] = set()
        fills: list[Fill] = []
        for order in orders:
            shares = (1 + below(rng, 5000)) * 10_000
            while (order.order_hash, shares) in seen:
                shares += 10_000
            seen.add((order.order_hash, shares))
            fill_taker = self._taker(rng, order.market) if isinstance(taker, _Draw) else taker
            extra = {"fee_rate_bps": _FEES[below(rng, 4)]} if rng.random() < 0.1 else {}
            fills.append(
                Fill(
                    token_id=order.market.token_ids[order.outcome],
                    token_label=order.market.labels[order.outcome],
                    side=order.side,
                    market_slug=order.market.slug,
                    condition_id=order.market.condition_id,
                    shares=shares,
                    price=order.price,
                    block_number=block,
                    log_index=log_index,
                    tx_hash=tx_hash,
                    title=order.market.title,
                    timestamp=ts,
                    order_hash=order.order_hash,
                    user=user,
                    taker=fill_taker,
                    extra=extra,
                    indexed_at=indexed_at,
                )
            )
            log_index += 1 + below(rng, 4)
        return fills

    @staticmethod
    def _taker(rng: random.Random, market: Market) -> str | None:
        roll = rng.random()
        if roll < 0.05:
            return None
        if roll < 0.25:
            return NEG_RISK_CTF_EXCHANGE if market.neg_risk else CTF_EXCHANGE
        return _hex(rng, 20)
