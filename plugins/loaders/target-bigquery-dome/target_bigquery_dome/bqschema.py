"""The raw table's BigQuery schema, from the stream's SCHEMA message.

One NULLABLE column per property (the raw table is append-only and every copy of a row is
kept: no key, no REQUIRED), plus the loader's two metadata columns. The table is partitioned
on _sdc_batched_at, so dbt's incremental cut-off on it reads only the newest partitions.

Schema evolution: a property that is new in a later SCHEMA message (of this run or of a later
one) becomes a new NULLABLE column, added to the table before the next load; rows loaded
before have NULL there. A column is never dropped or retyped: a property that disappears stays
as a column and loads NULL; a changed type fails the load job, which names the column.
"""

from __future__ import annotations

import os
import re
from typing import Any

from google.cloud import bigquery

METADATA_FIELDS = (
    bigquery.SchemaField("_sdc_extracted_at", "TIMESTAMP", mode="NULLABLE"),
    bigquery.SchemaField("_sdc_batched_at", "TIMESTAMP", mode="NULLABLE"),
)
PARTITION_FIELD = "_sdc_batched_at"
_STRING_FORMATS = {"date-time": "TIMESTAMP", "date": "DATE", "time": "TIME"}
_TYPES = {"integer": "INTEGER", "number": "FLOAT", "boolean": "BOOLEAN"}


def table_id(stream: str) -> str:
    """The raw table of a stream: its name, with characters BigQuery rejects as `_`."""
    return re.sub(r"[^A-Za-z0-9_]", "_", stream)


def column_type(prop: dict[str, Any]) -> str:
    """The BigQuery type of one JSON-schema property."""
    declared = prop.get("type")
    types = [declared] if isinstance(declared, str) else list(declared or [])
    types = [t for t in types if t != "null"]
    if len(types) != 1:
        # anyOf, several types or none: the value goes in as it came.
        return "STRING" if types and set(types) <= {"string", "integer", "number"} else "JSON"
    kind = types[0]
    if kind == "string":
        return _STRING_FORMATS.get(str(prop.get("format", "")), "STRING")
    if kind in ("object", "array"):
        return "JSON"
    return _TYPES.get(kind, "STRING")


def fields_for(schema: dict[str, Any]) -> list[bigquery.SchemaField]:
    """The columns for a stream's JSON schema, metadata last."""
    props = schema.get("properties") or {}
    names = {f.name for f in METADATA_FIELDS}
    fields = [
        bigquery.SchemaField(name, column_type(prop), mode="NULLABLE")
        for name, prop in props.items()
        if name not in names
    ]
    return fields + list(METADATA_FIELDS)


def merged(
    existing: list[bigquery.SchemaField], wanted: list[bigquery.SchemaField]
) -> list[bigquery.SchemaField]:
    """The table's columns followed by the wanted ones it lacks (case-insensitive, as BigQuery)."""
    have = {f.name.lower() for f in existing}
    return list(existing) + [f for f in wanted if f.name.lower() not in have]


def ensure_table(
    client: bigquery.Client,
    table_ref: bigquery.TableReference,
    fields: list[bigquery.SchemaField],
    granularity: str,
) -> list[bigquery.SchemaField]:
    """Create the table, or add the columns it lacks; return its schema after that."""
    from google.api_core import exceptions as gexc

    try:
        table = client.get_table(table_ref)
    except gexc.NotFound:
        table = bigquery.Table(table_ref, schema=fields)
        table.time_partitioning = bigquery.TimePartitioning(
            type_=granularity.upper(), field=PARTITION_FIELD
        )
        table = client.create_table(table, exists_ok=True)
        return list(table.schema) or fields
    schema = merged(list(table.schema), fields)
    new = schema[len(table.schema) :]
    if new:
        table.schema = schema
        client.update_table(table, ["schema"])
        if os.environ.get("BIGQUERY_EMULATOR_HOST"):
            # bqemulator's tables.patch changes its catalog only, not the DuckDB table behind it.
            ref = f"{table_ref.project}.{table_ref.dataset_id}.{table_ref.table_id}"
            for f in new:
                sql = f"ALTER TABLE `{ref}` ADD COLUMN IF NOT EXISTS `{f.name}` {f.field_type}"
                client.query(sql).result()
    return schema
