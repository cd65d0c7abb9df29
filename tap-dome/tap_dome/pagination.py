"""Dome's pagination as an SDK paginator: `pagination_key` first, `offset` as fallback.

The keyset cursor is opaque and only valid with the same filters, so callers keep every
other parameter fixed for the whole walk. Older API versions answer `has_more` without a
key; then the walk continues by offset (rows read so far). A repeated token or an empty page
that claims more is an error, never an endless loop.
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


class DomePaginator(BaseAPIPaginator[PageToken | None]):
    """Tracks the walk through one time window of one wallet."""

    def __init__(self) -> None:
        super().__init__(None)
        self.rows_read = 0

    def has_more(self, response: requests.Response) -> bool:
        """`has_more: false` ends the walk."""
        page = page_of(response)
        if page.has_more and not page.rows:
            raise DomePaginationError(
                "Dome API returned an empty page with has_more=true; stopping instead of "
                f"looping (after {self.rows_read} rows, token {self.current_value})",
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
