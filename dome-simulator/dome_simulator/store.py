"""All books of a simulator, the data clock, and fills added while running.

One lock guards every book: page slicing under it takes microseconds, and the
expensive part of a response (joining pre-serialized rows) happens outside it.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .book import Book
from .clock import DataClock
from .dataset import Dataset
from .fill import Fill, FillKey

__all__ = ["LATE_AGE_SECONDS", "Filters", "Store"]

#: How old late-indexed fills added by ``advance`` are, by default: 5 to 30 minutes before
#: the data clock, inside a tap's usual two-hour lookback.
LATE_AGE_SECONDS = (300, 1800)

_LEGACY_DROP = ("block_number", "log_index")


@dataclass(frozen=True, slots=True)
class Filters:
    """The row filters of one orders query (``user`` already lowercased)."""

    user: str | None = None
    market_slugs: tuple[str, ...] = ()
    condition_id: str | None = None
    token_id: str | None = None

    @property
    def user_only(self) -> bool:
        """True for the hot path: one wallet, no market filter."""
        return not (self.market_slugs or self.condition_id or self.token_id)

    def matches(self, row: dict[str, Any]) -> bool:
        """Whether a served row passes the market filters (user is matched by book)."""
        if self.market_slugs and row.get("market_slug") not in self.market_slugs:
            return False
        if self.condition_id and row.get("condition_id") != self.condition_id:
            return False
        return not (self.token_id and row.get("token_id") != self.token_id)


def legacy_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row as older API versions serve it: without block_number and log_index."""
    for name in _LEGACY_DROP:
        row.pop(name, None)
    return row


class Store:
    """Books of every wallet; see the module docstring."""

    def __init__(self, dataset: Dataset, clock: DataClock) -> None:
        self.lock = threading.RLock()
        self.dataset = dataset
        self.clock = clock
        now = clock.now()
        self.books: dict[str, Book] = {
            w: Book.build(dataset.fills(w), now) for w in dataset.wallets
        }
        self.version = 0  # bumped on every change; invalidates filtered views
        self._views: dict[Filters, tuple[int, Book]] = {}
        self._live: dict[str, random.Random] = {}
        self._next_due = min((b.next_due for b in self.books.values()), default=float("inf"))

    @property
    def wallets(self) -> list[str]:
        """Dataset wallets first, then wallets that only received live fills."""
        return list(self.books)

    # ---------------------------------------------------------------- visibility

    def promote_due(self) -> int:
        """Make late-indexed fills whose time has come visible (O(1) when none is due)."""
        now = self.clock.now()
        if now < self._next_due:
            return 0
        with self.lock:
            count = sum(book.promote(now) for book in self.books.values())
            self._next_due = min((b.next_due for b in self.books.values()), default=float("inf"))
            if count:
                self.version += 1
            return count

    # -------------------------------------------------------------------- views

    def select(self, filters: Filters) -> Book:
        """The book to page for ``filters``; call with ``lock`` held and page at once."""
        if filters.user_only and filters.user is not None:
            return self.books.get(filters.user) or Book()
        cached = self._views.get(filters)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        if filters.user is not None:
            sources = [self.books[filters.user]] if filters.user in self.books else []
        else:
            sources = list(self.books.values())
        pairs: list[tuple[FillKey, bytes]] = []
        for book in sources:
            pairs.extend(
                (key, blob)
                for key, blob in zip(book.keys, book.rows, strict=True)
                if filters.matches(orjson.loads(blob))
            )
        pairs.sort(key=lambda item: item[0])
        view = Book([k for k, _ in pairs], [b for _, b in pairs])
        self._views[filters] = (self.version, view)
        return view

    # -------------------------------------------------------------- live fills

    def _rng(self, wallet: str) -> random.Random:
        rng = self._live.get(wallet)
        if rng is None:
            rng = self._live[wallet] = self.dataset.live_rng(wallet)
        return rng

    def _add(self, fills: Sequence[Fill]) -> int:
        now = self.clock.now()
        visible = 0
        with self.lock:
            for fill in fills:
                book = self.books.get(fill.user)
                if book is None:
                    book = self.books[fill.user] = Book()
                visible += book.add(fill, now)
                self._next_due = min(self._next_due, book.next_due)
            self.version += 1
        return visible

    def add_head(self, wallet: str, count: int = 1) -> int:
        """Add ``count`` fresh fills stamped 0-3 s before the data clock (the new head)."""
        wallet = wallet.lower()
        pool = self.dataset.markets
        head = int(self.clock.stamp_now())
        fills: list[Fill] = []
        with self.lock:
            rng = self._rng(wallet)
            for _ in range(count):
                ts = head - rng.randint(0, 3)
                fills += pool.transaction(rng, wallet, ts, [pool.new_order(rng)])
        return self._add(fills)

    def add_late(self, wallet: str, count: int = 1, age: tuple[int, int] = LATE_AGE_SECONDS) -> int:
        """Add ``count`` fills stamped ``age`` seconds before the data clock, indexed only now."""
        wallet = wallet.lower()
        pool = self.dataset.markets
        head = int(self.clock.stamp_now())
        indexed_at = int(self.clock.now())
        fills: list[Fill] = []
        with self.lock:
            rng = self._rng(wallet)
            for _ in range(count):
                ts = head - rng.randint(*age)
                order = pool.new_order(rng)
                fills += pool.transaction(rng, wallet, ts, [order], indexed_at=indexed_at)
        return self._add(fills)

    # ---------------------------------------------------------------- inspection

    def visible(self, wallet: str | None = None) -> list[tuple[FillKey, bytes]]:
        """(key, row) of every visible fill, newest first; for one wallet or all."""
        self.promote_due()
        with self.lock:
            if wallet is not None:
                book = self.books.get(wallet.lower())
                pairs = list(zip(book.keys, book.rows, strict=True)) if book else []
            else:
                pairs = [
                    pair
                    for book in self.books.values()
                    for pair in zip(book.keys, book.rows, strict=True)
                ]
        pairs.sort(key=lambda item: item[0], reverse=True)
        return pairs

    def counts(self) -> dict[str, int]:
        """Visible and pending fill counts at the data clock (for health checks)."""
        self.promote_due()
        with self.lock:
            return {
                "visible": sum(len(b) for b in self.books.values()),
                "pending": sum(b.pending for b in self.books.values()),
            }
