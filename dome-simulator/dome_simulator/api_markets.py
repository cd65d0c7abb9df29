"""``GET /v1/polymarket/markets``: markets by slug, event, condition, token, tag, status, search.

Filters of different kinds combine with AND; repeated keys of one kind (``condition_id=a&
condition_id=b``, at most 100 each) with OR. ``search`` matches title and description
case-insensitively and cannot be combined with other filters. ``start_time`` keeps markets
starting at or after it, ``end_time`` markets ending at or before it [INF]. ``min_volume``
compares with ``volume_total``. Rows come in ``condition_id`` order, ``limit`` 1..100 (default
10), paged by ``pagination_key`` (``total`` frozen at the first page, as on orders) or the
deprecated ``offset``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .cursor import CursorError, KeyCursor, filters_digest
from .faults import Faults
from .paging import DEPRECATION_DOCS
from .params import BadRequest, first, limit, many, offset, time_range
from .responses import Response, error
from .store import Store

__all__ = ["serve_markets"]

MAX_LIMIT = 100
DEFAULT_LIMIT = 10
MAX_VALUES = 100


@dataclass(frozen=True, slots=True)
class _Query:
    slugs: frozenset[str]
    events: frozenset[str]
    conditions: frozenset[str]
    tokens: frozenset[str]
    tags: frozenset[str]
    search: str | None
    status: str | None
    min_volume: float | None
    start: int | None
    end: int | None

    def matches(self, market: Mapping[str, Any]) -> bool:
        if self.search is not None:
            text = f"{market['title']} {market['description']}".lower()
            return all(word in text for word in self.search.lower().split())
        sides = {market["side_a"]["id"], market["side_b"]["id"]}
        return (
            (not self.slugs or market["market_slug"] in self.slugs)
            and (not self.events or market["event_slug"] in self.events)
            and (not self.conditions or market["condition_id"] in self.conditions)
            and (not self.tokens or bool(sides & self.tokens))
            and (not self.tags or bool({t.lower() for t in market["tags"]} & self.tags))
            and (self.status is None or market["status"] == self.status)
            and (self.min_volume is None or market["volume_total"] >= self.min_volume)
            and (self.start is None or market["start_time"] >= self.start)
            and (self.end is None or market["end_time"] <= self.end)
        )


def _query(params: Mapping[str, Sequence[str]]) -> _Query:
    slugs = many(params, "market_slug", MAX_VALUES)
    events = many(params, "event_slug", MAX_VALUES)
    conditions = many(params, "condition_id", MAX_VALUES)
    tokens = many(params, "token_id", MAX_VALUES)
    tags = many(params, "tags", MAX_VALUES)
    search = first(params, "search")
    status = first(params, "status")
    if status is not None and status not in ("open", "closed"):
        raise BadRequest(error(400, "Invalid status", "status must be 'open' or 'closed'"))
    min_volume: float | None = None
    text = first(params, "min_volume")
    if text is not None:
        try:
            min_volume = float(text)
        except ValueError:
            min_volume = math.nan
        if not math.isfinite(min_volume) or min_volume < 0:
            raise BadRequest(
                error(400, "Invalid min_volume", "min_volume must be a non-negative number")
            )
    start, end = time_range(params)
    others = (slugs, events, conditions, tokens, tags, status, min_volume, start, end)
    if search is not None and any(v not in (None, ()) for v in others):
        raise BadRequest(
            error(400, "Invalid filter combination", "search cannot be combined with other filters")
        )
    return _Query(
        frozenset(slugs), frozenset(events), frozenset(c.lower() for c in conditions),
        frozenset(tokens), frozenset(t.lower() for t in tags), search, status, min_volume,
        start, end,
    )  # fmt: skip


def serve_markets(store: Store, faults: Faults, params: Mapping[str, Sequence[str]]) -> Response:
    """Answer one markets request."""
    try:
        query = _query(params)
        page_size = limit(params, DEFAULT_LIMIT, MAX_LIMIT)
        skip = offset(params)
        digest = filters_digest("markets", repr(query), page_size)
        key = first(params, "pagination_key")
        cursor: KeyCursor | None = None
        if key is not None:
            try:
                cursor = KeyCursor.decode(key, digest)
            except CursorError as exc:
                raise BadRequest(error(400, "Invalid pagination_key", str(exc))) from None
        elif faults.offset_limit is not None and skip > faults.offset_limit:
            raise BadRequest(
                error(
                    401,
                    "Offset pagination deprecated",
                    f"offset above {faults.offset_limit} is no longer supported; "
                    "use pagination_key from the previous response instead",
                    docs=DEPRECATION_DOCS,
                )
            )
    except BadRequest as bad:
        return bad.response
    store.promote_due()
    now = store.clock.now()
    with store.lock:
        named = query.conditions or None  # by id: only those are described
        matching = [m for m in store.catalog.describe(now, named) if query.matches(m)]
    if cursor is not None:
        total = cursor.total
        rest = [m for m in matching if m["condition_id"] > cursor.after]
    else:
        total = len(matching)
        rest = matching[skip:]
    rows, has_more = rest[:page_size], len(rest) > page_size
    pagination: dict[str, object] = {"limit": page_size, "offset": skip}
    if not faults.omit_total:
        pagination["total"] = total
    pagination["has_more"] = has_more
    if has_more and not faults.no_pagination_key:
        pagination["pagination_key"] = KeyCursor(rows[-1]["condition_id"], total, digest).encode()
    body = orjson.dumps({"markets": rows, "pagination": pagination})
    return Response(200, body, rows=len(rows))
