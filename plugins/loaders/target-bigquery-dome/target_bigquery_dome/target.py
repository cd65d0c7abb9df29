"""target-bigquery for tap-dome: z3-target-bigquery 0.7.2 `gcs_stage`, loaded before every STATE.

Upstream `gcs_stage` uploads each batch to GCS during the run, emits STATE once the uploads are
done, and loads the files into BigQuery with one load job only when its input ends. Meltano
stores every STATE a target emits, also when the run dies later: a run killed between an
upload and the final load leaves fills in GCS only, with the bookmark already past them.

This target keeps upstream's sinks, schema handling and upload workers, and changes when data
becomes durable in BigQuery:

- before it writes any STATE it waits for every queued upload, fails if one failed, and runs a
  BigQuery load job (append) over the files staged since the previous STATE, waiting for it and
  checking its row count. STATE therefore never runs ahead of the raw table. A crash after the
  load and before the STATE only means the rerun reads those fills again: the raw table is
  append-only and dbt deduplicates.
- that load+STATE happens when a STATE message arrives at least `load_interval_seconds` after
  the previous load (default 300: at most about 288 load jobs per table a day, well under
  BigQuery's 1,500), and at the end of the input.
- settings, credentials, the bucket (it must exist, in `location`) and the dataset's location
  are checked before any input is read, with errors that name the setting.
- an upload that failed is an error, never a STATE (upstream drains and emits STATE on it).
"""

from __future__ import annotations

import copy
import re
import sys
import time
from typing import Any, cast

from google.cloud import bigquery
from singer_sdk import typing as th
from singer_sdk.target_base import Target
from target_bigquery.core import BaseBigQuerySink, bigquery_client_factory
from target_bigquery.gcs_stage import BigQueryGcsStagingDenormalizedSink
from target_bigquery.target import TargetBigQuery

from target_bigquery_dome.preflight import ConfigError, check, setting_ref

DEFAULT_LOAD_INTERVAL_SECONDS = 300
_BATCH_ID = re.compile(r"/([0-9a-f-]{36})\.jsonl(?:\.gz)?$")


class StagedLoadError(RuntimeError):
    """Staged files could not be uploaded or loaded; no STATE is emitted."""


class DomeGcsStagingSink(BigQueryGcsStagingDenormalizedSink):
    """Upstream's denormalized gcs_stage sink whose staged files are loaded on demand."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._rows_by_batch: dict[str, int] = {}
        self.rows_loaded = 0
        self.load_jobs = 0
        super().__init__(*args, **kwargs)

    def create_bucket_if_not_exists(self):  # type: ignore[override]
        """The target checked the bucket at start-up; never create one implicitly here."""
        return None

    def process_batch(self, context: dict[str, Any]) -> None:
        self._rows_by_batch[context["batch_id"]] = self.current_size
        super().process_batch(context)

    def load_staged(self) -> int:
        """Load every file uploaded since the last load; wait for the job. Returns rows loaded."""
        while self.gcs_notification.poll():
            self.uris.append(self.gcs_notification.recv())
        if not self.uris:
            return 0
        uris = list(self.uris)
        expected = 0
        for uri in uris:
            match = _BATCH_ID.search(uri)
            expected += self._rows_by_batch.get(match.group(1), 0) if match else 0
        self.logger.info(
            "Loading %d staged file(s), %d rows, into %s", len(uris), expected, self.table
        )
        client = bigquery_client_factory(self._credentials)
        job = client.load_table_from_uri(
            uris,
            self.table.as_ref(),
            job_id_prefix="tap_dome_stage_",
            timeout=self.config.get("timeout", 600),
            job_config=bigquery.LoadJobConfig(**self.job_config),
        )
        try:
            job.result(timeout=self.config.get("timeout", 600))
        except Exception as exc:
            raise StagedLoadError(
                f"BigQuery load job {job.job_id} into {self.table} failed for {len(uris)} staged"
                f" file(s) ({', '.join(uris)}): {exc}"
            ) from exc
        # BigQuery reports the rows this job loaded. (bqemulator reports the table's row count
        # after the load instead, hence "fewer than", which holds on both.)
        loaded = job.output_rows
        if loaded is not None and int(loaded) < expected:
            raise StagedLoadError(
                f"BigQuery load job {job.job_id} into {self.table} loaded {loaded} rows from"
                f" {len(uris)} staged file(s), expected {expected}: {', '.join(uris)}"
            )
        for uri in uris:
            match = _BATCH_ID.search(uri)
            if match:
                self._rows_by_batch.pop(match.group(1), None)
        self.uris = []
        self.rows_loaded += expected
        self.load_jobs += 1
        self.logger.info("Loaded %d rows into %s (job %s)", expected, self.table, job.job_id)
        return expected

    def clean_up(self) -> None:
        self.load_staged()
        super().clean_up()  # finds nothing left to load


class TargetBigQueryDome(TargetBigQuery):
    """target-bigquery (z3 0.7.2) whose STATE never runs ahead of the BigQuery raw table."""

    name = "target-bigquery"
    config_jsonschema = copy.deepcopy(TargetBigQuery.config_jsonschema)
    config_jsonschema["properties"].update(
        th.PropertiesList(
            th.Property(
                "load_interval_seconds",
                th.NumberType,
                default=DEFAULT_LOAD_INTERVAL_SECONDS,
                description=(
                    "Staged files are loaded (one load job per table) and STATE is emitted when a"
                    " STATE message arrives at least this many seconds after the previous load,"
                    " and at the end of the input. Bounds re-reads after a crash; keep it >= 60"
                    " in production (BigQuery allows 1,500 load jobs per table a day)."
                ),
            ),
            th.Property(
                "preflight",
                th.BooleanType,
                default=True,
                description="Check credentials, bucket and dataset location before reading input.",
            ),
        ).to_dict()["properties"]
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        interval = float(self.config.get("load_interval_seconds", DEFAULT_LOAD_INTERVAL_SECONDS))
        self._MAX_RECORD_AGE_IN_MINUTES = interval / 60.0
        if self.config.get("options", {}).get("process_pool"):
            self._fail(ConfigError(f"{setting_ref('options')}: process_pool is not supported"))
        if self.config.get("upsert") or self.config.get("overwrite"):
            self._fail(
                ConfigError(
                    f"{setting_ref('upsert')}/{setting_ref('overwrite')}: the raw table is"
                    " append-only (dbt deduplicates); leave both false"
                )
            )
        if self.config.get("preflight", True):
            try:
                check(dict(self.config), log=self.logger.info)
            except ConfigError as exc:
                self._fail(exc)
        # Upload threads must not keep a failed process alive (they idle out after 30 s).
        make_worker = self.worker_factory

        def daemon_worker():  # type: ignore[no-untyped-def]
            worker = make_worker()
            worker.daemon = True
            return worker

        self.worker_factory = daemon_worker

    def _fail(self, exc: Exception) -> None:
        self.logger.error("%s", exc)
        print(f"target-bigquery: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2)

    def get_sink_class(self, stream_name: str | None = None) -> type[BaseBigQuerySink]:
        method = self.config.get("method", "gcs_stage")
        if method != "gcs_stage":
            self._fail(ConfigError(f"{setting_ref('method')} must be gcs_stage (is {method!r})"))
        if not self.config.get("denormalized", False):
            self._fail(
                ConfigError(
                    f"{setting_ref('denormalized')} must be true: the raw table has one column"
                    " per field of the stream, as on DuckDB"
                )
            )
        return DomeGcsStagingSink

    # -- worker errors and uploads

    def _raise_worker_errors(self) -> None:
        if self.error_notification.poll():
            _exc, msg = self.error_notification.recv()
            raise StagedLoadError(f"upload of a staged batch to GCS failed:\n{msg}")

    def _wait_for_uploads(self) -> None:
        """Block until every queued upload finished; raise if any failed."""
        queue = self.queue
        while True:
            self._raise_worker_errors()
            if getattr(queue, "unfinished_tasks", 0) == 0:
                break
            if not any(cast(Any, w).is_alive() for w in self.workers):
                self.resize_worker_pool()  # a worker idled out just as a job was queued
            time.sleep(0.02)
        self._raise_worker_errors()
        while self.job_notification.poll():
            self.job_notification.recv()
            self._jobs_enqueued -= 1
        while self.log_notification.poll():
            self.logger.info(self.log_notification.recv())

    def drain_one(self, sink) -> None:  # type: ignore[no-untyped-def,override]
        """Upstream's pool management, but a failed upload raises instead of emitting STATE."""
        self.resize_worker_pool()
        while self.job_notification.poll():
            self.job_notification.recv()
            self._jobs_enqueued -= 1
        while self.log_notification.poll():
            self.logger.info(self.log_notification.recv())
        self._raise_worker_errors()
        Target.drain_one(self, sink)

    def drain_all(self, is_endofpipe: bool = False) -> None:  # type: ignore[override]
        """Upload, LOAD, then emit the STATE that was current when the drain began."""
        state = copy.deepcopy(self._latest_state)
        sinks: list[DomeGcsStagingSink] = list(self._sinks_active.values())  # type: ignore[arg-type]
        self._drain_all(list(sinks), self.max_parallelism)
        self._wait_for_uploads()
        for sink in sinks:
            sink.load_staged()
        if is_endofpipe:
            for worker in self.workers:
                if cast(Any, worker).is_alive():
                    self.queue.put(None)
            for worker in self.workers:
                cast(Any, worker).join(timeout=60)
            self.workers.clear()
            for sink in sinks:
                sink.clean_up()
            total = sum(s.rows_loaded for s in sinks)
            jobs = sum(s.load_jobs for s in sinks)
            self.logger.info("Loaded %d rows in %d load job(s) in total", total, jobs)
        if state and state != getattr(self, "_last_state_written", None):
            self._write_state_message(state)
            self._last_state_written = state
        self._reset_max_record_age()
