"""``GET /v1/polymarket/activity``: a wallet's SPLIT / MERGE / REDEEM events, paged like orders.

Differences from orders, as the API has them: ``user`` is optional (omitted: every wallet),
``market_slug`` and ``condition_id`` are mutually exclusive (no ``token_id``), and the
pagination counts with ``count`` (the rows matching the filters, frozen at the first page),
not ``total``; there is no ``offset`` echo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .cursor import filters_digest
from .faults import Faults
from .paging import add_more, page_response, read_cursor, shaped, take_page, unknown_wallet
from .params import BadRequest, first, limit, offset, time_range
from .responses import Response, error
from .store import Filters, Store

__all__ = ["serve_activity"]

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def _filters(params: Mapping[str, Sequence[str]]) -> Filters:
    user = first(params, "user")
    slug = first(params, "market_slug")
    condition_id = first(params, "condition_id")
    if slug and condition_id:
        raise BadRequest(
            error(
                400,
                "Invalid filter combination",
                "Only one of market_slug or condition_id can be provided",
            )
        )
    return Filters(user.lower() if user else None, (slug,) if slug else (), condition_id, None)


def serve_activity(store: Store, faults: Faults, params: Mapping[str, Sequence[str]]) -> Response:
    """Answer one activity request."""
    try:
        filters = _filters(params)
        start, end = time_range(params)
        page_size = limit(params, DEFAULT_LIMIT, MAX_LIMIT)
        skip = offset(params)
        digest = filters_digest(
            "activity", filters.user, start, end, page_size, filters.market_slugs,
            filters.condition_id,
        )  # fmt: skip
        cursor = read_cursor(params, digest, faults, skip)
    except BadRequest as bad:
        return bad.response
    known = filters.user in store.books or filters.user in store.activity_books
    refused = unknown_wallet(filters.user, known, faults)
    if refused is not None:
        return refused
    store.promote_due()
    with store.lock:
        book = store.select(filters, "activity")
        page = take_page(book, (start, end), cursor, skip, page_size, faults, digest)
    pagination: dict[str, object] = {
        "limit": page_size,
        "count": page.total,
    }
    add_more(pagination, page, faults)
    rows = shaped(page.rows, faults)
    return page_response(b"activities", rows, pagination, null_empty=faults.null_empty_rows)
