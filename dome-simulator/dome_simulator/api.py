"""``GET /v1/polymarket/orders``: parameter rules, paging and serialization.

This is the hot path. A page is two bisects and a slice of pre-serialized rows
(see book.py), joined into the response without re-encoding them, unless a fault
(``no_log_index``) asks for a different row shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .cursor import filters_digest
from .faults import Faults
from .paging import (
    DEPRECATION_DOCS,
    add_more,
    page_response,
    read_cursor,
    shaped,
    take_page,
    unknown_wallet,
)
from .params import BadRequest, first, limit, offset, time_range
from .responses import Response, error
from .store import Filters, Store

__all__ = ["DEPRECATION_DOCS", "serve_orders"]

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def _filters(params: Mapping[str, Sequence[str]]) -> Filters:
    user = first(params, "user")
    slugs = tuple(s for s in params.get("market_slug", ()) if s)
    condition_id = first(params, "condition_id")
    token_id = first(params, "token_id")
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
        start, end = time_range(params)
        page_size = limit(params, DEFAULT_LIMIT, MAX_LIMIT)
        skip = offset(params)
        digest = filters_digest(
            filters.user, start, end, page_size, filters.market_slugs, filters.condition_id,
            filters.token_id,
        )  # fmt: skip
        cursor = read_cursor(params, digest, faults, skip)
    except BadRequest as bad:
        return bad.response

    refused = unknown_wallet(filters.user, filters.user in store.books, faults)
    if refused is not None:
        return refused
    store.promote_due()
    with store.lock:
        page = take_page(
            store.select(filters), (start, end), cursor, skip, page_size, faults, digest
        )
    if cursor is not None and mutate and faults.insert_on_walk and filters.user:
        store.add_head(filters.user)

    rows = shaped(page.rows, faults)
    pagination: dict[str, object] = {"limit": page_size, "offset": skip}
    if not faults.omit_total:
        pagination["total"] = page.total
    add_more(pagination, page, faults)
    return page_response(b"orders", rows, pagination, null_empty=faults.null_empty_rows)
