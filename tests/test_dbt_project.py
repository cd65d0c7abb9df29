"""The dbt project in transform/ on DuckDB: dedup, incremental runs, full refresh, docs.

A raw `tap_dome.orders` table shaped like target-duckdb's (HUGEINT integers, naive TIMESTAMPs,
loader metadata) is filled with crafted rows: duplicates within and across batches, partial
fills of one order, several fills in one transaction, late copies. The test runs `dbt build`,
appends a second batch (new fills, re-read copies, a newer copy, a fill on an old day, a row
that became visible late), runs `dbt build` again (incremental), and checks fct_orders row for
row and value for value; then `dbt build --full-refresh` must give the same table and
`dbt docs generate` must work. With a BigQuery-capable dbt at hand it also parses the project
for BigQuery and checks fct_orders' partitioning, clustering and strategy there.

dbt and DuckDB come through tests/dbt_warehouse.py (Meltano's dbt, or DOME_DBT_BIN; without
one the tests skip).
"""

from __future__ import annotations

import calendar
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.dbt_warehouse import (
    MELTANO_DBT_BIGQUERY,
    Warehouse,
    adapters,
    open_warehouse,
)

pytestmark = pytest.mark.e2e

# ---------------------------------------------------------------------------------------------
# DuckDB, through the dbt virtualenv's Python
# ---------------------------------------------------------------------------------------------

RAW_DDL = """
create schema if not exists tap_dome;
create table if not exists tap_dome.orders (
    order_id varchar, wallet varchar, "user" varchar, taker varchar, side varchar,
    token_id varchar, token_label varchar, market_slug varchar, condition_id varchar,
    title varchar, shares hugeint, shares_normalized double, price double, tx_hash varchar,
    log_index hugeint, block_number hugeint, order_hash varchar, "timestamp" hugeint,
    filled_at timestamp, _sdc_extracted_at timestamp, _sdc_batched_at timestamp,
    _sdc_deleted_at varchar
);
"""

RAW_COLUMNS = [
    "order_id", "wallet", "user", "taker", "side", "token_id", "token_label", "market_slug",
    "condition_id", "title", "shares", "shares_normalized", "price", "tx_hash", "log_index",
    "block_number", "order_hash", "timestamp", "filled_at", "_sdc_extracted_at",
    "_sdc_batched_at",
]  # fmt: skip


def append_orders(wh: Warehouse, rows: list[dict[str, Any]]) -> None:
    wh.append("tap_dome.orders", RAW_DDL, RAW_COLUMNS, rows)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    return open_warehouse(tmp_path_factory)


# ---------------------------------------------------------------------------------------------
# Crafted fills
# ---------------------------------------------------------------------------------------------

W1 = "0x" + "a1" * 20
W2 = "0x" + "b2" * 20
EXCHANGE = "0x" + "e0" * 20
MARKET_1 = ("0x" + "c1" * 32, "will-it-rain", "Will it rain?", "1111", "Yes")
MARKET_2 = ("0x" + "c2" * 32, "will-it-snow", "Will it snow?", "2222", "No")


def tx(n: int) -> str:
    return "0x" + f"{n:064x}"


def fill(
    wallet: str,
    tx_hash: str,
    log_index: int | None,
    *,
    order_hash: str,
    at: str,
    side: str = "BUY",
    shares: int = 1_000_000,
    price: float = 0.5,
    market: tuple[str, str, str, str, str] = MARKET_1,
    block_number: int | None = 100,
    order_id: str | None = None,
) -> dict[str, Any]:
    """One fill as the tap emits it (docs/contracts.md), without loader metadata."""
    condition_id, slug, title, token_id, label = market
    unix = calendar.timegm(time.strptime(at, "%Y-%m-%d %H:%M:%S"))  # `at` is UTC
    return {
        "order_id": order_id or f"{tx_hash}:{log_index}",
        "wallet": wallet,
        "user": wallet,
        "taker": EXCHANGE,
        "side": side,
        "token_id": token_id,
        "token_label": label,
        "market_slug": slug,
        "condition_id": condition_id,
        "title": title,
        "shares": shares,
        "shares_normalized": shares / 1e6,
        "price": price,
        "tx_hash": tx_hash,
        "log_index": log_index,
        "block_number": block_number,
        "order_hash": order_hash,
        "timestamp": unix,
        "filled_at": at,
    }


def loaded(row: dict[str, Any], batched_at: str, extracted_at: str | None = None) -> dict[str, Any]:
    return {
        **row,
        "_sdc_batched_at": batched_at,
        "_sdc_extracted_at": extracted_at or batched_at,
    }


# one order, partially filled in three fills over two transactions
O1 = "0x" + "01" * 32
O2 = "0x" + "02" * 32
O3 = "0x" + "03" * 32

F1 = fill(W1, tx(1), 4, order_hash=O1, at="2025-02-28 10:00:00", shares=1_000_000)
F2 = fill(W1, tx(2), 7, order_hash=O1, at="2025-02-28 11:00:00", shares=2_500_000, price=0.52)
F3 = fill(W1, tx(2), 9, order_hash=O1, at="2025-02-28 11:00:00", shares=500_000, price=0.52)
F4 = fill(  # no log_index: the tap's fallback id
    W1, tx(3), None, order_hash=O2, at="2025-02-28 23:59:59", side="SELL", price=0.9,
    block_number=None, order_id=f"{tx(3)}:h0123456789abcdef",
)  # fmt: skip
F5 = fill(W2, tx(4), 1, order_hash=O3, at="2025-02-27 00:00:00", market=MARKET_2, price=0.1)
# second batch
# a newer copy of F2 (values changed)
F2_NEWER = {**F2, "price": 0.53, "block_number": 101}
F6 = fill(W1, tx(6), 2, order_hash=O3, at="2025-03-01 09:00:00", side="SELL", price=0.7)
# late-indexed, on an old day
F7 = fill(W2, tx(7), 3, order_hash=O3, at="2025-02-20 12:00:00", market=MARKET_2)
F8 = fill(W2, tx(8), 5, order_hash=O3, at="2025-03-01 09:30:00", market=MARKET_2, price=0.3)

T1 = "2025-03-01 06:00:00"  # before the cutoff of run 2
T1B = "2025-03-01 10:30:00"  # newest batch of the first load: cutoff of run 2 = 07:30
T2 = "2025-03-01 12:00:00"

BATCH_1 = [
    loaded(F1, T1),
    loaded(F1, T1),  # exact duplicate in the same batch
    loaded(F2, T1),
    loaded(F3, T1),
    loaded(F4, T1),
    loaded(F5, T1),
    loaded(F1, T1B, "2025-03-01 10:29:00"),  # re-read in the next batch (lookback)
    loaded(F3, T1B, "2025-03-01 10:29:00"),
]
BATCH_2 = [
    loaded(F1, T2),  # re-read again
    loaded(F3, T2),
    loaded(F2_NEWER, T2),  # newer copy wins
    loaded(F6, T2),  # new fill
    loaded(F7, T2),  # late-indexed fill on an old, untouched day
    # visible only now, batched before the last run but within the 3 h margin (e.g. a
    # target that loads its staged files at the end of a long run)
    loaded(F8, "2025-03-01 09:45:00"),
]

DAYS_TOUCHED_BY_RUN_2 = ["2025-02-20", "2025-02-28", "2025-03-01"]


def expected(*copies: tuple[dict[str, Any], str, str]) -> list[dict[str, Any]]:
    """fct_orders rows for (fill, batched_at, extracted_at) copies, ordered by order_id."""
    rows = []
    for f, batched_at, extracted_at in copies:
        filled_at = f["filled_at"].replace(" ", "T")
        rows.append(
            {
                "order_id": f["order_id"],
                "wallet": f["wallet"],
                "tx_hash": f["tx_hash"],
                "log_index": f["log_index"],
                "block_number": f["block_number"],
                "order_hash": f["order_hash"],
                "user_address": f["user"],
                "taker_address": f["taker"],
                "condition_id": f["condition_id"],
                "market_slug": f["market_slug"],
                "market_title": f["title"],
                "token_id": f["token_id"],
                "token_label": f["token_label"],
                "side": f["side"],
                "shares": f["shares"],
                "shares_normalized": f["shares_normalized"],
                "price": f["price"],
                "filled_at_unix": f["timestamp"],
                "filled_at": filled_at,
                "filled_date": filled_at[:10],
                "extracted_at": extracted_at.replace(" ", "T"),
                "batched_at": batched_at.replace(" ", "T"),
                "notional_usdc": f["shares_normalized"] * f["price"],
            }
        )
    return sorted(rows, key=lambda r: r["order_id"])


AFTER_RUN_1 = expected(
    (F1, T1B, "2025-03-01 10:29:00"),
    (F2, T1, T1),
    (F3, T1B, "2025-03-01 10:29:00"),
    (F4, T1, T1),
    (F5, T1, T1),
)
AFTER_RUN_2 = expected(
    (F1, T2, T2),
    (F2_NEWER, T2, T2),
    (F3, T2, T2),
    (F4, T1, T1),
    (F5, T1, T1),
    (F6, T2, T2),
    (F7, T2, T2),
    (F8, "2025-03-01 09:45:00", "2025-03-01 09:45:00"),
)


def fct_orders(wh: Warehouse) -> list[dict[str, Any]]:
    return wh.query("select * from main.fct_orders order by order_id")


# ---------------------------------------------------------------------------------------------
# Tests (in order: they share one warehouse)
# ---------------------------------------------------------------------------------------------


def test_first_build_deduplicates(warehouse: Warehouse) -> None:
    append_orders(warehouse, BATCH_1)
    out = warehouse.dbt_run("build")
    assert "PASS=" in out
    assert "ERROR=0" in out

    assert fct_orders(warehouse) == AFTER_RUN_1
    # staging keeps every raw row
    assert warehouse.query("select count(*) as n from main.stg_dome__orders") == [
        {"n": len(BATCH_1)}
    ]


def test_streams_not_loaded_give_empty_models(warehouse: Warehouse) -> None:
    """Only the orders raw table exists: the models over the other streams build, empty."""
    for model in ("stg_dome__markets", "dim_markets", "fct_activity", "wallet_completeness"):
        assert warehouse.query(f"select count(*) as n from main.{model}") == [{"n": 0}], model
    positions = warehouse.query(
        "select wallet, token_id, is_resolved, realized_pnl_usdc, fills "
        "from main.wallet_positions order by wallet, token_id"
    )
    assert sum(p["fills"] for p in positions) == len(AFTER_RUN_1)
    assert all(p["is_resolved"] is False and p["realized_pnl_usdc"] is None for p in positions)


def test_incremental_build_processes_only_new_rows(warehouse: Warehouse) -> None:
    append_orders(warehouse, BATCH_2)
    out = warehouse.dbt_run("build")
    assert "ERROR=0" in out

    assert fct_orders(warehouse) == AFTER_RUN_2

    # the incremental path ran, with the cutoff (newest batched_at less 3 h) and the touched
    # days inlined as literals
    compiled = (
        warehouse.workdir / "target/compiled/tap_dome/models/marts/fct_orders.sql"
    ).read_text()
    assert "batched_at >= cast('2025-03-01 07:30:00' as timestamp)" in compiled
    days = ", ".join(f"date '{d}'" for d in DAYS_TOUCHED_BY_RUN_2)
    assert f"filled_date in ({days})" in compiled
    assert 'from "dome"."main"."fct_orders"' in compiled


def test_marts(warehouse: Warehouse) -> None:
    daily = warehouse.query(
        "select wallet, condition_id, cast(filled_date as varchar) as day, fills, buy_fills, "
        "sell_fills, shares, notional_usdc from main.wallet_daily "
        "order by wallet, condition_id, day"
    )
    want: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in AFTER_RUN_2:
        key = (r["wallet"], r["condition_id"], r["filled_date"])
        agg = want.setdefault(
            key,
            {
                "fills": 0,
                "buy_fills": 0,
                "sell_fills": 0,
                "shares": 0.0,
                "notional": 0.0,
            },
        )
        agg["fills"] += 1
        agg["buy_fills"] += r["side"] == "BUY"
        agg["sell_fills"] += r["side"] == "SELL"
        agg["shares"] += r["shares_normalized"]
        agg["notional"] += r["notional_usdc"]
    assert [(d["wallet"], d["condition_id"], d["day"]) for d in daily] == sorted(want)
    for d in daily:
        w = want[(d["wallet"], d["condition_id"], d["day"])]
        assert (d["fills"], d["buy_fills"], d["sell_fills"]) == (
            w["fills"],
            w["buy_fills"],
            w["sell_fills"],
        )
        assert d["shares"] == pytest.approx(w["shares"])
        assert d["notional_usdc"] == pytest.approx(w["notional"])

    wallets = warehouse.query(
        "select wallet, fills, markets_traded, active_days, "
        "cast(first_fill_at as varchar) as first_fill, cast(last_fill_at as varchar) as last_fill "
        "from main.dim_wallets order by wallet"
    )
    assert wallets == [
        {
            "wallet": W1,
            "fills": 5,
            "markets_traded": 1,
            "active_days": 2,
            "first_fill": "2025-02-28 10:00:00",
            "last_fill": "2025-03-01 09:00:00",
        },
        {
            "wallet": W2,
            "fills": 3,
            "markets_traded": 1,
            "active_days": 3,
            "first_fill": "2025-02-20 12:00:00",
            "last_fill": "2025-03-01 09:30:00",
        },
    ]


def test_full_refresh_rebuilds_the_same_table(warehouse: Warehouse) -> None:
    out = warehouse.dbt_run("build", "--full-refresh")
    assert "ERROR=0" in out
    assert fct_orders(warehouse) == AFTER_RUN_2
    types = warehouse.duckdb({"op": "query", "sql": "select * from main.fct_orders limit 0"})[
        "types"
    ]
    assert types["filled_at"] == types["batched_at"] == "TIMESTAMP"
    assert types["filled_date"] == "DATE"
    assert types["shares"] == types["log_index"] == "BIGINT"
    assert types["price"] == types["notional_usdc"] == "DOUBLE"


def test_docs_generate(warehouse: Warehouse) -> None:
    warehouse.dbt_run("docs", "generate")
    catalog = json.loads((warehouse.workdir / "target/catalog.json").read_text())
    manifest = json.loads((warehouse.workdir / "target/manifest.json").read_text())
    assert {n["metadata"]["name"] for n in catalog["nodes"].values()} >= {
        "stg_dome__orders",
        "fct_orders",
        "wallet_daily",
        "dim_wallets",
    }
    # every model and every column of it is described
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model":
            continue
        assert node["description"].strip(), node["name"]
        built = {c.lower() for c in catalog["nodes"][node["unique_id"]]["columns"]}
        assert built == set(node["columns"]), node["name"]
        for column in node["columns"].values():
            assert column["description"].strip(), f"{node['name']}.{column['name']}"


def test_bigquery_config(warehouse: Warehouse, tmp_path: Path) -> None:
    """Parse (no connection) for BigQuery: fct_orders partitioned, clustered, insert_overwrite."""
    dbt = Path(os.environ.get("DOME_DBT_BIGQUERY_BIN", MELTANO_DBT_BIGQUERY))
    if not dbt.exists():
        dbt = warehouse.dbt
    if "bigquery" not in adapters(dbt):
        pytest.skip("no dbt with the BigQuery adapter (the dbt-bigquery plugin is not installed)")
    keyfile = tmp_path / "key.json"
    keyfile.write_text("{}")
    warehouse.dbt_run(
        "parse",
        dbt=dbt,
        DBT_TARGET="bigquery",
        DBT_TARGET_PATH=str(tmp_path / "target"),
        DBT_BIGQUERY_PROJECT="dome-test",
        DBT_BIGQUERY_DATASET="dome",
        DBT_BIGQUERY_KEYFILE=str(keyfile),
        TARGET_BIGQUERY_DATASET="raw_dome",
    )
    manifest = json.loads((tmp_path / "target/manifest.json").read_text())
    nodes = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    fct = nodes["fct_orders"]["config"]
    assert fct["materialized"] == "incremental"
    assert fct["incremental_strategy"] == "insert_overwrite"
    assert fct["partition_by"] == {
        "field": "filled_date",
        "data_type": "date",
        "granularity": "day",
    }
    assert fct["cluster_by"] == ["wallet", "condition_id"]
    assert nodes["wallet_daily"]["config"]["partition_by"]["field"] == "filled_date"
    activity = nodes["fct_activity"]["config"]
    assert activity["incremental_strategy"] == "insert_overwrite"
    assert activity["partition_by"]["field"] == "occurred_date"
    assert activity["cluster_by"] == ["wallet", "condition_id"]
    sources = {
        s["name"]: (s["database"], s["schema"], s["identifier"])
        for s in manifest["sources"].values()
    }
    assert sources == {
        name: ("dome-test", "raw_dome", name)
        for name in ("orders", "markets", "activity", "wallet_audits")
    }
