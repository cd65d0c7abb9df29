"""target-bigquery for tap-dome: staged JSONL files in GCS, BigQuery load jobs, STATE after them.

The path of a row, and why each step is there:

1. RECORD lines are sliced, not parsed (lines.py), and the row is appended as bytes to a local
   file of its stream, with _sdc_extracted_at (the message's time_extracted) and
   _sdc_batched_at (when the file was opened). BATCH messages name files the tap already
   wrote; they are staged as they are, with the same two fields added (staging.py).
2. A file is sealed when it holds `batch_size` rows or at a checkpoint; worker threads gzip it
   and upload it to gs://BUCKET/PREFIX/DATASET/TABLE/RUN/ while the main thread reads on.
3. As soon as a table's uploaded, not yet loaded files hold `batch_size` rows, a load job
   appends them, while reading goes on (so a backfill loads as it extracts, not all at the end).
4. A checkpoint happens when a STATE message arrives `load_interval_seconds` after the previous
   one, when one arrives and every file before it is already in a load job, and at the end of
   the input: every open file is sealed, and one load job per table appends the files staged
   since the previous checkpoint that no load job took yet (BigQuery reads them in parallel).
5. That STATE is written to stdout only after every load job of rows before it succeeded with
   the expected row count (loads.py); reading goes on meanwhile, and loads may overlap.

So Meltano never stores a bookmark past rows that are not in the raw table. A crash at any
point leaves at most files that were staged but not loaded: the tap reads those rows again
from the last stored STATE, and the next run loads them (a copy that was loaded but whose
STATE was lost is loaded twice: the raw table is append-only and dbt deduplicates).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, ClassVar

import simplejson
from singer_sdk import Target
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities

from target_bigquery_dome import bqschema, leftovers, lines
from target_bigquery_dome.loads import Checkpoints, LoadJob
from target_bigquery_dome.preflight import check
from target_bigquery_dome.settings import (
    CONFIG_SCHEMA,
    DEFAULT_LEFTOVER_HOURS,
    DEFAULT_LOAD_INTERVAL_SECONDS,
    RETIRED_SETTINGS,
    ConfigError,
    check_values,
    setting_ref,
)
from target_bigquery_dome.staging import Staged, StreamFile, Uploader, local_path, utc_now


class _Stream:
    """What the target knows about one stream: its table, schema and staged files."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.table = bqschema.table_id(name)
        self.schema_message: dict[str, Any] | None = None
        self.fields: list[Any] = []
        self.file: StreamFile | None = None
        self.files_started = 0
        # Guards `pending` and `loads`: upload workers start loads from their done-callbacks.
        self.lock = threading.Lock()
        self.pending: list[Future[Staged]] = []  # uploads no load job has taken yet
        self.loads: list[Future[int]] = []  # load jobs started since the last checkpoint


class TargetBigQueryDome(Target):
    """Loads tap-dome's RECORD and BATCH messages into BigQuery through staged files."""

    name = "target-bigquery"
    package_name = "target-bigquery-dome"
    config_jsonschema = CONFIG_SCHEMA
    message_reader_class = lines.FastSingerReader
    capabilities: ClassVar[list[CapabilitiesEnum]] = [PluginCapabilities.ABOUT]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        config = dict(self.config)
        try:
            check_values(config)
        except ConfigError as exc:
            self._fail(exc)
        for retired, why in RETIRED_SETTINGS.items():
            if retired in config:
                self.logger.warning("%s has no effect any more: %s", setting_ref(retired), why)
        if config.get("preflight", True):
            try:
                check(config, log=self.logger.info)
            except ConfigError as exc:
                self._fail(exc)
        self._batch_size = int(config.get("batch_size") or 1)
        self._interval = float(config.get("load_interval_seconds", DEFAULT_LOAD_INTERVAL_SECONDS))
        self._granularity = str(config.get("partition_granularity") or "day")
        self._prefix = str(config.get("prefix") or "target_bigquery").strip("/")
        self._run = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
        self._leftover_hours = float(config.get("leftover_hours") or DEFAULT_LEFTOVER_HOURS)
        temp_parent = str(config.get("temp_dir") or tempfile.gettempdir())
        leftovers.sweep_temp(temp_parent, self._leftover_hours, self.logger)
        self._dir = tempfile.mkdtemp(prefix=leftovers.temp_dir_name(), dir=temp_parent)
        workers = int(config.get("workers") or 4)
        self._upload_pool = ThreadPoolExecutor(workers, thread_name_prefix="upload")
        self._load_pool = ThreadPoolExecutor(workers, thread_name_prefix="load")
        self._clients = _Clients(config)
        self._uploader = Uploader(
            self._clients.bucket(), str(config.get("compression") or "gzip"), self._dir
        )
        # The tap's batch folders already swept for a stream, and every file handed to this run.
        self._swept: set[tuple[str, str]] = set()
        self._handed: set[str] = set()
        self._upload_pool.submit(
            leftovers.sweep_bucket,
            self._uploader.bucket,
            f"{self._prefix}/{self._clients.dataset}/",
            self._leftover_hours,
            self.logger,
        )
        self._streams: dict[str, _Stream] = {}
        self._pending_state: dict[str, Any] | None = None
        self._last_checkpoint = time.monotonic()
        self._checkpoints = Checkpoints(self._write_state_message)
        reader = self.message_reader
        assert isinstance(reader, lines.FastSingerReader)
        reader.on_record = self._on_record_line

    # ------------------------------------------------------------------ entry point
    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: Any = None,
        file_input: IO[str] | None = None,
    ) -> None:
        """singer-sdk's invoke, but a failure stops the worker threads at once."""
        if about:
            super().invoke(about=about, about_format=about_format, config=config)
            return
        from singer_sdk.plugin_base import _ConfigInput

        cls.print_version(print_fn=cls.logger.info)
        config = config or _ConfigInput()
        target = cls(config=config.config, validate_config=True, parse_env_config=config.parse_env)
        try:
            target.listen(file_input)
        except BaseException:
            target.abort()
            raise

    def _fail(self, exc: Exception) -> None:
        self.logger.error("%s", exc)
        print(f"target-bigquery: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2)

    # ------------------------------------------------------------------ messages
    def _on_record_line(self, stream: str, body: bytes, extracted: bytes) -> bool:
        """A sliced RECORD: append its row to the stream's file (the hot path)."""
        known = self._streams.get(stream)
        if known is None:
            return False
        file = known.file or self._open_file(known)
        file.handle.write(body + b',"_sdc_extracted_at":' + extracted + file.suffix)
        file.rows += 1
        if file.rows >= self._batch_size:
            self._seal(known)
        return True

    def _process_record_message(self, message_dict: dict[str, Any]) -> None:
        self._assert_line_requires(message_dict, requires={"stream", "record"})
        name = str(message_dict["stream"])
        known = self._streams.get(name)
        if known is None:
            raise ValueError(
                f"A record for stream '{name}' was encountered before a corresponding schema."
            )
        file = known.file or self._open_file(known)
        record = dict(message_dict["record"])
        record["_sdc_extracted_at"] = lines.extracted_value(message_dict)
        record["_sdc_batched_at"] = file.batched_at
        file.handle.write(lines.dump_row(record))
        file.rows += 1
        if file.rows >= self._batch_size:
            self._seal(known)

    def _process_schema_message(self, message_dict: dict[str, Any]) -> None:
        self._assert_line_requires(message_dict, requires={"stream", "schema"})
        name = str(message_dict["stream"])
        known = self._streams.setdefault(name, _Stream(name))
        if known.schema_message == message_dict["schema"]:
            return
        wanted = bqschema.fields_for(message_dict["schema"])
        known.fields = bqschema.ensure_table(
            self._clients.bigquery(), self._clients.table(known.table), wanted, self._granularity
        )
        known.schema_message = message_dict["schema"]
        self.logger.info("Stream %s -> table %s (%d columns)", name, known.table, len(known.fields))

    def _process_batch_message(self, message_dict: dict[str, Any]) -> None:
        self._assert_line_requires(message_dict, requires={"stream", "encoding", "manifest"})
        name = str(message_dict["stream"])
        known = self._streams.get(name)
        if known is None:
            raise ValueError(
                f"A BATCH for stream '{name}' was encountered before a corresponding schema."
            )
        encoding = message_dict["encoding"] or {}
        if str(encoding.get("format", "jsonl")).lower() != "jsonl":
            raise ValueError(
                f"BATCH for stream '{name}': format {encoding.get('format')!r} is not supported;"
                " set the tap's batch_config.encoding.format to jsonl"
            )
        compression = encoding.get("compression")
        batched_at = utc_now()
        for uri in message_dict["manifest"]:
            self._sweep_tap_folder(name, str(uri))
            object_name = self._object_name(known)
            self._stage(
                known,
                self._upload_pool.submit(
                    self._uploader.batch_file, str(uri), compression, batched_at, object_name
                ),
            )
        self._checkpoints.emit_ready()

    def _sweep_tap_folder(self, stream: str, uri: str) -> None:
        """On the stream's first BATCH from a folder: remove what a killed run left there."""
        path = local_path(uri)
        self._handed.add(path)
        folder = os.path.dirname(path)
        if (folder, stream) in self._swept:
            return
        self._swept.add((folder, stream))
        self._upload_pool.submit(
            leftovers.sweep_tap_folder,
            folder,
            stream,
            self._handed,
            self._leftover_hours,
            self.logger,
        )

    def _process_state_message(self, message_dict: dict[str, Any]) -> None:
        self._assert_line_requires(message_dict, requires={"value"})
        self._pending_state = message_dict["value"]
        if time.monotonic() - self._last_checkpoint >= self._interval or self._all_in_loads():
            self._checkpoint()
        else:
            self._checkpoints.emit_ready()

    def _process_activate_version_message(self, message_dict: dict[str, Any]) -> None:
        self.logger.debug("ACTIVATE_VERSION ignored: the raw table is append-only")

    def process_endofpipe(self) -> None:
        """Seal, load and wait for everything; then the last STATE."""
        self._checkpoint()
        self._checkpoints.emit_ready(block=True)
        self._shutdown(wait=True)
        self.logger.info(
            "Loaded %d rows in %d load job(s) in total",
            self._checkpoints.rows_loaded,
            self._checkpoints.load_jobs,
        )

    def abort(self) -> None:
        """After an error: cancel queued uploads and loads, write nothing more."""
        self._shutdown(wait=False)

    # ------------------------------------------------------------------ files and loads
    def _open_file(self, known: _Stream) -> StreamFile:
        path = os.path.join(self._dir, f"{known.table}-{known.files_started:06d}.jsonl")
        known.file = StreamFile(path, utc_now())
        return known.file

    def _object_name(self, known: _Stream) -> str:
        known.files_started += 1
        dataset = self._clients.dataset
        leaf = f"{known.files_started:06d}{self._uploader.extension}"
        return f"{self._prefix}/{dataset}/{known.table}/{self._run}/{leaf}"

    def _seal(self, known: _Stream) -> None:
        """Close the stream's open file and hand it to an upload worker."""
        file = known.file
        if file is None:
            return
        known.file = None
        file.close()
        if not file.rows:
            os.unlink(file.path)
            return
        name = self._object_name(known)
        self._stage(
            known, self._upload_pool.submit(self._uploader.local_file, file.path, file.rows, name)
        )
        self._checkpoints.emit_ready()

    def _stage(self, known: _Stream, upload: Future[Staged]) -> None:
        """An upload is under way; once done it may complete a load job's worth of rows."""
        with known.lock:
            known.pending.append(upload)
        upload.add_done_callback(lambda _done: self._load_if_full(known))

    def _load_if_full(self, known: _Stream) -> None:
        """Start a load job over the uploaded files once they hold `batch_size` rows (any thread).

        One load per `batch_size` rows keeps a table's load jobs within BigQuery's quota
        (1,500 a day: ~60 million rows a day at the defaults, checkpoints included). A failed
        upload stays pending: the checkpoint's load job raises its error.
        """
        with known.lock:
            done = [u for u in known.pending if u.done() and u.exception() is None]
            if sum(u.result().rows for u in done) < self._batch_size:
                return
            known.pending = [u for u in known.pending if u not in done]
            with contextlib.suppress(RuntimeError):  # the pool was shut down: aborting
                known.loads.append(self._start_load(known, done))

    def _start_load(self, known: _Stream, uploads: Sequence[Future[Staged]]) -> Future[int]:
        job = LoadJob(
            client=self._clients.bigquery(),
            table=self._clients.table(known.table),
            schema=known.fields,
            timeout=float(self.config.get("timeout") or 1200),
            logger=self.logger,
            bucket=self._uploader.bucket,
        )
        return self._load_pool.submit(job.run, uploads)

    def _all_in_loads(self) -> bool:
        """Whether every row read so far is in a load job already (a checkpoint costs no load)."""
        for known in self._streams.values():
            if known.file is not None and known.file.rows:
                return False
            with known.lock:
                if known.pending:
                    return False
        return True

    def _checkpoint(self) -> None:
        """Seal every file; queue the STATE behind every load of rows before it.

        The files no load job has taken yet get one load job per table.
        """
        loads: list[Future[int]] = []
        for known in self._streams.values():
            self._seal(known)
            with known.lock:
                uploads, known.pending = known.pending, []
                loads.extend(known.loads)
                known.loads = []
                if uploads:
                    loads.append(self._start_load(known, uploads))
        self._checkpoints.add(self._pending_state, loads)
        self._pending_state = None
        self._last_checkpoint = time.monotonic()
        self._checkpoints.emit_ready()

    def _write_state_message(self, state: dict[str, Any]) -> None:
        """STATE to stdout; numbers as they came (Decimal), so bookmarks keep every digit."""
        self.logger.info(
            "Emitting completed target state after %d rows loaded", self._checkpoints.rows_loaded
        )
        sys.stdout.write(simplejson.dumps(state, use_decimal=True, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    def _shutdown(self, wait: bool) -> None:
        self._upload_pool.shutdown(wait=wait, cancel_futures=not wait)
        self._load_pool.shutdown(wait=wait, cancel_futures=not wait)
        for known in self._streams.values():
            if known.file is not None:
                known.file.close()
        shutil.rmtree(self._dir, ignore_errors=True)


class _Clients:
    """The BigQuery and GCS clients, made once, shared by the worker threads (thread-safe)."""

    def __init__(self, config: dict[str, Any]) -> None:
        from target_bigquery_dome import credentials

        self.project = str(config["project"])
        self.dataset = str(config["dataset"])
        self.location = str(config.get("location") or "US")
        self.bucket_name = str(config["bucket"])
        self._credentials, _source = credentials.from_settings(config)
        self._bq: Any = None
        self._gcs: Any = None
        self._dataset_ready = False

    def bigquery(self) -> Any:
        if self._bq is None:
            from google.cloud import bigquery

            self._bq = bigquery.Client(
                project=self.project, credentials=self._credentials, location=self.location
            )
        if not self._dataset_ready:
            from google.cloud import bigquery

            dataset = bigquery.Dataset(f"{self.project}.{self.dataset}")
            dataset.location = self.location
            self._bq.create_dataset(dataset, exists_ok=True)
            self._dataset_ready = True
        return self._bq

    def table(self, table_id: str) -> Any:
        from google.cloud import bigquery

        return bigquery.TableReference(
            bigquery.DatasetReference(self.project, self.dataset), table_id
        )

    def bucket(self) -> Any:
        if self._gcs is None:
            from google.cloud import storage  # type: ignore[attr-defined]

            self._gcs = storage.Client(project=self.project, credentials=self._credentials)
        return self._gcs.bucket(self.bucket_name)
