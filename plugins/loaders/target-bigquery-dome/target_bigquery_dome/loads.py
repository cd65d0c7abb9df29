"""Load jobs, and the order in which STATE may follow them.

A checkpoint is the STATE message that was current when the loader sealed its files, plus the
load jobs of every file staged before it. The STATE is written to stdout (and so stored by
Meltano) only when all those load jobs succeeded and every earlier checkpoint was written:
STATE never runs ahead of the raw table. Several checkpoints' loads may be in flight at once.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import Any

from google.cloud import bigquery

from target_bigquery_dome import testpause
from target_bigquery_dome.staging import Staged

_LOADS_STARTED = itertools.count(1)


class LoadError(RuntimeError):
    """A staged file could not be uploaded or loaded; no later STATE is written."""


@dataclass
class LoadJob:
    """What one load job appends: the files, into a table with this schema."""

    client: bigquery.Client
    table: bigquery.TableReference
    schema: list[bigquery.SchemaField]
    timeout: float
    logger: logging.Logger
    # bqemulator reports the table's row count after a load, not the rows the load added.
    # google.cloud.storage.Bucket of the staged files: each is deleted once its rows are loaded.
    bucket: Any = None
    exact_count: bool = field(default_factory=lambda: not os.environ.get("BIGQUERY_EMULATOR_HOST"))
    number: int = 0

    def _pause(self, where: str) -> None:
        testpause.hold(where, "load", self.number, self.logger)

    def run(self, uploads: Sequence[Future[Staged]]) -> int:
        """Wait for the uploads, run the load job, wait for it, check its row count."""
        staged = [_result(u) for u in uploads]
        self.number = next(_LOADS_STARTED)
        uris = [s.uri for s in staged]
        expected = sum(s.rows for s in staged)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
            schema=self.schema,
            schema_update_options=[bigquery.SchemaUpdateOption.ALLOW_FIELD_ADDITION],
            # Fields the stream's schema does not name (the tap keeps unknown API fields).
            ignore_unknown_values=True,
            max_bad_records=0,
        )
        table = f"{self.table.project}.{self.table.dataset_id}.{self.table.table_id}"
        self._pause("before_load")
        job = self.client.load_table_from_uri(
            uris, self.table, job_id_prefix=f"tap_dome_{self.table.table_id}_", job_config=config
        )
        self.logger.info(
            "Load job %s: %d file(s) from %s/, %d rows into %s",
            job.job_id,
            len(uris),
            uris[0].rsplit("/", 1)[0],
            expected,
            table,
        )
        self._pause("in_load")
        try:
            job.result(timeout=self.timeout)
        except Exception as exc:
            raise LoadError(
                f"BigQuery load job {job.job_id} into {table} failed for {len(uris)} staged"
                f" file(s) ({', '.join(uris)}): {exc}"
            ) from exc
        loaded = int(job.output_rows or 0)
        short = loaded < expected
        if short or (self.exact_count and loaded != expected):
            raise LoadError(
                f"BigQuery load job {job.job_id} into {table} loaded {loaded} rows from"
                f" {len(uris)} staged file(s), expected {expected}: {', '.join(uris)}"
            )
        self._pause("after_load")
        self._remove(staged)
        # BigQuery's own time for the job (its statistics), apart from the loader's waiting.
        took = (job.ended - job.started).total_seconds() if job.started and job.ended else -1.0
        self.logger.info(
            "Loaded %d rows into %s (job %s, %.2f s in BigQuery)", expected, table, job.job_id, took
        )
        return expected

    def _remove(self, staged: list[Staged]) -> None:
        """The rows are in BigQuery now: the tap's batch files and the staged objects go.

        A failed delete is only logged: a later run's sweep removes the object (leftovers.py).
        """
        prefix = f"gs://{self.bucket.name}/" if self.bucket is not None else None
        for item in staged:
            if item.source and os.path.exists(item.source):
                os.unlink(item.source)
            if prefix and item.uri.startswith(prefix):
                try:
                    self.bucket.blob(item.uri[len(prefix) :]).delete()
                except Exception as exc:  # never fail a load that succeeded
                    self.logger.warning("Could not delete loaded staged file %s: %s", item.uri, exc)


def _result(upload: Future[Staged]) -> Staged:
    try:
        return upload.result()
    except Exception as exc:
        raise LoadError(f"upload of a staged file to GCS failed: {exc}") from exc


@dataclass
class Checkpoint:
    state: dict[str, Any] | None
    loads: list[Future[int]]


class Checkpoints:
    """STATE messages queued behind the loads they depend on, written in order.

    A STATE is written as soon as its loads are done: by the thread that finished the last of
    them (the main thread may be blocked reading input), or by the main thread. A lock keeps
    the writes in order and whole.
    """

    def __init__(self, write_state: Callable[[dict[str, Any]], None]) -> None:
        self._queue: deque[Checkpoint] = deque()
        self._write_state = write_state
        self._last_written: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self.rows_loaded = 0
        self.load_jobs = 0

    def add(self, state: dict[str, Any] | None, loads: list[Future[int]]) -> None:
        with self._lock:
            self._queue.append(Checkpoint(state, loads))
        for load in loads:
            load.add_done_callback(self._on_load_done)
        if not loads:
            self.emit_ready()

    def __len__(self) -> int:
        return len(self._queue)

    def _on_load_done(self, _load: Future[int]) -> None:
        # A failed load stays at the head of the queue: the main thread raises its error.
        with contextlib.suppress(Exception):
            self.emit_ready()

    def emit_ready(self, block: bool = False) -> None:
        """Write every STATE whose loads are done; raise LoadError if one of them failed."""
        while True:
            with self._lock:
                if not self._queue:
                    return
                head = self._queue[0]
                if not block and not all(f.done() for f in head.loads):
                    return
            if block:
                wait(head.loads)
            with self._lock:
                if not self._queue or self._queue[0] is not head:
                    continue  # another thread wrote it meanwhile
                rows = [load.result() for load in head.loads]  # raises the load's error
                self.rows_loaded += sum(rows)
                self.load_jobs += len(rows)
                self._queue.popleft()
                if head.state is not None and head.state != self._last_written:
                    self._write_state(head.state)
                    self._last_written = head.state
