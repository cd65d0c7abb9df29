"""Keyset paging over a :class:`Book`, shared by the orders and activity endpoints.

Both endpoints page the same way: newest first, an opaque ``pagination_key`` bound to the
filters with the first page's count frozen inside it, a deprecated ``offset`` that the
``offset_limit`` fault can refuse, and the ``sort`` / ``no_log_index`` faults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from .book import Book, Page
from .cursor import Cursor, CursorError
from .faults import Faults
from .params import BadRequest, first
from .responses import Response, error
from .store import legacy_row

__all__ = [
    "DEPRECATION_DOCS",
    "BookPage",
    "add_more",
    "page_response",
    "read_cursor",
    "shaped",
    "take_page",
    "unknown_wallet",
]

#: The ``docs`` link sent with the 401 that refuses deep offsets.
DEPRECATION_DOCS = "https://docs.domeapi.io/polymarket/trade-history#pagination"


@dataclass(frozen=True, slots=True)
class BookPage:
    """One page of rows in serving order, with the count and the next page's key."""

    rows: list[bytes]
    total: int
    has_more: bool
    next_key: str | None


def read_cursor(
    params: Mapping[str, Sequence[str]], digest: str, faults: Faults, skip: int
) -> Cursor | None:
    """The request's ``pagination_key`` (checked against the filters), or None for a first page.

    Without a key, an offset beyond the ``offset_limit`` fault is refused with the API's 401.
    """
    key = first(params, "pagination_key")
    if key is not None:
        try:
            return Cursor.decode(key, digest)
        except CursorError as exc:
            raise BadRequest(error(400, "Invalid pagination_key", str(exc))) from None
    if faults.offset_limit is not None and skip > faults.offset_limit:
        raise BadRequest(
            error(
                401,
                "Offset pagination deprecated",
                f"offset above {faults.offset_limit} is no longer supported; "
                "use pagination_key from the previous response instead",
                docs=DEPRECATION_DOCS,
            )
        )
    return None


def take_page(
    book: Book,
    window: tuple[int | None, int | None],
    cursor: Cursor | None,
    skip: int,
    page_size: int,
    faults: Faults,
    digest: str,
) -> BookPage:
    """Slice one page; call with the store's lock held (rows are re-shaped outside it)."""
    if cursor is not None and cursor.empty_first:
        again = Cursor(cursor.key, cursor.total, cursor.filters, cursor.descending)
        return BookPage([], cursor.total, True, again.encode())
    lo, hi = book.bounds(*window)
    page: Page
    if cursor is not None:
        total, descending = cursor.total, cursor.descending
        page = book.page(lo, hi, after=cursor.key, offset=0, limit=page_size, descending=descending)
    else:
        total, descending = hi - lo, faults.sort == "desc"
        page = book.page(lo, hi, after=None, offset=skip, limit=page_size, descending=descending)
    next_key = None
    if page.has_more and page.last_key is not None and not faults.no_pagination_key:
        next_key = Cursor(page.last_key, total, digest, descending, faults.empty_pages).encode()
    return BookPage(page.rows, total, page.has_more, next_key)


def unknown_wallet(user: str | None, known: bool, faults: Faults) -> Response | None:
    """The ``unknown_wallet_404`` fault's answer for a ``user`` with no rows, else None."""
    if not faults.unknown_wallet_404 or user is None or known:
        return None
    return error(404, "Not Found", f"No wallet mapping found for proxy {user}")


def add_more(pagination: dict[str, object], page: BookPage, faults: Faults) -> None:
    """``has_more`` (unless ``omit_has_more``) and the next page's key, if any."""
    if not faults.omit_has_more:
        pagination["has_more"] = page.has_more
    if page.next_key is not None:
        pagination["pagination_key"] = page.next_key


def shaped(rows: list[bytes], faults: Faults) -> list[bytes]:
    """Rows as the configured API version serves them (``no_log_index`` drops two fields)."""
    if faults.no_log_index:
        return [orjson.dumps(legacy_row(orjson.loads(row))) for row in rows]
    return rows


def page_response(
    name: bytes, rows: list[bytes], pagination: dict[str, object], *, null_empty: bool = False
) -> Response:
    """``{"<name>": [rows...], "pagination": {...}}`` without re-encoding the rows
    (``null_empty``: an empty page's rows are ``null``)."""
    listed = b"null" if null_empty and not rows else b"[" + b",".join(rows) + b"]"
    body = b"".join((b'{"', name, b'":', listed, b',"pagination":', orjson.dumps(pagination), b"}"))
    return Response(200, body, rows=len(rows))
