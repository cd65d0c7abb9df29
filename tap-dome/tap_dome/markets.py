"""The `markets` stream: what each fill and activity traded, kept current as markets resolve.

It reads GET /polymarket/markets for every `condition_id` that this run's orders and
activity rows carry (up to 100 per request, cursor pagination, many requests in flight at
once: a wallet list trades thousands of markets), and re-reads every market an earlier run
saw unresolved, so closes and resolutions arrive. The condition ids still
unresolved are kept in the stream's state. A market read again is a new record; dbt's
`dim_markets` keeps the latest read.

Its requests need no fill but the ids, so they do not wait for the stream's turn (after
every fill and activity row): once the orders stream has sent a request for every wallet,
each hundred ids that the pages written since bring, and those an earlier run left
unresolved, are read (`MarketReader`: two requests at a time, in the budget the fills leave
unused), and the run does not end with a round trip of markets requests after its last
fill. At most MAX_READ_AHEAD_IDS are read ahead; their pages wait as the API's text (about
1 KB a market) for the stream's turn.
"""

from __future__ import annotations

import functools
import itertools
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from singer_sdk import Stream, StreamSchema, Tap
from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_dome.client import MARKETS
from tap_dome.concurrency import WorkerPool
from tap_dome.errors import DomePaginationError
from tap_dome.page import Page, page_of
from tap_dome.records import market_record
from tap_dome.services import Services
from tap_dome.streams import SCHEMAS_DIR

IDS_PER_REQUEST = 100
PAGE_LIMIT = 100
# Requests for markets in flight at most: each brings up to 100 markets (~100 KB) that wait
# in memory for their turn; 64 cover Dev's and Pro's rates at up to a few hundred ms.
MAX_IN_FLIGHT = 64
# Condition ids read before the stream's turn at most (their pages wait in memory: ~10 MB).
MAX_READ_AHEAD_IDS = 10_000
# Pages in a row that brought no new id, after which the ids still short of a full chunk are
# read ahead too (so that the turn need not read them a round trip after the last fill); at
# most once per full chunk read ahead (and once with none), so it adds few requests.
QUIET_PAGES = 32
# Requests read ahead in flight at once, and only while no request waits at the rate
# limiter: a trickle in the budget the fills leave unused, never more load at full rate. A
# server that does the work of a markets request (a hundred ids) before it counts the
# requests that arrive meanwhile counts those late and bunched: with the simulator describing
# every market for each such request (~30 ms under its lock), 64 and then 2 in flight beside
# the Pro tier's orders at full rate drew 429s (301 requests counted within 0.82 s).
AHEAD_IN_FLIGHT = 2
UNRESOLVED_KEY = "unresolved_condition_ids"

R = TypeVar("R")


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    """`items` in lists of at most `size`."""
    for index in range(0, len(items), size):
        yield items[index : index + size]


class MarketReader(Generic[R]):
    """Reads markets by condition id in chunks, many at once, some before the stream's turn.

    `offer` (before the turn) takes ids as they are seen and reads each full chunk of new ones
    at once while the limiter is not `busy`, up to `ahead_width` chunks in flight and `limit`
    ids in all; the ids short of a full
    chunk go too once QUIET_PAGES offers in a row brought none new. `read` (the turn) reads
    what is left of the ids wanted, up to `width` chunks ahead of the caller, and yields every
    chunk's pages in the order the chunks were made. A chunk read ahead that failed is read
    again there, where its error is the stream's error. Both are called from the thread that
    runs the streams; the requests run on a WorkerPool's threads.
    """

    def __init__(
        self,
        read: Callable[[list[str]], R],  # a chunk's pages
        width: Callable[[], int],
        busy: Callable[[], bool] = lambda: False,  # does a request wait at the limiter?
        limit: int = MAX_READ_AHEAD_IDS,
        ahead_width: int = AHEAD_IN_FLIGHT,
        name: str = "dome-markets",
    ) -> None:
        self._read = read
        self._ahead_width = ahead_width
        self._busy = busy
        self._width = functools.cache(width)  # the settings', fixed for the run
        self._limit = limit
        self._name = name
        self._pool: WorkerPool | None = None
        self._offered: set[str] = set()  # ids in a chunk, or waiting for one
        self._waiting: list[str] = []  # offered, in no chunk yet
        self._chunks: deque[tuple[list[str], queue.SimpleQueue[tuple[bool, Any]]]] = deque()
        self._done = 0  # chunks whose requests ended (counted by the workers)
        self._done_lock = threading.Lock()
        self.read_ahead = 0  # ids in the chunks sent before the turn
        self._quiet = 0  # offers in a row that brought no new id
        self._full_chunks = 0
        self._partial_chunks = 0

    def offer(self, ids: Iterable[str]) -> None:
        """Ids seen before the stream's turn; sends the full chunks that fit."""
        before = len(self._waiting)
        for condition_id in ids:
            if condition_id not in self._offered:
                self._offered.add(condition_id)
                self._waiting.append(condition_id)
        self._quiet = 0 if len(self._waiting) > before else self._quiet + 1
        width = min(self._ahead_width, self._width())
        while self._waiting and len(self._chunks) - self._finished() < width:
            if self._busy():
                return
            size = min(IDS_PER_REQUEST, len(self._waiting))
            if self.read_ahead + size > self._limit:
                return
            if size < IDS_PER_REQUEST:
                if self._quiet < QUIET_PAGES or self._partial_chunks > self._full_chunks:
                    return
                self._partial_chunks += 1
            else:
                self._full_chunks += 1
            chunk, self._waiting = self._waiting[:size], self._waiting[size:]
            self.read_ahead += size
            self._send(chunk)

    def read(self, wanted: Iterable[str]) -> Iterator[R]:
        """Every chunk's pages, those read ahead first; the ids of `wanted` not read ahead
        are read now."""
        ahead = len(self._chunks)
        sent = {condition_id for chunk, _ in self._chunks for condition_id in chunk}
        rest = chunks([c for c in wanted if c not in sent], IDS_PER_REQUEST)
        width = self._width()
        try:
            while True:
                # At most `width` chunks sent and not yet taken: in flight, or waiting here.
                for more in itertools.islice(rest, max(0, width - len(self._chunks))):
                    self._send(more)
                if not self._chunks:
                    return
                chunk, box = self._chunks.popleft()
                ok, value = box.get()
                if not ok:
                    if ahead <= 0:
                        raise value
                    value = self._read(chunk)  # read ahead and failed: once more, here
                ahead -= 1
                yield value
        finally:
            if self._pool is not None:
                self._pool.close()

    def _finished(self) -> int:
        with self._done_lock:
            return self._done

    def _send(self, chunk: list[str]) -> None:
        box: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()

        def run() -> None:
            try:
                box.put((True, self._read(chunk)))
            except BaseException as exc:  # raised in the caller's thread (`read`)
                box.put((False, exc))
            with self._done_lock:
                self._done += 1

        if self._pool is None:
            self._pool = WorkerPool(self._name)
        self._chunks.append((chunk, box))
        self._pool.submit(run)


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
        self._reader: MarketReader[list[Page]] = MarketReader(
            self._read, self._width, lambda: self.services.client.limiter.saturated
        )

    def read_ahead(self) -> None:
        """Start reading markets before this stream's turn (the module docstring says why):
        those an earlier run left unresolved, those seen so far, and each hundred new ones
        the streams before this one see (services.py calls it once the orders stream has
        sent a request for every wallet)."""
        observations = self.services.observations
        if observations.on_new_markets is not None:
            return
        bookmark = (self.tap_state.get("bookmarks") or {}).get(self.name) or {}
        earlier = [str(c) for c in bookmark.get(UNRESOLVED_KEY) or []]
        self._reader.offer([*earlier, *sorted(observations.condition_ids)])
        observations.on_new_markets = self._reader.offer

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        self.services.observations.on_new_markets = None  # nothing more to read ahead
        earlier = [str(c) for c in self.stream_state.get(UNRESOLVED_KEY) or []]
        wanted = sorted(set(earlier) | self.services.observations.condition_ids)
        answered: set[str] = set()
        resolved: set[str] = set()
        for pages in self._reader.read(wanted):
            for page in pages:
                for market in page.rows.dicts():
                    record = market_record(market, self._known)
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

    def _read(self, ids: list[str]) -> list[Page]:
        """The pages of every market of `ids`, following the cursor."""
        params: dict[str, Any] = {"condition_id": ids, "limit": PAGE_LIMIT}
        seen_keys: set[str] = set()
        pages: list[Page] = []
        while True:
            page = page_of(self.services.client.page(MARKETS, params))
            pages.append(page)
            if not page.has_more or not page.pagination_key:
                return pages
            if page.pagination_key in seen_keys:
                raise DomePaginationError(
                    "Dome API repeated a pagination_key on /polymarket/markets; stopping",
                )
            seen_keys.add(page.pagination_key)
            params["pagination_key"] = page.pagination_key
