"""dbt over the markets, activity and wallet_audits raw tables, on DuckDB, row for row.

The raw tables are created here the way target-duckdb creates them (HUGEINT integers, DOUBLE
numbers, naive TIMESTAMPs, arrays as JSON text, loader metadata), with hand-written rows:
a market read open and again resolved, activity read twice and once late, audits that find
one wallet complete and one short. `dbt build` must give exact dim_markets, fct_activity,
wallet_positions (shares and realised PnL) and wallet_completeness rows; the completeness
test must fail the build when a wallet misses fills (and only warn when told); an incremental
run must merge late activity copies; removing fills from raw and rebuilding with
`--full-refresh` must name exactly the wallet and the count.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.dbt_warehouse import Warehouse, open_warehouse

pytestmark = pytest.mark.e2e

SCHEMA = "create schema if not exists tap_dome;"
META = "_sdc_extracted_at timestamp, _sdc_batched_at timestamp, _sdc_deleted_at varchar"

ORDERS_DDL = f"""{SCHEMA}
create table if not exists tap_dome.orders (
    order_id varchar, wallet varchar, "user" varchar, taker varchar, side varchar,
    token_id varchar, token_label varchar, market_slug varchar, condition_id varchar,
    title varchar, shares hugeint, shares_normalized double, price double, tx_hash varchar,
    log_index hugeint, block_number hugeint, order_hash varchar, "timestamp" hugeint,
    filled_at timestamp, extra_fields varchar, {META}
);"""
MARKETS_DDL = f"""{SCHEMA}
create table if not exists tap_dome.markets (
    condition_id varchar, market_slug varchar, event_slug varchar, title varchar,
    description varchar, start_time hugeint, end_time hugeint, close_time hugeint,
    completed_time hugeint, game_start_time varchar, status varchar, side_a_token_id varchar,
    side_a_label varchar, side_b_token_id varchar, side_b_label varchar,
    winning_token_id varchar, winning_label varchar, volume_1_week double,
    volume_1_month double, volume_1_year double, volume_total double, tags varchar,
    resolution_source varchar, image varchar, negative_risk_id varchar, price_to_beat double,
    final_price double, extra_fields varchar, {META}
);"""
ACTIVITY_DDL = f"""{SCHEMA}
create table if not exists tap_dome.activity (
    activity_id varchar, wallet varchar, "user" varchar, side varchar, token_id varchar,
    market_slug varchar, condition_id varchar, title varchar, shares hugeint,
    shares_normalized double, price double, tx_hash varchar, log_index hugeint,
    block_number hugeint, order_hash varchar, "timestamp" hugeint, occurred_at timestamp,
    extra_fields varchar, {META}
);"""
AUDITS_DDL = f"""{SCHEMA}
create table if not exists tap_dome.wallet_audits (
    audit_id varchar, wallet varchar, audited_at timestamp, start_time hugeint,
    end_time hugeint, api_total hugeint, source varchar, {META}
);"""

W1 = "0x" + "a1" * 20
W2 = "0x" + "b2" * 20
M1 = "0x" + "c1" * 32  # resolved: token A1 wins
M2 = "0x" + "c2" * 32  # open
A1, B1, A2, B2 = "101", "102", "201", "202"
DAY0 = 1_740_787_200  # 2025-03-01 00:00:00 UTC
T1 = "2025-03-02 06:00:00"  # first load
T2 = "2025-03-02 12:00:00"  # second load


def at(seconds: int) -> str:
    """DAY0 + seconds as the naive UTC text the loader writes."""
    hours, rest = divmod(seconds, 3600)
    return f"2025-03-01 {hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def meta(batched_at: str, extracted_at: str | None = None) -> dict[str, str]:
    return {"_sdc_batched_at": batched_at, "_sdc_extracted_at": extracted_at or batched_at}


def market(
    cid: str, tokens: tuple[str, str], *, winner: str | None, batched: str
) -> dict[str, Any]:
    return {
        "condition_id": cid,
        "market_slug": f"slug-{cid[-4:]}",
        "event_slug": f"event-{cid[-4:]}",
        "title": f"Market {cid[-4:]}?",
        "start_time": DAY0 - 86_400,
        "end_time": DAY0 + 86_400,
        "close_time": DAY0 + 7200 if winner else None,
        "completed_time": DAY0 + 9000 if winner else None,
        "status": "closed" if winner else "open",
        "side_a_token_id": tokens[0],
        "side_a_label": "Yes",
        "side_b_token_id": tokens[1],
        "side_b_label": "No",
        "winning_token_id": winner,
        "winning_label": None if winner is None else ("Yes" if winner == tokens[0] else "No"),
        "volume_total": 100.0,
        "tags": '["Test"]',
        **meta(batched),
    }


def fill(
    n: int, wallet: str, cid: str, token: str, side: str, shares: float, price: float
) -> dict[str, Any]:
    tx = f"0x{n:064x}"
    return {
        "order_id": f"{tx}:{n}",
        "wallet": wallet,
        "user": wallet,
        "side": side,
        "token_id": token,
        "condition_id": cid,
        "shares": int(shares * 1e6),
        "shares_normalized": shares,
        "price": price,
        "tx_hash": tx,
        "log_index": n,
        "order_hash": f"0x{n:02x}",
        "timestamp": DAY0 + 60 * n,
        "filled_at": at(60 * n),
        **meta(T1),
    }


def event(
    n: int, wallet: str, cid: str, token: str, side: str, shares: float, batched: str
) -> dict[str, Any]:
    tx = f"0x{1000 + n:064x}"
    return {
        "activity_id": f"{tx}:{n}",
        "wallet": wallet,
        "user": wallet,
        "side": side,
        "token_id": token,
        "condition_id": cid,
        "shares": int(shares * 1e6),
        "shares_normalized": shares,
        "price": 1.0,
        "tx_hash": tx,
        "log_index": n,
        "order_hash": "",
        "timestamp": DAY0 + 600 * n,
        "occurred_at": at(600 * n),
        **meta(batched),
    }


FILLS = [
    fill(1, W1, M1, A1, "BUY", 10.0, 0.5),
    fill(2, W1, M1, A1, "SELL", 4.0, 0.75),
    fill(3, W1, M1, B1, "BUY", 2.0, 0.25),
    fill(4, W1, M2, A2, "BUY", 8.0, 0.5),
    fill(5, W2, M2, A2, "BUY", 1.0, 0.5),
]
MARKETS = [
    market(M1, (A1, B1), winner=None, batched=T1),  # read while open ...
    market(M1, (A1, B1), winner=A1, batched=T2),  # ... and again once resolved
    market(M2, (A2, B2), winner=None, batched=T1),
]
SPLIT = event(1, W1, M1, A1, "SPLIT", 6.0, T1)
MERGE = event(2, W1, M1, A1, "MERGE", 2.0, T1)
REDEEM = event(16, W1, M1, A1, "REDEEM", 8.0, T2)  # after the resolution
ACTIVITY_1 = [SPLIT, SPLIT, MERGE]  # SPLIT read twice in one batch
ACTIVITY_2 = [{**SPLIT, **meta(T2)}, {**MERGE, "price": 0.99, **meta(T2)}, REDEEM]
AUDITS = [
    {  # an older audit of W1, superseded
        "audit_id": f"{W1}:{DAY0}:{DAY0 + 100}:{DAY0 + 50_000}", "wallet": W1,
        "audited_at": "2025-03-01 13:53:20", "start_time": DAY0, "end_time": DAY0 + 100,
        "api_total": 1, "source": "limit_1_probe", **meta(T1),
    },
    {
        "audit_id": f"{W1}:{DAY0}:{DAY0 + 3600}:{DAY0 + 90_000}", "wallet": W1,
        "audited_at": "2025-03-02 01:00:00", "start_time": DAY0, "end_time": DAY0 + 3600,
        "api_total": 4, "source": "window_first_page", **meta(T1),
    },
    {
        "audit_id": f"{W2}:{DAY0}:{DAY0 + 3600}:{DAY0 + 90_000}", "wallet": W2,
        "audited_at": "2025-03-02 01:00:00", "start_time": DAY0, "end_time": DAY0 + 3600,
        "api_total": 3, "source": "limit_1_probe", **meta(T1),
    },
]  # fmt: skip

COLUMNS = {
    "orders": (ORDERS_DDL, [
        "order_id", "wallet", "user", "side", "token_id", "condition_id", "shares",
        "shares_normalized", "price", "tx_hash", "log_index", "order_hash", "timestamp",
        "filled_at", "_sdc_extracted_at", "_sdc_batched_at",
    ]),
    "markets": (MARKETS_DDL, [
        "condition_id", "market_slug", "event_slug", "title", "start_time", "end_time",
        "close_time", "completed_time", "status", "side_a_token_id", "side_a_label",
        "side_b_token_id", "side_b_label", "winning_token_id", "winning_label", "volume_total",
        "tags", "_sdc_extracted_at", "_sdc_batched_at",
    ]),
    "activity": (ACTIVITY_DDL, [
        "activity_id", "wallet", "user", "side", "token_id", "condition_id", "shares",
        "shares_normalized", "price", "tx_hash", "log_index", "order_hash", "timestamp",
        "occurred_at", "_sdc_extracted_at", "_sdc_batched_at",
    ]),
    "wallet_audits": (AUDITS_DDL, [
        "audit_id", "wallet", "audited_at", "start_time", "end_time", "api_total", "source",
        "_sdc_extracted_at", "_sdc_batched_at",
    ]),
}  # fmt: skip


def load(wh: Warehouse, table: str, rows: list[dict[str, Any]]) -> None:
    ddl, columns = COLUMNS[table]
    wh.append(f"tap_dome.{table}", ddl, columns, rows)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    wh = open_warehouse(tmp_path_factory, "dbt-streams")
    load(wh, "orders", FILLS)
    load(wh, "markets", MARKETS)
    load(wh, "activity", ACTIVITY_1)
    load(wh, "wallet_audits", AUDITS)
    return wh


def completeness(wh: Warehouse) -> list[dict[str, Any]]:
    return wh.query(
        "select wallet, audit_id, audit_source, api_total, warehouse_fills, missing_fills, "
        "extra_fills, is_complete, cast(range_end_at as varchar) as range_end "
        "from main.wallet_completeness order by wallet"
    )


# ------------------------------------------------------------------ (in order: one warehouse)


def test_first_build_with_the_completeness_test_as_a_warning(warehouse: Warehouse) -> None:
    out = warehouse.dbt_run("build", DOME_COMPLETENESS_SEVERITY="warn")
    assert "ERROR=0" in out
    assert "WARN=1" in out  # W2 misses fills: reported, not fatal at severity warn
    assert "wallet_completeness_nothing_missing" in out

    markets = warehouse.query(
        "select condition_id, market_status, winning_token_id, winning_label, is_resolved, "
        "side_a_token_id, side_b_token_id, cast(resolved_at as varchar) as resolved_at "
        "from main.dim_markets order by condition_id"
    )
    assert markets == [
        {"condition_id": M1, "market_status": "closed", "winning_token_id": A1,
         "winning_label": "Yes", "is_resolved": True, "side_a_token_id": A1,
         "side_b_token_id": B1, "resolved_at": "2025-03-01 02:30:00"},
        {"condition_id": M2, "market_status": "open", "winning_token_id": None,
         "winning_label": None, "is_resolved": False, "side_a_token_id": A2,
         "side_b_token_id": B2, "resolved_at": None},
    ]  # fmt: skip

    assert completeness(warehouse) == [
        {"wallet": W1, "audit_id": AUDITS[1]["audit_id"], "audit_source": "window_first_page",
         "api_total": 4, "warehouse_fills": 4, "missing_fills": 0, "extra_fills": 0,
         "is_complete": True, "range_end": "2025-03-01 01:00:00"},
        {"wallet": W2, "audit_id": AUDITS[2]["audit_id"], "audit_source": "limit_1_probe",
         "api_total": 3, "warehouse_fills": 1, "missing_fills": 2, "extra_fills": 0,
         "is_complete": False, "range_end": "2025-03-01 01:00:00"},
    ]  # fmt: skip


def test_completeness_test_fails_the_build_by_default(warehouse: Warehouse) -> None:
    run = warehouse.dbt_call("test", "--select", "wallet_completeness_nothing_missing")
    assert run.returncode != 0
    assert "FAIL 1 wallet_completeness_nothing_missing" in run.stdout


def test_incremental_activity_and_positions(warehouse: Warehouse) -> None:
    load(warehouse, "activity", ACTIVITY_2)
    out = warehouse.dbt_run("build", DOME_COMPLETENESS_SEVERITY="warn")
    assert "ERROR=0" in out
    compiled = (
        warehouse.workdir / "target/compiled/tap_dome/models/marts/fct_activity.sql"
    ).read_text()
    assert "occurred_date in (date '2025-03-01')" in compiled  # the incremental path ran

    activity = warehouse.query(
        "select activity_id, activity_type, shares_normalized, price, "
        "cast(batched_at as varchar) as batched_at from main.fct_activity order by activity_id"
    )
    assert activity == [
        {"activity_id": SPLIT["activity_id"], "activity_type": "SPLIT", "shares_normalized": 6.0,
         "price": 1.0, "batched_at": T2},
        {"activity_id": MERGE["activity_id"], "activity_type": "MERGE", "shares_normalized": 2.0,
         "price": 0.99, "batched_at": T2},
        {"activity_id": REDEEM["activity_id"], "activity_type": "REDEEM",
         "shares_normalized": 8.0, "price": 1.0, "batched_at": T2},
    ]  # fmt: skip

    positions = warehouse.query(
        "select wallet, token_id, outcome_label, is_resolved, is_winning_outcome, fills, "
        "activity_events, net_shares, buy_cost_usdc, sell_proceeds_usdc, redeem_proceeds_usdc, "
        "realized_pnl_usdc from main.wallet_positions order by wallet, token_id"
    )
    assert positions == [
        # A1 wins: 10 - 4 + 6 - 2 - 8 = 2 left; cost 5 + 3; proceeds 3 + 1 + 8; PnL 4 + 8 + 2 - 8
        {"wallet": W1, "token_id": A1, "outcome_label": "Yes", "is_resolved": True,
         "is_winning_outcome": True, "fills": 2, "activity_events": 3, "net_shares": 2.0,
         "buy_cost_usdc": 8.0, "sell_proceeds_usdc": 4.0, "redeem_proceeds_usdc": 8.0,
         "realized_pnl_usdc": 6.0},
        # B1 loses: 2 + 6 - 2 = 6 left, worth 0; cost 0.5 + 3, proceeds 1
        {"wallet": W1, "token_id": B1, "outcome_label": "No", "is_resolved": True,
         "is_winning_outcome": False, "fills": 1, "activity_events": 2, "net_shares": 6.0,
         "buy_cost_usdc": 3.5, "sell_proceeds_usdc": 1.0, "redeem_proceeds_usdc": 0.0,
         "realized_pnl_usdc": -2.5},
        {"wallet": W1, "token_id": A2, "outcome_label": "Yes", "is_resolved": False,
         "is_winning_outcome": None, "fills": 1, "activity_events": 0, "net_shares": 8.0,
         "buy_cost_usdc": 4.0, "sell_proceeds_usdc": 0.0, "redeem_proceeds_usdc": None,
         "realized_pnl_usdc": None},
        {"wallet": W2, "token_id": A2, "outcome_label": "Yes", "is_resolved": False,
         "is_winning_outcome": None, "fills": 1, "activity_events": 0, "net_shares": 1.0,
         "buy_cost_usdc": 0.5, "sell_proceeds_usdc": 0.0, "redeem_proceeds_usdc": None,
         "realized_pnl_usdc": None},
    ]  # fmt: skip


def test_fills_removed_from_raw_are_named_after_a_full_refresh(warehouse: Warehouse) -> None:
    removed = [FILLS[1]["order_id"], FILLS[2]["order_id"]]
    ids = ", ".join(f"'{order_id}'" for order_id in removed)
    warehouse.execute(f"delete from tap_dome.orders where order_id in ({ids})")
    warehouse.dbt_run("build", "--full-refresh", DOME_COMPLETENESS_SEVERITY="warn")
    rows = {r["wallet"]: r for r in completeness(warehouse)}
    assert (rows[W1]["warehouse_fills"], rows[W1]["missing_fills"]) == (2, 2)
    assert (rows[W2]["warehouse_fills"], rows[W2]["missing_fills"]) == (1, 2)
    failing = warehouse.query(
        "select wallet, missing_fills from main.wallet_completeness where not is_complete "
        "order by wallet"
    )
    assert failing == [{"wallet": W1, "missing_fills": 2}, {"wallet": W2, "missing_fills": 2}]


def test_a_fill_without_its_market_fails_the_relationships_test(warehouse: Warehouse) -> None:
    orphan = fill(9, W2, "0x" + "dd" * 32, "999", "BUY", 1.0, 0.5)
    load(warehouse, "orders", [orphan])
    warehouse.dbt_run("run", "--select", "fct_orders")
    run = warehouse.dbt_call("test", "--select", "fct_orders,test_name:relationships_when_loaded")
    assert run.returncode != 0
    assert "FAIL 1 relationships_when_loaded_fct_orders_condition_id" in run.stdout
