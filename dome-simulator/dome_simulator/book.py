"""Per-wallet fills as sorted arrays: the data structure behind fast paging.

Rows are kept pre-serialized (orjson bytes, one per fill) in ascending key order
``(timestamp, tx_hash, log_index)``, next to a parallel list of keys, so a page is
two bisects and a slice: no per-request work proportional to the wallet's size.
Fills not yet indexed wait in a heap until the simulator clock reaches them.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from .fill import FillKey

__all__ = ["Book", "Page", "Servable", "serialize"]


class Servable(Protocol):
    """A row a book can hold: a fill or an activity event."""

    @property
    def key(self) -> FillKey:
        """Its paging position."""

    @property
    def visible_from(self) -> int:
        """The data clock from which it is served."""

    def to_api(self) -> dict[str, Any]:
        """Its JSON object."""


def serialize(fill: Servable) -> bytes:
    """The fill's API JSON as a right-sized bytes object.

    orjson returns bytes with a large over-allocated buffer; keeping hundreds of
    thousands of them would cost ~8 KB each in heap fragmentation instead of ~0.7 KB.
    """
    return bytes(memoryview(orjson.dumps(fill.to_api())))


@dataclass(frozen=True, slots=True)
class Page:
    """A slice of a book in serving order, and where the next page would start."""

    rows: list[bytes]
    last_key: FillKey | None
    has_more: bool


class Book:
    """The visible fills of one wallet (or of one filtered view), ascending by key."""

    __slots__ = ("_pending", "keys", "rows")

    def __init__(self, keys: list[FillKey] | None = None, rows: list[bytes] | None = None) -> None:
        self.keys: list[FillKey] = keys if keys is not None else []
        self.rows: list[bytes] = rows if rows is not None else []
        self._pending: list[tuple[int, FillKey, bytes]] = []

    @classmethod
    def build(cls, fills: Iterable[Servable], now: float) -> Book:
        """Serialize ``fills`` once; those indexed after ``now`` go to the pending heap."""
        visible: list[tuple[FillKey, bytes]] = []
        book = cls()
        for fill in fills:
            blob = serialize(fill)
            if fill.visible_from <= now:
                visible.append((fill.key, blob))
            else:
                book._pending.append((fill.visible_from, fill.key, blob))
        visible.sort(key=lambda item: item[0])
        book.keys = [key for key, _ in visible]
        book.rows = [blob for _, blob in visible]
        heapq.heapify(book._pending)
        return book

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def next_due(self) -> float:
        """When the next pending fill becomes visible (infinity when none waits)."""
        return self._pending[0][0] if self._pending else float("inf")

    @property
    def pending(self) -> int:
        """How many fills are not indexed yet."""
        return len(self._pending)

    def add(self, fill: Servable, now: float) -> bool:
        """Add one fill; returns True when it is visible at once."""
        blob = serialize(fill)
        if fill.visible_from <= now:
            self._insert(fill.key, blob)
            return True
        heapq.heappush(self._pending, (fill.visible_from, fill.key, blob))
        return False

    def promote(self, now: float, on_visible: Callable[[bytes], None] | None = None) -> int:
        """Make every pending fill indexed by ``now`` visible; returns how many.

        ``on_visible`` is called with each row that becomes visible.
        """
        count = 0
        while self._pending and self._pending[0][0] <= now:
            _, key, blob = heapq.heappop(self._pending)
            self._insert(key, blob)
            if on_visible is not None:
                on_visible(blob)
            count += 1
        return count

    def _insert(self, key: FillKey, blob: bytes) -> None:
        index = bisect_right(self.keys, key)
        self.keys.insert(index, key)
        self.rows.insert(index, blob)

    def bounds(self, start: int | None, end: int | None) -> tuple[int, int]:
        """Index range of fills with ``start <= timestamp <= end`` (both inclusive)."""
        # (t, "", -1) sorts before every real key of second t.
        lo = 0 if start is None else bisect_left(self.keys, (start, "", -1))
        hi = len(self.keys) if end is None else bisect_left(self.keys, (end + 1, "", -1))
        return lo, max(lo, hi)

    def page(
        self,
        lo: int,
        hi: int,
        *,
        after: FillKey | None,
        offset: int,
        limit: int,
        descending: bool,
    ) -> Page:
        """Up to ``limit`` rows of ``[lo, hi)`` past the cursor ``after``, then ``offset``.

        Descending (the API's order) continues with keys strictly below ``after``;
        ascending with keys strictly above it.
        """
        keys = self.keys
        if descending:
            upper = hi if after is None else min(hi, bisect_left(keys, after))
            upper -= offset
            if upper <= lo:
                return Page([], None, False)
            begin = max(lo, upper - limit)
            rows = self.rows[begin:upper]
            rows.reverse()
            return Page(rows, keys[begin], begin > lo)
        lower = lo if after is None else max(lo, bisect_right(keys, after))
        lower += offset
        if lower >= hi:
            return Page([], None, False)
        stop = min(hi, lower + limit)
        return Page(self.rows[lower:stop], keys[stop - 1], stop < hi)
