"""All books of a simulator (fills and activity), the market catalog, and rows added while running.

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

from .activity import new_split
from .book import Book
from .catalog import Catalog
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
        self.catalog = Catalog(dataset.markets, dataset.explicit_fills())
        self.books: dict[str, Book] = {}
        self.activity_books: dict[str, Book] = {}
        for wallet in dataset.wallets:
            fills = dataset.fills(wallet)
            self.books[wallet] = Book.build(fills, now)
            self.activity_books[wallet] = Book.build(dataset.activity(wallet, fills), now)
            for fill in fills:
                if fill.visible_from <= now:
                    self.catalog.record_fill(fill)
        self.version = 0  # bumped on every change; invalidates filtered views
        self._views: dict[tuple[str, Filters], tuple[int, Book]] = {}
        self._live: dict[str, random.Random] = {}
        self._next_due = self._earliest_due()

    @property
    def wallets(self) -> list[str]:
        """Dataset wallets first, then wallets that only received live fills."""
        return list(self.books)

    # ---------------------------------------------------------------- visibility

    def _earliest_due(self) -> float:
        books = (*self.books.values(), *self.activity_books.values())
        return min((b.next_due for b in books), default=float("inf"))

    def promote_due(self) -> int:
        """Make late-indexed rows whose time has come visible (O(1) when none is due).

        Returns how many fills became visible (activity rows are promoted too, not counted).
        """
        now = self.clock.now()
        if now < self._next_due:
            return 0
        with self.lock:
            count = sum(book.promote(now, self.catalog.record_blob) for book in self.books.values())
            moved = sum(book.promote(now) for book in self.activity_books.values())
            self._next_due = self._earliest_due()
            if count or moved:
                self.version += 1
            return count

    # -------------------------------------------------------------------- views

    def select(self, filters: Filters, kind: str = "orders") -> Book:
        """The book to page for ``filters``; call with ``lock`` held and page at once.

        ``kind`` is ``"orders"`` (fills) or ``"activity"``.
        """
        books = self.books if kind == "orders" else self.activity_books
        if filters.user_only and filters.user is not None:
            return books.get(filters.user) or Book()
        cached = self._views.get((kind, filters))
        if cached is not None and cached[0] == self.version:
            return cached[1]
        if filters.user is not None:
            sources = [books[filters.user]] if filters.user in books else []
        else:
            sources = list(books.values())
        pairs: list[tuple[FillKey, bytes]] = []
        for book in sources:
            pairs.extend(
                (key, blob)
                for key, blob in zip(book.keys, book.rows, strict=True)
                if filters.matches(orjson.loads(blob))
            )
        pairs.sort(key=lambda item: item[0])
        view = Book([k for k, _ in pairs], [b for _, b in pairs])
        self._views[(kind, filters)] = (self.version, view)
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
            self.dataset.markets.reassign_closed(list(fills), self.catalog.closes_at)
            for fill in fills:
                book = self.books.get(fill.user)
                if book is None:
                    book = self.books[fill.user] = Book()
                    self.activity_books.setdefault(fill.user, Book())
                shown = book.add(fill, now)
                if shown:
                    self.catalog.record_fill(fill)
                visible += shown
                self._next_due = min(self._next_due, book.next_due)
            self.version += 1
        return visible

    def add_splits(self, wallet: str, count: int = 1) -> int:
        """Add ``count`` SPLITs stamped 0-3 s before the data clock (new activity at the head)."""
        wallet = wallet.lower()
        head = int(self.clock.stamp_now())
        now = self.clock.now()
        added = 0
        with self.lock:
            rng = self._rng(wallet)
            book = self.activity_books.setdefault(wallet, Book())
            self.books.setdefault(wallet, Book())
            for _ in range(count):
                ts = head - rng.randint(0, 3)
                split = new_split(rng, self.dataset.markets, wallet, ts, self.catalog.closes_at)
                if split is not None:
                    added += book.add(split, now)
            self._next_due = min(self._next_due, book.next_due)
            self.version += 1
        return added

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

    def visible(
        self, wallet: str | None = None, kind: str = "orders"
    ) -> list[tuple[FillKey, bytes]]:
        """(key, row) of every visible fill (or activity row), newest first; one wallet or all."""
        self.promote_due()
        books = self.books if kind == "orders" else self.activity_books
        with self.lock:
            if wallet is not None:
                book = books.get(wallet.lower())
                pairs = list(zip(book.keys, book.rows, strict=True)) if book else []
            else:
                pairs = [
                    pair
                    for book in books.values()
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
