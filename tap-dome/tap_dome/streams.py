"""The `orders` stream: every fill of every configured wallet, one partition per wallet."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from singer_sdk import SchemaDirectory, StreamSchema, Tap
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_dome import schemas
from tap_dome.client import ORDERS, DomeClient
from tap_dome.events import WindowDone
from tap_dome.records import RecordBuilder
from tap_dome.run import SyncRun
from tap_dome.sdk_hooks import StreamHooks
from tap_dome.settings import RunSettings
from tap_dome.writer import BufferedMessageWriter

SCHEMAS_DIR = SchemaDirectory(schemas)


class OrdersStream(StreamHooks):
    """Fills from GET /polymarket/orders, read in time windows per wallet.

    The requests, their order and the bookmarks live in `SyncRun` (run.py) and the modules
    it names; this class turns its events into Singer RECORD and STATE messages. Bookmark:
    per wallet, `replication_key_value` is the Unix second through which every fill has
    been emitted (see checkpoints.py).
    """

    name = "orders"
    primary_keys = ("order_id",)
    replication_key = "timestamp"
    is_sorted = False
    schema = StreamSchema(SCHEMAS_DIR)
    # Records are built with the schema's types already (records.py); conforming each value
    # again costs about a third of the CPU per record.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(
        self,
        tap: Tap,
        *,
        settings: Callable[[], RunSettings],
        client: Callable[[], DomeClient],
        writer: Any = None,
    ) -> None:
        super().__init__(tap)
        self._settings = settings
        self._client = client
        self._writer = writer if isinstance(writer, BufferedMessageWriter) else None
        self._builder = RecordBuilder(frozenset(self.schema["properties"]))

    @override
    @property
    def partitions(self) -> list[dict[str, Any]] | None:
        return [{"wallet": wallet} for wallet in self._settings().wallets]

    @cached_property
    def run(self) -> SyncRun:
        """The run's machinery, built at the first partition (every bookmark checked then)."""
        settings = self._settings()
        return SyncRun(
            settings,
            client=self._client(),
            endpoint=ORDERS,
            states=[(w, self.get_context_state({"wallet": w})) for w in settings.wallets],
            replication_key=str(self.replication_key),
            logger=self.logger,
        )

    @cached_property
    def _bulk_writer(self) -> BufferedMessageWriter | None:
        """Where pages of records go in bulk, or None when the SDK's own loop must run."""
        return self._writer if self._writer is not None and self.fast_path_applies() else None

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        if not context or "wallet" not in context:
            return
        pages = self._pages(str(context["wallet"]))
        bulk = self._bulk_writer
        if bulk is None:
            for records in pages:
                yield from records
            return
        # Written in bulk, records bypass the SDK's loop and its counter: count them here.
        with self.get_record_counter() as counter:
            counter.with_context(context)
            for records in pages:
                bulk.write_records(self.name, records, datetime.now(timezone.utc).isoformat())
                counter.increment(len(records))

    def _pages(self, wallet: str) -> Iterator[list[dict[str, Any]]]:
        """The wallet's records a page at a time; STATE after completed windows.

        A STATE is written only when the consumer asks for the next page, so the records
        of every page before it are out first.
        """
        run = self.run
        build_page = self._builder.build_page
        # In batch mode the SDK writes STATE after each batch file it emitted.
        batch_mode = bool(self.get_batch_config(self.config))
        for event in run.events(wallet):
            if isinstance(event, WindowDone):
                if run.checkpoints.window_done(wallet, event.seen_through) and not batch_mode:
                    self.write_state_now()
                    run.checkpoints.state_written()
                continue
            records = build_page(event.fills, wallet)
            yield records
            run.count_fills(len(records))
