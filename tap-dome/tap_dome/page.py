"""The parsed form of one page of a Dome list endpoint, carried on its `requests.Response`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from tap_dome.rows import Rows, TypedDecoder, split_rows

PAGE_ATTRIBUTE = "dome_page"


@dataclass(frozen=True)
class Page:
    """One parsed response: its rows (fills, activities, markets) and its pagination.

    `total` is the API's count of rows matching the query's filters (`pagination.total` on
    orders and markets, `pagination.count` on activity), frozen at the walk's first page.
    """

    rows: Rows
    has_more: bool
    pagination_key: str | None
    total: int | None


def parse_page(
    body: bytes,
    rows_field: str = "orders",
    count_field: str = "total",
    typed: TypedDecoder | None = None,
) -> Page:
    """Parse a response body; raises ValueError when it is not a complete page."""
    rows, pagination = split_rows(body, rows_field, typed)
    return page_of_rows(rows, pagination, count_field)


def page_of_rows(rows: Rows, pagination: Any, count_field: str = "total") -> Page:
    """A page from its rows and its `pagination` value; ValueError when that is no object."""
    pagination = pagination or {}
    if not isinstance(pagination, dict):
        raise ValueError("response `pagination` is not an object")
    total = pagination.get(count_field)
    key = pagination.get("pagination_key")
    token = str(key) if key else None
    return Page(
        rows=rows,
        has_more=_has_more(pagination.get("has_more"), token),
        pagination_key=token,
        total=_as_int(total),
    )


def _has_more(value: Any, key: str | None) -> bool:
    """`has_more` as the API meant it. A boolean is taken as it is, and so is "true" or
    "false" as text. Absent (or anything else), a cursor for the next page means more:
    read as false, such a page would end the walk early, and the bookmark would then cover
    fills never read."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return key is not None


def attach_page(response: requests.Response, page: Page) -> requests.Response:
    """Keep the parsed page with its response, so the body is parsed only once."""
    setattr(response, PAGE_ATTRIBUTE, page)
    return response


def page_of(response: requests.Response) -> Page:
    """The page parsed from `response` (see `attach_page`)."""
    page = getattr(response, PAGE_ATTRIBUTE, None)
    if not isinstance(page, Page):
        raise TypeError("response carries no parsed Dome page")
    return page


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)
