"""target-duckdb 0.8.0 with the fixes tap-dome needs (see README.md beside this package)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import target_duckdb
from target_duckdb import db_sync
from target_duckdb.logger import get_logger

LOGGER = get_logger("target_duckdb")


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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
        self.conn.execute(
            f"COPY {temp_table} FROM {_sql_str(temp_file_csv)} ({options})"
        )
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
    record["_sdc_batched_at"] = datetime.now(UTC).replace(tzinfo=None).isoformat()
    record["_sdc_deleted_at"] = record.get("_sdc_deleted_at")
    return record


def without_key_properties(lines: Iterable[str]) -> Iterator[str]:
    """Pass Singer messages through, with ``key_properties`` emptied in SCHEMA messages.

    With no key, target-duckdb appends every record; with one it would upsert (and collapse
    duplicates within a batch), and the raw table must be append-only.
    """
    for line in lines:
        if '"SCHEMA"' in line:
            message = json.loads(line)
            if message.get("type") == "SCHEMA" and message.get("key_properties"):
                LOGGER.info(
                    "append_only: loading stream %s without key properties %s",
                    message.get("stream"),
                    message["key_properties"],
                )
                message["key_properties"] = []
                line = json.dumps(message) + "\n"
        yield line


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
    lines: Iterable[str] = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8")
    if config.get("append_only", True):
        config["primary_key_required"] = False
        lines = without_key_properties(lines)
    connection = target_duckdb.duckdb_connect(config)
    target_duckdb.persist_lines(connection, config, lines)
    connection.close()


if __name__ == "__main__":
    main()
