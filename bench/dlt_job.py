"""The same job as tap-dome's, written with dlt 1.31's rest_api source: the benchmark's rival.

Runs in the benchmark's own virtualenv (.cache/bench-dlt, made by bench/job.py), never in the
product. Set up the way dlt's docs recommend for speed: one resource per wallet with
`parallelized=True`, cursor pagination on `pagination.pagination_key`, parquet files, two
normalize workers (NORMALIZE__WORKERS, set by the caller), merge on `order_id` into DuckDB.
`order_id` is tap-dome's identity of a fill (tap-dome/tap_dome/records.py), so both jobs
deduplicate on the same key. Prints one JSON line: rows in the table, distinct order_ids.

Usage: python bench/dlt_job.py API_URL API_KEY WALLETS_JSON DUCKDB_FILE PIPELINES_DIR
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from typing import Any

import dlt  # type: ignore[import-not-found]
from dlt.sources.rest_api import rest_api_source  # type: ignore[import-not-found]

START_TIME = 1577836800  # 2020-01-01, as the benchmark's tap-dome runs


def with_identity(wallet: str) -> Any:
    """A map step adding tap-dome's `order_id` and the tracked wallet to each fill."""

    def step(fill: dict[str, Any]) -> dict[str, Any]:
        tx_hash = str(fill["tx_hash"]).lower()
        log_index = fill.get("log_index")
        if log_index is not None:
            fill["order_id"] = f"{tx_hash}:{int(log_index)}"
        else:
            parts = [str(fill.get(k) or "") for k in ("order_hash", "token_id", "side", "shares")]
            parts.append(repr(float(fill["price"])) if fill.get("price") is not None else "")
            fill["order_id"] = (
                f"{tx_hash}:h{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:16]}"
            )
        fill["wallet"] = wallet
        return fill

    return step


def source(api_url: str, api_key: str, wallets: list[str]) -> Any:
    """One `orders` resource per wallet, all merged into the table `orders`."""
    end_time = int(time.time())
    return rest_api_source(
        {
            "client": {
                "base_url": api_url.rstrip("/") + "/",
                "auth": {"type": "bearer", "token": api_key},
                "paginator": {
                    "type": "cursor",
                    "cursor_path": "pagination.pagination_key",
                    "cursor_param": "pagination_key",
                },
            },
            "resource_defaults": {
                "table_name": "orders",
                "primary_key": "order_id",
                "write_disposition": "merge",
                "parallelized": True,
                "endpoint": {"data_selector": "orders"},
            },
            "resources": [
                {
                    "name": f"orders_{n}",
                    "endpoint": {
                        "path": "polymarket/orders",
                        "params": {
                            "user": wallet,
                            "limit": 1000,
                            "start_time": START_TIME,
                            "end_time": end_time,
                        },
                        "data_selector": "orders",
                    },
                    "processing_steps": [{"map": with_identity(wallet)}],
                }
                for n, wallet in enumerate(wallets)
            ],
        }
    )


def main() -> None:
    api_url, api_key, wallets_json, database, pipelines_dir = sys.argv[1:6]
    pipeline = dlt.pipeline(
        pipeline_name="dome_bench",
        destination=dlt.destinations.duckdb(database),
        dataset_name="dome",
        pipelines_dir=pipelines_dir,
    )
    pipeline.run(source(api_url, api_key, json.loads(wallets_json)), loader_file_format="parquet")
    with pipeline.sql_client() as client:
        rows, distinct = client.execute_sql(
            "select count(*), count(distinct order_id) from orders"
        )[0]
    print(json.dumps({"rows": rows, "distinct": distinct}))


if __name__ == "__main__":
    main()
