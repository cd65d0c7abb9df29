"""The per-wallet streams: `orders` (fills) and `activity` (splits, merges, redemptions).

Both read every configured wallet as one partition, in time windows, under the tap's one
rate limiter, with bookmarks that follow the API's data (checkpoints.py). The requests,
their order and the bookmarks live in `SyncRun` (run.py); these classes turn its events
into Singer RECORD and STATE messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, ClassVar

import orjson
from singer_sdk import SchemaDirectory, StreamSchema, Tap
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_dome import schemas
from tap_dome.batches import BatchFiles, fast_batches_apply
from tap_dome.client import ACTIVITY, ORDERS, Endpoint
from tap_dome.codec import EncodedPage, EncodeSpec
from tap_dome.events import WindowDone
from tap_dome.records import RecordBuilder, activity_id
from tap_dome.rows import Rows
from tap_dome.run import SyncRun
from tap_dome.sdk_hooks import StreamHooks
from tap_dome.services import Services
from tap_dome.writer import BufferedMessageWriter

SCHEMAS_DIR = SchemaDirectory(schemas)


class WalletWindowStream(StreamHooks):
    """A Dome list endpoint read per wallet in time windows (see the module docstring).

    Bookmark: per wallet, `replication_key_value` is the Unix second through which every
    row has been emitted.
    """

    endpoint: ClassVar[Endpoint]
    replication_key = "timestamp"
    is_sorted = False
    # Records are built with the schema's types already (records.py); conforming each value
    # again costs about a third of the CPU per record.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: Tap, *, services: Services, writer: Any = None) -> None:
        super().__init__(tap)
        self.services = services
        self._writer = writer if isinstance(writer, BufferedMessageWriter) else None
        self._builder = self.record_builder(frozenset(self.schema["properties"]))
        self._counters = ExitStack()  # the bulk path's record counter, closed at the end

    def record_builder(self, known_fields: frozenset[str]) -> RecordBuilder:
        """How this stream's API rows become records."""
        raise NotImplementedError

    def observe(self, condition_ids: set[Any]) -> None:
        """Note the markets a page traded (the `condition_id` values seen), for `markets`."""
        self.services.observations.add_condition_ids(condition_ids)

    @override
    @property
    def partitions(self) -> list[dict[str, Any]] | None:
        return [{"wallet": wallet} for wallet in self.services.wallets]

    @cached_property
    def run(self) -> SyncRun:
        """The run's machinery, built at the first partition or when the stream before this
        one has sent a request for every wallet (`prefetch`); every bookmark checked then."""
        wallets = self.services.wallets
        manager = self.state_manager
        return SyncRun(
            self.services.settings,
            wallets=wallets,
            client=self.services.client,
            endpoint=self._endpoint(),
            states=[(w, manager.peek({"wallet": w})) for w in wallets],
            replication_key=str(self.replication_key),
            logger=self.logger,
            name=self.name,
            on_all_started=lambda: self.services.prefetch_after(self.name),
        )

    def prefetch(self) -> None:
        """Start fetching this stream's pages before its turn (run.py says why)."""
        self.run.prefetch()

    def _endpoint(self) -> Endpoint:
        """The endpoint, its pages decoded into typed rows when `lines` writes them, and
        written out by a helper process when the run has helpers (codec.py)."""
        typed = self._builder.typed_rows(self.endpoint.rows_field)
        if typed is None or not self.fast_path_applies(batch_ok=True):
            return self.endpoint
        endpoint = replace(self.endpoint, typed_rows=typed)
        head = self._lines_head()
        pool = self.services.encoders if head is not None else None
        if pool is None or head is None:
            return endpoint
        spec = EncodeSpec(self.name, self._builder.recipe(), self.endpoint.rows_field, head)
        pool.register(spec)

        def encode(wallet: str, body: bytes) -> EncodedPage | None:
            # A RECORD's time_extracted: when its page came back from the API.
            tail = self._record_tail() if head else b""
            return pool.encode(spec.name, wallet, tail, body)

        return replace(endpoint, encode=encode)

    def _lines_head(self) -> bytes | None:
        """What opens each line this stream writes in bulk (a RECORD message's envelope, or
        nothing in a batch file); None when the SDK's own loop writes the records."""
        batch_config = self.get_batch_config(self.config)
        if batch_config:
            bulk = fast_batches_apply(batch_config) and self.fast_path_applies(batch_ok=True)
            return b"" if bulk else None
        if self._bulk_writer is None:
            return None
        return b'{"type":"RECORD","stream":%s,"record":' % orjson.dumps(self.name)

    @staticmethod
    def _record_tail() -> bytes:
        """What closes each RECORD message of a page: its time_extracted, now."""
        return b',"time_extracted":%s}' % orjson.dumps(datetime.now(timezone.utc).isoformat())

    @cached_property
    def _bulk_writer(self) -> BufferedMessageWriter | None:
        """Where pages of records go in bulk, or None when the SDK's own loop must run."""
        return self._writer if self._writer is not None and self.fast_path_applies() else None

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        if not context or "wallet" not in context:
            return
        wallet = str(context["wallet"])
        pages = self._pages(wallet)
        bulk = self._bulk_writer
        if bulk is None:  # the SDK's loop: stream maps, selected properties, ...
            for rows in pages:
                records = self._builder.build_page(rows.dicts(), wallet)
                self.observe({r.get("condition_id") for r in records})
                yield from records
            return
        head = self._lines_head() or b""
        counter = self._bulk_counter  # for the whole run: no wallet in its tags
        for rows in pages:
            tail = self._record_tail()
            seen: set[Any] = set()
            bulk.write_lines(self._builder.lines(rows, wallet, seen, head=head, tail=tail))
            self.observe(seen)
            counter.increment(len(rows))

    @cached_property
    def _bulk_counter(self) -> Any:
        """Records written in bulk bypass the SDK's loop and its counter: counted here, by
        one counter for the whole run (it logs its METRIC line at the end, as the SDK's
        does; one per wallet would be ten thousand lines for ten thousand wallets)."""
        return self._counters.enter_context(self.get_record_counter())

    @override
    def get_batches(
        self, batch_config: Any, context: Context | None = None
    ) -> Iterable[tuple[Any, list[str]]]:
        """Batch mode: pages of records straight into batch files (batches.py).

        The SDK writes a BATCH message for each manifest, then a STATE: a file is complete
        before its BATCH, and a bookmark only moves past a window once every record of it
        has been handed to a file that is yielded before that STATE.
        """
        if not (fast_batches_apply(batch_config) and self.fast_path_applies(batch_ok=True)):
            yield from super().get_batches(batch_config, context)
            return
        files = BatchFiles(batch_config, tap_name=self.tap_name, stream_name=self.name)
        wallets = [str(context["wallet"])] if context else list(self.services.wallets)
        for wallet in wallets:
            for rows in self._pages(wallet):
                seen: set[Any] = set()
                lines = self._builder.lines(rows, wallet, seen)
                self.observe(seen)
                for manifest in files.add(lines, len(rows)):
                    self.state_manager.is_flushed = False  # the STATE after it is due
                    yield batch_config.encoding, manifest
        for manifest in files.close():
            self.state_manager.is_flushed = False
            yield batch_config.encoding, manifest

    def _pages(self, wallet: str) -> Iterator[Rows]:
        """The wallet's rows a page at a time; STATE after completed windows.

        A STATE is written only when the consumer asks for the next page, so the records
        of every page before it are out first.
        """
        run = self.run
        run.checkpoints.bind(wallet, self.get_context_state({"wallet": wallet}))
        # In batch mode the SDK writes STATE after each batch file it emitted.
        batch_mode = bool(self.get_batch_config(self.config))
        for event in run.events(wallet):
            if isinstance(event, WindowDone):
                if run.checkpoints.window_done(wallet, event.seen_through) and not batch_mode:
                    self.write_state_now()
                    run.checkpoints.state_written()
                continue
            yield event.fills
            run.count_fills(len(event.fills))
        if run.finished:
            self._counters.close()
            self.run_finished(run)

    def run_finished(self, run: SyncRun) -> None:
        """Called once every wallet of the run has been read (a hook for subclasses)."""


class OrdersStream(WalletWindowStream):
    """Fills from GET /polymarket/orders: one row per on-chain `OrderFilled` log."""

    name = "orders"
    endpoint = ORDERS
    primary_keys = ("order_id",)
    schema = StreamSchema(SCHEMAS_DIR)

    @override
    def record_builder(self, known_fields: frozenset[str]) -> RecordBuilder:
        return RecordBuilder(known_fields)

    @override
    def run_finished(self, run: SyncRun) -> None:
        """Hand the audit what this run learnt: counts, bookmarks, the data clock."""
        seen = self.services.observations
        seen.first_totals.update(run.first_totals)
        seen.bookmarks.update({w: run.checkpoints.bookmark(w) for w in self.services.wallets})
        seen.data_clock = run.data_clock
        seen.orders_synced = True


class ActivityStream(WalletWindowStream):
    """Splits, merges and redemptions from GET /polymarket/activity, per wallet."""

    name = "activity"
    endpoint = ACTIVITY
    primary_keys = ("activity_id",)
    schema = StreamSchema(SCHEMAS_DIR)

    @override
    def record_builder(self, known_fields: frozenset[str]) -> RecordBuilder:
        return RecordBuilder(
            known_fields, key="activity_id", identity=activity_id, time_field="occurred_at"
        )
