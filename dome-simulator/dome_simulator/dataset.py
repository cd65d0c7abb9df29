"""Seeded, deterministic wallet histories for the simulator.

A :class:`Dataset` is a recipe, not a table: it lists wallets (:class:`WalletSpec`)
and generates each wallet's fills on demand from ``random.Random(f"{seed}:{wallet}")``,
so the same seed and ``now`` always give the same fills, and a wallet's fills do
not depend on which other wallets exist.

Timestamps are relative to ``now`` (the real wall clock when the dataset is built,
unless given): every history ends ``end_gap`` seconds (a few minutes) before it,
because the tap ends its walk at its own wall clock and the simulator is a
real-time API that never serves fills from the future.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from .activity import Activity, generate_activity
from .fill import CTF_EXCHANGE, Fill
from .markets import MarketPool, Order, below

__all__ = ["DAY", "Dataset", "WalletSpec"]

DAY = 86_400
_OPEN_ORDERS = 40  # how many recent orders a wallet may still be partially filling


@dataclass(frozen=True, slots=True)
class WalletSpec:
    """The shape of one wallet's history.

    ``fills`` counts every fill, including the ``burst`` fills that share one second
    (placed mid-history) and the ``late`` fills that are indexed ``late_delay``
    seconds after the dataset's ``now`` (stamped in the last 30 minutes of history).
    ``activity`` is how many SPLITs the wallet makes over its history (some followed by a
    MERGE; redemptions follow from its positions, see activity.py); None draws it: about
    half of the wallets with 5+ fills have some, the others none.
    """

    fills: int
    role: str = ""
    address: str | None = None
    span: float = 30 * DAY
    end_gap: float = 180.0
    burst: int = 0
    late: int = 0
    late_delay: float = 1800.0
    activity: int | None = None

    def __post_init__(self) -> None:
        if self.fills < 0 or self.burst < 0 or self.late < 0:
            raise ValueError("fill counts must be >= 0")
        if self.activity is not None and self.activity < 0:
            raise ValueError("activity must be >= 0 (or None to draw it)")
        if self.burst + self.late > self.fills:
            raise ValueError("burst + late must not exceed fills")
        if self.span < 0 or self.end_gap < 0 or self.late_delay < 0:
            raise ValueError("span, end_gap and late_delay must be >= 0")


def wallet_address(seed: int, label: str) -> str:
    """A stable lowercase 0x address derived from the seed and a label."""
    return "0x" + hashlib.sha256(f"dome-sim:{seed}:{label}".encode()).hexdigest()[:40]


class Dataset:
    """Wallets and the recipe for their fills; see the module docstring."""

    def __init__(
        self,
        specs: Sequence[WalletSpec] = (),
        *,
        seed: int = 0,
        now: float | None = None,
        fills: Iterable[Fill] = (),
        markets: int = 0,
    ) -> None:
        self.seed = seed
        self.now = int(time.time() if now is None else now)
        self.markets = MarketPool(seed, self.now, extra=markets)
        self._specs: dict[str, WalletSpec] = {}
        for index, spec in enumerate(specs):
            address = (spec.address or wallet_address(seed, spec.role or f"w{index}")).lower()
            if address in self._specs:
                raise ValueError(f"duplicate wallet {address}")
            self._specs[address] = replace(spec, address=address)
        self._explicit: dict[str, list[Fill]] = {}
        for fill in fills:
            own = replace(fill, user=fill.user.lower(), extra=dict(fill.extra))
            self._explicit.setdefault(own.user, []).append(own)
        self._wallets = list(self._specs) + [w for w in self._explicit if w not in self._specs]

    # ----------------------------------------------------------------- profiles

    @classmethod
    def standard(
        cls, seed: int = 7, page: int = 1000, *, large: int = 30_000, now: float | None = None
    ) -> Dataset:
        """Every edge case the tap must survive, sized relative to the page size.

        Roles: empty, one, page_minus_1, page, page_plus_1, large (``large`` fills over
        a year), burst (more than ``page`` fills in one second), mixed (partial fills,
        multi-fill transactions, unicode titles, null and exchange takers: every wallet
        with 5+ fills has those; and splits, merges and redemptions) and late (fills indexed
        30 minutes after ``now``).
        """
        if page < 1:
            raise ValueError("page must be >= 1")
        burst = page + page // 2 + 1
        specs = [
            WalletSpec(0, "empty"),
            WalletSpec(1, "one"),
            WalletSpec(max(page - 1, 0), "page_minus_1"),
            WalletSpec(page, "page"),
            WalletSpec(page + 1, "page_plus_1"),
            WalletSpec(large, "large", span=365 * DAY),
            WalletSpec(burst + page, "burst", span=7 * DAY, burst=burst),
            WalletSpec(max(200, page // 2), "mixed", span=14 * DAY, activity=12),
            WalletSpec(70, "late", span=2 * 3600, late=20),
        ]
        return cls(specs, seed=seed, now=now)

    @classmethod
    def demo(cls, seed: int = 7, *, now: float | None = None) -> Dataset:
        """A handful of wallets with a few thousand fills: quick to load end to end."""
        counts = (1500, 900, 400, 120, 15)
        specs = [WalletSpec(n, f"demo{i}", span=30 * DAY) for i, n in enumerate(counts)]
        return cls(specs, seed=seed, now=now)

    @classmethod
    def bench(
        cls,
        seed: int = 7,
        wallets: int = 10,
        fills_per_wallet: int = 10_000,
        *,
        span: float = 365 * DAY,
        now: float | None = None,
    ) -> Dataset:
        """Uniform wallets for throughput measurements."""
        specs = [WalletSpec(fills_per_wallet, f"bench{i}", span=span) for i in range(wallets)]
        return cls(specs, seed=seed, now=now)

    @classmethod
    def custom(
        cls,
        wallets: Mapping[str, int] | Sequence[int | WalletSpec],
        *,
        seed: int = 0,
        now: float | None = None,
        span: float = 30 * DAY,
        end_gap: float = 180.0,
        markets: int = 0,
    ) -> Dataset:
        """Explicit wallets: ``{address: count}``, or counts / :class:`WalletSpec` items;
        ``markets`` plain open markets beside the template ones, traded like them."""
        if isinstance(wallets, Mapping):
            specs = [
                WalletSpec(n, address=a, span=span, end_gap=end_gap) for a, n in wallets.items()
            ]
        else:
            specs = [
                w if isinstance(w, WalletSpec) else WalletSpec(w, span=span, end_gap=end_gap)
                for w in wallets
            ]
        return cls(specs, seed=seed, now=now, markets=markets)

    @classmethod
    def from_fills(
        cls, fills: Iterable[Fill], *, seed: int = 0, now: float | None = None
    ) -> Dataset:
        """Exactly these fills (for tests that need hand-made rows)."""
        return cls((), seed=seed, now=now, fills=fills)

    # ------------------------------------------------------------------ access

    @property
    def wallets(self) -> list[str]:
        """Lowercase wallet addresses, in declaration order."""
        return list(self._wallets)

    @property
    def roles(self) -> dict[str, str]:
        """Role name -> wallet, for wallets declared with a role."""
        return {spec.role: address for address, spec in self._specs.items() if spec.role}

    @property
    def specs(self) -> dict[str, WalletSpec]:
        """Wallet -> its spec (wallets given as explicit fills have none)."""
        return dict(self._specs)

    def fills(self, wallet: str) -> list[Fill]:
        """Every fill of ``wallet`` (visible or not), generated afresh, in no set order."""
        wallet = wallet.lower()
        out = [replace(f, extra=dict(f.extra)) for f in self._explicit.get(wallet, ())]
        spec = self._specs.get(wallet)
        if spec is not None:
            out.extend(self._generate(wallet, spec))
        return out

    def explicit_fills(self) -> list[Fill]:
        """The hand-made fills (``from_fills``), all wallets; markets are derived from them."""
        return [fill for fills in self._explicit.values() for fill in fills]

    def activity(self, wallet: str, fills: Iterable[Fill]) -> list[Activity]:
        """The wallet's SPLIT/MERGE/REDEEM rows, consistent with ``fills`` (its own fills)."""
        wallet = wallet.lower()
        spec = self._specs.get(wallet)
        if spec is None:
            return []
        rng = random.Random(f"dome-sim:{self.seed}:{wallet}:activity")
        events = spec.activity
        if events is None:
            events = 1 + min(spec.fills // 25, 40) if spec.fills >= 5 and rng.random() < 0.5 else 0
        end = self.now - int(spec.end_gap)
        return generate_activity(
            rng, self.markets, wallet, fills, events, (end - int(spec.span), end)
        )

    def live_rng(self, wallet: str) -> random.Random:
        """The generator for fills added while the simulator runs (seeded, per wallet)."""
        return random.Random(f"dome-sim:{self.seed}:{wallet.lower()}:live")

    # -------------------------------------------------------------- generation

    def _generate(self, wallet: str, spec: WalletSpec) -> list[Fill]:
        rng = random.Random(f"dome-sim:{self.seed}:{wallet}")
        pool = self.markets
        end = self.now - int(spec.end_gap)
        start = end - int(spec.span)
        open_orders: list[Order] = []

        def pick() -> Order:
            if open_orders and rng.random() < 0.3:
                return open_orders[below(rng, len(open_orders))]
            order = pool.new_order(rng)
            open_orders.append(order)
            if len(open_orders) > _OPEN_ORDERS:
                open_orders.pop(0)
            return order

        def group_of(size: int) -> list[Order]:
            orders: list[Order] = []
            for i in range(size):
                same_again = i > 0 and rng.random() < 0.3
                orders.append(orders[0] if same_again else pick())
            return orders

        fills: list[Fill] = []
        normal = spec.fills - spec.burst - spec.late
        groups: list[list[Order]] = []
        forced_takers: dict[int, str | None] = {}
        if normal >= 5:
            # Guaranteed edge cases: one order filled twice in one transaction and again
            # in two later ones, next to another order; a null and an exchange taker.
            a = pool.new_order(rng, pool.unicode_markets[below(rng, len(pool.unicode_markets))])
            b = pool.new_order(rng)
            open_orders.extend((a, b))
            groups += [[a, a, b], [a], [a]]
            forced_takers = {1: None, 2: CTF_EXCHANGE}
        count = sum(len(g) for g in groups)
        while count < normal:
            roll = rng.random()
            size = 1 if roll < 0.82 else 2 if roll < 0.94 else 3 + below(rng, 3)
            size = min(size, normal - count)
            groups.append(group_of(size))
            count += size
        width = end - start + 1
        times = sorted(start + below(rng, width) for _ in groups)
        for index, (orders, ts) in enumerate(zip(groups, times, strict=True)):
            if index in forced_takers:
                fills += pool.transaction(rng, wallet, ts, orders, taker=forced_takers[index])
            else:
                fills += pool.transaction(rng, wallet, ts, orders)

        burst_ts = start + (end - start) // 2
        remaining = spec.burst
        while remaining > 0:
            size = min(1 + below(rng, 3), remaining)
            fills += pool.transaction(rng, wallet, burst_ts, group_of(size))
            remaining -= size

        indexed_at = self.now + int(spec.late_delay)
        for _ in range(spec.late):
            first = max(start, end - 1800)
            ts = first + below(rng, end - first + 1)
            fills += pool.transaction(rng, wallet, ts, [pick()], indexed_at=indexed_at)
        pool.reassign_closed(fills)
        return fills
