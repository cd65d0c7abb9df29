"""target-duckdb 0.8.0 with the fixes tap-dome needs (see README.md beside this package)."""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Container, Iterable
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

import orjson
import target_duckdb
from jsonschema import Draft7Validator, FormatChecker
from target_duckdb import db_sync
from target_duckdb.logger import get_logger

LOGGER = get_logger("target_duckdb")

# orjson reads an integer literal outside [-2**63, 2**64) as a float, where the stdlib keeps
# every digit: a message holding a float that large (in a record, a state, a schema) is read
# again with the stdlib.
HUGE = 2.0**63
NESTED = (dict, list)  # what JSON parses objects and arrays into
METADATA_COLUMNS = ("_sdc_extracted_at", "_sdc_batched_at", "_sdc_deleted_at")
# The longest row read_json accepts (DuckDB's default, 16 MiB; twice the longest line Meltano
# relays with elt.buffer_size 16 MiB). DuckDB reads each file through buffers of twice this
# size, taken from its memory_limit (DUCKDB_SETTINGS): 1 GiB here would need a 2 GiB buffer.
MAX_ROW_BYTES = 16 << 20


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


# --------------------------------------------------------------------------- upsert mode
def load_rows(
    self: db_sync.DbSync, records: Iterable[dict[str, Any]], count: int, temp_dir: str
) -> None:
    """Upstream ``DbSync.load_rows`` with a COPY that cannot mistake the first row for a header."""
    stream = self.stream_schema_message["stream"]
    self.logger.info("Loading %d rows into '%s'", count, self.table_name(stream, False))
    temp_table = self.table_name(stream, is_temporary=True)
    temp_file_csv = os.path.join(temp_dir, f"{temp_table}.csv")
    self.conn.execute(self.create_table_query(table_name=temp_table, is_temporary=True))
    try:
        with open(temp_file_csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(
                f,
                delimiter=self.delimiter,
                quotechar=self.quotechar,
                quoting=csv.QUOTE_MINIMAL,
                lineterminator="\r\n",
            )
            for record in records:
                writer.writerow(self.record_to_flattened(record))
        options = ", ".join(
            [
                "FORMAT csv",
                "HEADER false",
                "AUTO_DETECT false",
                f"DELIMITER {_sql_str(self.delimiter)}",
                f"QUOTE {_sql_str(self.quotechar)}",
                f"ESCAPE {_sql_str(self.quotechar)}",
                "NEW_LINE '\\r\\n'",
            ]
        )
        self.conn.execute(f"COPY {temp_table} FROM {_sql_str(temp_file_csv)} ({options})")
        if self.stream_schema_message["key_properties"]:
            self.conn.execute(self.update_from_temp_table(temp_table))
        self.conn.execute(self.insert_from_temp_table(temp_table))
        self.conn.execute(f"DROP TABLE {temp_table}")
    finally:
        if os.path.exists(temp_file_csv):
            os.unlink(temp_file_csv)


def add_metadata_values_to_record(record_message: dict[str, Any]) -> dict[str, Any]:
    """Upstream's metadata columns, with ``_sdc_batched_at`` in UTC instead of local time."""
    record = record_message["record"]
    record["_sdc_extracted_at"] = record_message.get("time_extracted")
    # Its "+00:00" leaves the value of a TIMESTAMP column as it is.
    record["_sdc_batched_at"] = datetime.now(UTC).isoformat()
    record["_sdc_deleted_at"] = record.get("_sdc_deleted_at")
    return record


# ---------------------------------------------------------------------- append-only mode
class AppendDbSync(db_sync.DbSync):
    """A stream's table, loaded from NDJSON batch files with one ``INSERT ... read_json``.

    A row is the record as upstream would write it to its CSV, as one JSON line: objects and
    arrays as ``json.dumps`` text (upstream's ``flatten_record``); every other value as it came.
    The INSERT reads every column as text and lets DuckDB cast it to the column's type, as the
    CSV COPY did; ``NULLIF(.., '')`` keeps upstream's "empty string is NULL".

    Rows go to the batch file as they come rather than into a list: memory stays flat, and
    allocating and freeing a batch of row objects cost more than writing them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Columns upstream json-dumps whatever the value (_should_json_dump_value).
        self.dump_always = {
            name
            for name, schema in self.flatten_schema.items()
            if set(schema.get("type", ())) == {"null", "object", "array"}
        }
        self.temp_dir = self.connection_config.get("temp_dir", tempfile.gettempdir())
        self.batch: BinaryIO | None = None
        self.batch_path = ""

    def flatten(self, record: dict[str, Any]) -> dict[str, Any]:
        """The values upstream writes to its CSV: ``flatten_record``'s (in place, and quicker,
        for a flat schema), and booleans as ``str`` makes them."""
        dump_always: Container[str] = self.dump_always
        if self.data_flattening_max_level:
            record = db_sync.flatten_record(
                record, self.flatten_schema, max_level=self.data_flattening_max_level
            )
            dump_always = ()  # done by flatten_record
        for key, value in record.items():
            kind = value.__class__
            if kind in NESTED or key in dump_always:
                record[key] = json.dumps(value)
            elif kind is bool:
                # As in upstream's CSV: "True" (DuckDB would read JSON true as "true").
                record[key] = str(value)
        return record

    def append(self, row: bytes) -> None:
        if self.batch is None:
            name = self.table_name(self.stream_schema_message["stream"], True)
            self.batch_path = os.path.join(self.temp_dir, f"{name}.ndjson")
            self.batch = open(self.batch_path, "wb", buffering=1 << 20)  # noqa: SIM115
        self.batch.write(row)

    def load_rows(self, records: object, count: int, temp_dir: str) -> None:
        """Load the batch file (called by upstream's ``flush_records``; no records in memory)."""
        table = self.table_name(self.stream_schema_message["stream"], False)
        self.logger.info("Loading %d rows into '%s'", count, table)
        names = list(self.flatten_schema)
        columns = ", ".join(f"{_sql_str(name)}: 'VARCHAR'" for name in names)
        values = ", ".join(f"NULLIF({_sql_ident(name)}, '')" for name in names)
        assert self.batch is not None
        self.batch.close()
        try:
            # One statement: the batch is committed whole or not at all.
            self.conn.execute(
                f"INSERT INTO {table} ({', '.join(self.column_names())}) "
                f"SELECT {values} FROM read_json({_sql_str(self.batch_path)}, "
                f"format = 'newline_delimited', columns = {{{columns}}}, "
                f"maximum_object_size = {MAX_ROW_BYTES})"
            )
        finally:
            self.discard()

    def load_files(self, paths: list[str], loaded_at: str | None) -> int:
        """Append the rows of a tap's BATCH files (JSONL, gzip or not) with one INSERT.

        The same reading as `load_rows` (every column as text, cast by DuckDB); the metadata
        columns get the time the BATCH message arrived: its files were complete then. Returns
        the rows inserted.
        """
        table = self.table_name(self.stream_schema_message["stream"], False)
        names = list(self.flatten_schema)
        data = [name for name in names if name not in METADATA_COLUMNS]
        columns = ", ".join(f"{_sql_str(name)}: 'VARCHAR'" for name in data)
        stamp = "NULL" if loaded_at is None else _sql_str(loaded_at)
        values = ", ".join(
            (
                (stamp if name != "_sdc_deleted_at" else "NULL")
                if name in METADATA_COLUMNS
                else f"NULLIF({_sql_ident(name)}, '')"
            )
            for name in names
        )
        files = "[" + ", ".join(_sql_str(path) for path in paths) + "]"
        self.logger.info("Loading %d BATCH file(s) into '%s'", len(paths), table)
        row = self.conn.execute(
            f"INSERT INTO {table} ({', '.join(self.column_names())}) "
            f"SELECT {values} FROM read_json({files}, "
            f"format = 'newline_delimited', columns = {{{columns}}}, "
            f"maximum_object_size = {MAX_ROW_BYTES})"
        ).fetchone()
        return int(row[0]) if row else 0

    def discard(self) -> None:
        """Close and delete the batch file, if any."""
        if self.batch is not None:
            self.batch.close()
            os.unlink(self.batch_path)
            self.batch = None


def _parse(line: bytes) -> tuple[Any, Callable[[dict[str, Any]], bytes]]:
    """A Singer message, and how to write its record back as a row.

    orjson, unless it would read the line differently from the stdlib json upstream uses: it
    rejects NaN, Infinity and lone surrogates, and reads an integer beyond 64 bits as a float.
    Such a line is read by the stdlib, and its row written by the stdlib (exact digits, NaN).
    """
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError:
        message = None
    if message.__class__ is dict and not _holds_huge_float(message):
        return message, _orjson_row
    try:
        return json.loads(line), _stdlib_row
    except json.JSONDecodeError:
        LOGGER.error("Unable to parse:\n%s", line)
        raise


def _holds_huge_float(values: dict[str, Any] | list[Any]) -> bool:
    for value in values.values() if values.__class__ is dict else values:
        if value.__class__ is float:
            if not -HUGE < value < HUGE:
                return True
        elif value.__class__ in NESTED and _holds_huge_float(value):
            return True
    return False


def _stdlib_row(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode() + b"\n"


def _orjson_row(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


class SingerMessageError(Exception):
    """A message upstream rejects too (it raises a bare Exception, with the same text)."""


def persist_append_only(connection: Any, config: dict[str, Any], lines: Iterable[bytes]) -> None:
    """Upstream's ``persist_lines`` for an append-only table, with less work per record.

    The same messages and checks, the same batches, and upstream's own ``flush_streams``, so
    the same STATE: a STATE is emitted only after the batch holding the records before it is
    committed. Differences: ``key_properties`` are ignored (every record is appended, none is
    collapsed into another), lines are parsed with orjson (the stdlib where orjson would read
    a value differently), and a batch is an NDJSON file loaded by one INSERT (AppendDbSync).
    """
    state: Any = None
    flushed_state: Any = None
    syncs: dict[str, AppendDbSync] = {}
    validators: dict[str, Draft7Validator] = {}
    # Upstream's records-to-load dict, one entry per stream that has had a record:
    # flush_streams iterates its keys and empties its values. Ours stay empty: the rows are in
    # each stream's batch file (AppendDbSync.append).
    pending: dict[str, dict[str, Any]] = {}
    row_count: dict[str, int] = {}
    batch_size_rows = config.get("batch_size_rows", target_duckdb.DEFAULT_BATCH_SIZE_ROWS)
    add_metadata = config.get("add_metadata_columns") or config.get("hard_delete")
    validate = config.get("validate_records")
    batches_loaded = False
    flush_all = config.get("flush_all_streams")

    try:
        for line in lines:
            message, to_row = _parse(line)
            if "type" not in message:
                raise SingerMessageError(f"Line is missing required key 'type': {line!r}")
            kind = message["type"]

            if kind == "RECORD":
                if "stream" not in message:
                    raise SingerMessageError(f"Line is missing required key 'stream': {line!r}")
                stream = message["stream"]
                if stream not in syncs:
                    raise SingerMessageError(
                        f"A record for stream {stream} was encountered before a "
                        "corresponding schema"
                    )
                if validate:
                    _validate(validators[stream], message["record"])
                record = (
                    add_metadata_values_to_record(message) if add_metadata else message["record"]
                )
                syncs[stream].append(to_row(syncs[stream].flatten(record)))
                pending.setdefault(stream, {})
                row_count[stream] += 1
                if row_count[stream] >= batch_size_rows:
                    flushed_state = target_duckdb.flush_streams(
                        pending,
                        row_count,
                        syncs,
                        config,
                        state,
                        flushed_state,
                        filter_streams=None if flush_all else [stream],
                    )
                    target_duckdb.emit_state(copy.deepcopy(flushed_state))

            elif kind == "STATE":
                LOGGER.debug("Setting state to %s", message["value"])
                state = message["value"]
                if not flushed_state:
                    flushed_state = copy.deepcopy(state)
                if batches_loaded and not any(row_count.values()):
                    # Everything before this STATE is committed (BATCH files, no RECORD
                    # waiting in a batch file): it can be stored now.
                    flushed_state = copy.deepcopy(state)
                    target_duckdb.emit_state(copy.deepcopy(flushed_state))

            elif kind == "BATCH":
                stream = message.get("stream")
                if stream not in syncs:
                    raise SingerMessageError(
                        f"A BATCH for stream {stream} was encountered before a corresponding schema"
                    )
                if row_count[stream] > 0:  # RECORDs before it: committed first, in order
                    flushed_state = target_duckdb.flush_streams(
                        pending,
                        row_count,
                        syncs,
                        config,
                        state,
                        flushed_state,
                        [stream],
                    )
                    target_duckdb.emit_state(copy.deepcopy(flushed_state))
                load_batch(syncs[stream], message, add_metadata)
                batches_loaded = True

            elif kind == "SCHEMA":
                if "stream" not in message:
                    raise SingerMessageError(f"Line is missing required key 'stream': {line!r}")
                stream = message["stream"]
                schema = target_duckdb.float_to_decimal(message["schema"])
                validators[stream] = Draft7Validator(schema, format_checker=FormatChecker())
                if row_count.get(stream, 0) > 0:
                    flushed_state = target_duckdb.flush_streams(
                        pending, row_count, syncs, config, state, flushed_state
                    )
                    target_duckdb.emit_state(flushed_state)
                if "key_properties" not in message:
                    raise SingerMessageError("key_properties field is required")
                if message["key_properties"]:
                    LOGGER.info(
                        "append_only: loading stream %s without key properties %s",
                        stream,
                        message["key_properties"],
                    )
                    message["key_properties"] = []
                if add_metadata:
                    message = target_duckdb.add_metadata_columns_to_schema(message)
                syncs[stream] = AppendDbSync(connection, config, message)
                syncs[stream].create_schema_if_not_exists()
                syncs[stream].sync_table()
                row_count[stream] = 0

            elif kind == "ACTIVATE_VERSION":
                LOGGER.debug("ACTIVATE_VERSION message")
                if not flushed_state:
                    flushed_state = copy.deepcopy(state)

            else:
                raise SingerMessageError(f"Unknown message type {kind} in message {message}")

        if sum(row_count.values()) > 0:
            flushed_state = target_duckdb.flush_streams(
                pending, row_count, syncs, config, state, flushed_state
            )
    finally:
        for sync in syncs.values():
            sync.discard()  # a batch left by an error
    target_duckdb.emit_state(copy.deepcopy(flushed_state))


def load_batch(sync: AppendDbSync, message: dict[str, Any], add_metadata: Any) -> None:
    """A BATCH message: its files into the stream's table, then the files removed.

    No row passes through Python: DuckDB reads the tap's gzip JSONL files (singer-sdk's
    `batch_config` with a local storage root) and appends them in one committed INSERT.
    """
    encoding = message.get("encoding") or {}
    if str(encoding.get("format", "jsonl")).lower() != "jsonl":
        raise SingerMessageError(
            f"BATCH format {encoding.get('format')!r} is not supported: set the tap's"
            " batch_config.encoding.format to jsonl"
        )
    paths = [_local_path(str(uri)) for uri in message.get("manifest") or []]
    if not paths:
        return
    loaded_at = datetime.now(UTC).isoformat() if add_metadata else None
    rows = sync.load_files(paths, loaded_at)
    LOGGER.info("Loaded %d rows from %d BATCH file(s)", rows, len(paths))
    for path in paths:
        os.unlink(path)  # committed: the tap's file is not needed any more


def _local_path(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    if not parsed.scheme:
        return uri
    raise SingerMessageError(
        f"BATCH file {uri!r}: only local files are supported; set the tap's"
        " batch_config.storage.root to a local folder (file://...)"
    )


def _validate(validator: Draft7Validator, record: dict[str, Any]) -> None:
    """Upstream's ``validate_records`` check, with its exceptions."""
    try:
        validator.validate(target_duckdb.float_to_decimal(record))
    except Exception as ex:
        if type(ex).__name__ == "InvalidOperation":
            raise target_duckdb.InvalidValidationOperationException(
                f"Data validation failed and cannot load to destination. RECORD: {record}\n"
                "multipleOf validations that allows long precisions are not supported "
                "(i.e. with 15 digits or more) Try removing 'multipleOf' methods from JSON schema."
            ) from ex
        raise target_duckdb.RecordValidationException(
            f"Record does not pass schema validation. RECORD: {record}"
        ) from ex


# ------------------------------------------------------------------------------- main
def resolve_path(config: dict[str, Any]) -> None:
    """Default the DuckDB file to ``$MELTANO_PROJECT_ROOT/output/dome.duckdb``; create its folder.

    Meltano drops the ``path`` setting when ``$DOME_DUCKDB_PATH`` is unset (it has no
    ``${VAR:-default}``), so the default lives here. A relative path is taken from the project
    root, as dbt (which runs in transform/) could not share a path relative to the cwd.
    """
    root = os.environ.get("MELTANO_PROJECT_ROOT") or os.getcwd()
    path = config.get("path") or config.get("filepath") or ""
    if not path:
        path = os.path.join(root, "output", "dome.duckdb")
    if ":" in path.split("/")[0]:  # md:, motherduck: and the like: not a local file
        config["path"] = path
        return
    if not os.path.isabs(path) and path != ":memory:":
        path = os.path.join(root, path)
    if path != ":memory:":
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    config["path"] = path
    config.pop("filepath", None)


# DuckDB settings for a loader that commits a batch of a few thousand rows at a time, on a
# machine it shares with the tap and Meltano (the `settings` config overrides them):
# - one thread while loading: a batch is too small to gain from more, and idle threads spin;
# - checkpoint after 256 MB of WAL instead of 16 MB: each checkpoint re-writes the table's
#   last row group, and with 16 MB that was half of the time spent in DuckDB. A commit is as
#   durable either way (it is in the WAL); closing the connection checkpoints the rest;
# - memory_limit 64MB instead of 80% of RAM: DuckDB keeps the rows not yet checkpointed in
#   memory up to its limit, and spills the rest to a temporary file, so the loader grew with
#   the run (~265 MiB at 200,000 fills, beside the tap and Meltano); at 64MB it peaks at
#   ~160 MiB, no slower, and a 1,000,000-row load passes (bench/job.py; 48MB ran out).
DUCKDB_SETTINGS = {"threads": 1, "checkpoint_threshold": "256MB", "memory_limit": "64MB"}


def patch() -> None:
    """Install the fixes into the upstream modules."""
    db_sync.DbSync.load_rows = load_rows
    target_duckdb.add_metadata_values_to_record = add_metadata_values_to_record


def main() -> None:
    """Entry point: upstream's ``main`` with the fixes installed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("-c", "--config", help="Config file")
    args = parser.parse_args()
    config: dict[str, Any] = {}
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            config = json.load(f)
    patch()
    resolve_path(config)
    settings = config.get("settings") or {}
    config["settings"] = {**DUCKDB_SETTINGS, **settings}
    connection = target_duckdb.duckdb_connect(config)
    if config.get("append_only", True):
        persist_append_only(connection, config, sys.stdin.buffer)
    else:
        lines = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8")
        target_duckdb.persist_lines(connection, config, lines)
    if "threads" not in settings:
        connection.execute("RESET threads")  # for the final checkpoint: all cores
    connection.close()


if __name__ == "__main__":
    main()
