"""The `markets` stream: what each fill and activity traded, kept current as markets resolve.

It reads GET /polymarket/markets for every `condition_id` that this run's orders and
activity rows carry (up to 100 per request, cursor pagination, many requests in flight at
once: a wallet list trades thousands of markets), and re-reads every market an earlier run
saw unresolved, so closes and resolutions arrive. The condition ids still
unresolved are kept in the stream's state. A market read again is a new record; dbt's
`dim_markets` keeps the latest read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from singer_sdk import Stream, StreamSchema, Tap
from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_dome.client import MARKETS
from tap_dome.concurrency import ordered_map
from tap_dome.errors import DomePaginationError
from tap_dome.page import page_of
from tap_dome.records import market_record
from tap_dome.services import Services
from tap_dome.streams import SCHEMAS_DIR

IDS_PER_REQUEST = 100
PAGE_LIMIT = 100
# Requests for markets in flight at most: each brings up to 100 markets (~100 KB) that wait
# in memory for their turn; 64 cover Dev's and Pro's rates at up to a few hundred ms.
MAX_IN_FLIGHT = 64
UNRESOLVED_KEY = "unresolved_condition_ids"


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    """`items` in lists of at most `size`."""
    for index in range(0, len(items), size):
        yield items[index : index + size]


def is_resolved(record: dict[str, Any]) -> bool:
    """A market is settled once the API names its winner."""
    return bool(record.get("winning_token_id") or record.get("winning_label"))


class MarketsStream(Stream):
    """One record per market read (see the module docstring)."""

    name = "markets"
    primary_keys = ("condition_id",)
    schema = StreamSchema(SCHEMAS_DIR)

    def __init__(self, tap: Tap, *, services: Services) -> None:
        super().__init__(tap)
        self.services = services
        self._known = frozenset(self.schema["properties"])

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        earlier = [str(c) for c in self.stream_state.get(UNRESOLVED_KEY) or []]
        wanted = sorted(set(earlier) | self.services.observations.condition_ids)
        answered: set[str] = set()
        resolved: set[str] = set()
        for records in ordered_map(
            lambda ids: list(self._read(ids)),
            chunks(wanted, IDS_PER_REQUEST),
            self._width(),
            "dome-markets",
        ):
            for record in records:
                answered.add(record["condition_id"])
                if is_resolved(record):
                    resolved.add(record["condition_id"])
                yield record
        # Read again next run: markets not resolved yet, and ids the API did not answer
        # for (not indexed yet).
        pending = sorted(set(wanted) - resolved)
        self.stream_state[UNRESOLVED_KEY] = pending
        self.logger.info(
            "Read %d market(s) for %d condition id(s); %d not resolved or not found yet",
            len(answered),
            len(wanted),
            len(pending),
        )

    def _width(self) -> int:
        """Requests in flight at once: as many as the tier's rate needs, at most
        MAX_IN_FLIGHT (their pages wait in memory)."""
        return min(MAX_IN_FLIGHT, self.services.lookups_in_flight)

    def _read(self, ids: list[str]) -> Iterator[dict[str, Any]]:
        """Every market of `ids`, following the cursor."""
        params: dict[str, Any] = {"condition_id": ids, "limit": PAGE_LIMIT}
        seen_keys: set[str] = set()
        while True:
            page = page_of(self.services.client.page(MARKETS, params))
            for market in page.rows.dicts():
                yield market_record(market, self._known)
            if not page.has_more or not page.pagination_key:
                return
            if page.pagination_key in seen_keys:
                raise DomePaginationError(
                    "Dome API repeated a pagination_key on /polymarket/markets; stopping",
                )
            seen_keys.add(page.pagination_key)
            params["pagination_key"] = page.pagination_key
