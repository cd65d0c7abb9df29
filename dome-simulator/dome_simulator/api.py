"""``GET /v1/polymarket/orders``: parameter rules, paging and serialization.

This is the hot path. A page is two bisects and a slice of pre-serialized rows
(see book.py), joined into the response without re-encoding them, unless a fault
(``no_log_index``) asks for a different row shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

from .book import Book
from .cursor import Cursor, CursorError, filters_digest
from .faults import Faults
from .responses import Response, error
from .store import Filters, Store, legacy_row

__all__ = ["DEPRECATION_DOCS", "serve_orders"]

#: The ``docs`` link sent with the 401 that refuses deep offsets.
DEPRECATION_DOCS = "https://docs.domeapi.io/polymarket/trade-history#pagination"

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


class BadRequest(Exception):
    """A parameter broke one of the documented rules."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _first(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name)
    if not values or values[0] == "":
        return None
    return values[0].strip()


def _timestamp(params: Mapping[str, Sequence[str]], name: str) -> int | None:
    text = _first(params, name)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()):
        raise BadRequest(error(400, f"Invalid {name}", f"{name} must be a valid Unix timestamp"))
    return int(text)


def _limit(params: Mapping[str, Sequence[str]]) -> int:
    text = _first(params, "limit")
    if text is None:
        return DEFAULT_LIMIT
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise BadRequest(
            error(400, "Invalid limit parameter", "limit must be a number between 1 and 1000")
        )
    return value


def _offset(params: Mapping[str, Sequence[str]]) -> int:
    text = _first(params, "offset")
    if text is None:
        return 0
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise BadRequest(
            error(400, "Invalid offset parameter", "offset must be a non-negative number")
        )
    return value


def _filters(params: Mapping[str, Sequence[str]]) -> Filters:
    user = _first(params, "user")
    slugs = tuple(s for s in params.get("market_slug", ()) if s)
    condition_id = _first(params, "condition_id")
    token_id = _first(params, "token_id")
    if sum(map(bool, (slugs, condition_id, token_id))) > 1:
        raise BadRequest(
            error(
                400,
                "Invalid filter combination",
                "Only one of market_slug, token_id, or condition_id can be provided",
            )
        )
    if not (user or slugs or condition_id or token_id):
        raise BadRequest(
            error(
                400,
                "Missing filter",
                "At least one of market_slug, condition_id, user, or token_id must be provided",
            )
        )
    return Filters(user.lower() if user else None, slugs, condition_id, token_id)


def serve_orders(
    store: Store, faults: Faults, params: Mapping[str, Sequence[str]], *, mutate: bool = True
) -> Response:
    """Answer one orders request. ``mutate=False`` skips ``insert_on_walk`` side effects."""
    try:
        filters = _filters(params)
        start = _timestamp(params, "start_time")
        end = _timestamp(params, "end_time")
        if start is not None and end is not None and start >= end:
            raise BadRequest(
                error(400, "Invalid time range", "start_time must be less than end_time")
            )
        limit = _limit(params)
        offset = _offset(params)
        digest = filters_digest(
            filters.user, start, end, limit, filters.market_slugs, filters.condition_id,
            filters.token_id,
        )  # fmt: skip
        key = _first(params, "pagination_key")
        cursor: Cursor | None = None
        if key is not None:
            try:
                cursor = Cursor.decode(key, digest)
            except CursorError as exc:
                raise BadRequest(error(400, "Invalid pagination_key", str(exc))) from None
        elif faults.offset_limit is not None and offset > faults.offset_limit:
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
    with store.lock:
        book: Book = store.select(filters)
        lo, hi = book.bounds(start, end)
        if cursor is not None:
            total, descending = cursor.total, cursor.descending
            page = book.page(lo, hi, after=cursor.key, offset=0, limit=limit, descending=descending)
        else:
            total, descending = hi - lo, faults.sort == "desc"
            page = book.page(lo, hi, after=None, offset=offset, limit=limit, descending=descending)
    if cursor is not None and mutate and faults.insert_on_walk and filters.user:
        store.add_head(filters.user)

    rows = page.rows
    if faults.no_log_index:
        rows = [orjson.dumps(legacy_row(orjson.loads(row))) for row in rows]
    pagination: dict[str, object] = {"limit": limit, "offset": offset}
    if not faults.omit_total:
        pagination["total"] = total
    pagination["has_more"] = page.has_more
    if page.has_more and page.last_key is not None and not faults.no_pagination_key:
        pagination["pagination_key"] = Cursor(page.last_key, total, digest, descending).encode()
    body = b"".join(
        (b'{"orders":[', b",".join(rows), b'],"pagination":', orjson.dumps(pagination), b"}")
    )
    return Response(200, body, rows=len(rows))
