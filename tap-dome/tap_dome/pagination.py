"""Dome's pagination as an SDK paginator: `pagination_key` first, `offset` as fallback.

The keyset cursor is opaque and only valid with the same filters, so callers keep every
other parameter fixed for the whole walk. Older API versions answer `has_more` without a
key; then the walk continues by offset (rows read so far). A repeated token, or an empty page
that claims more without a new cursor (or after MAX_EMPTY_PAGES such pages in a row), is an
error, never an endless loop. An empty page with a new cursor is followed: a server that
filters the rows after reading a page of them (a keyset cursor over all users) may send one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import requests
from singer_sdk.pagination import BaseAPIPaginator

from tap_dome.errors import DomePaginationError
from tap_dome.page import page_of


class PageToken(NamedTuple):
    """Where the next page starts: a cursor, or an offset when the API gave none."""

    pagination_key: str | None
    offset: int

    def as_params(self) -> dict[str, Any]:
        """Query parameters for this position (offset 0 is implicit)."""
        if self.pagination_key:
            return {"pagination_key": self.pagination_key}
        return {"offset": self.offset} if self.offset else {}


MAX_EMPTY_PAGES = 20


class DomePaginator(BaseAPIPaginator[PageToken | None]):
    """Tracks the walk through one time window of one wallet."""

    def __init__(self) -> None:
        super().__init__(None)
        self.rows_read = 0
        self.empty_pages = 0  # in a row

    def has_more(self, response: requests.Response) -> bool:
        """`has_more: false` ends the walk."""
        page = page_of(response)
        self.empty_pages = 0 if page.rows else self.empty_pages + 1
        if page.has_more and not page.rows:
            if not page.pagination_key:
                raise DomePaginationError(
                    "Dome API returned an empty page with has_more=true and no "
                    "pagination_key; stopping instead of looping "
                    f"(after {self.rows_read} rows)",
                )
            if self.empty_pages > MAX_EMPTY_PAGES:
                raise DomePaginationError(
                    f"Dome API returned {self.empty_pages} empty pages in a row with "
                    f"has_more=true; stopping instead of looping (after {self.rows_read} rows)",
                )
        return page.has_more

    def get_next(self, response: requests.Response) -> PageToken | None:
        """The cursor from the response, else the offset after the rows read so far."""
        page = page_of(response)
        self.rows_read += len(page.rows)
        previous = self.current_value
        if page.pagination_key and previous and page.pagination_key == previous.pagination_key:
            raise DomePaginationError(
                "Dome API repeated a pagination_key; stopping instead of looping "
                f"(after {self.rows_read} rows)",
            )
        return PageToken(page.pagination_key, self.rows_read)
