"""End to end on DuckDB: ``meltano run tap-dome target-duckdb dbt-duckdb:build`` against the
shipped simulator. Every check compares order_ids and values with the simulator's truth:
target-duckdb exits 0 on some losses, so exit codes prove nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dome_simulator import Dataset, WalletSpec
from dome_simulator.testing import small_standard
from tests.pipeline import (
    E2E_LARGE,
    MELTANO,
    ROOT,
    MakePipeline,
    Pipeline,
    bookmarks,
    content,
    group_alive,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def invoke_loader(
    pipe: Pipeline, messages: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    """Pipe Singer messages into `meltano invoke target-duckdb` in the pipeline's project.

    json.dumps as a Singer tap writes them: NaN as a bare literal, big integers in full.
    """
    return subprocess.run(
        [str(MELTANO), "invoke", "target-duckdb"],
        cwd=ROOT,
        env=pipe.env(),
        input="".join(json.dumps(m) + "\n" for m in messages),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_loader_appends_every_row(make_pipeline: MakePipeline) -> None:
    """Hand-written Singer messages through the project's target-duckdb (the wrapper): the first
    row of every batch is kept (upstream 0.8.0 drops it with duckdb >= 1.3), duplicates are kept
    (append-only, no upsert on key_properties), awkward strings survive the CSV round trip."""
    pipe = make_pipeline(Dataset.custom([0]))
    pipe.env_overrides["TARGET_DUCKDB_BATCH_SIZE_ROWS"] = "4"
    titles = ['A "quoted", title\nover two lines', "São Paulo, ünïcödé", "plain"]
    schema = {
        "type": "object",
        "properties": {
            "order_id": {"type": "string"},
            "title": {"type": ["string", "null"]},
            "timestamp": {"type": "integer"},
            "price": {"type": "number"},
        },
    }
    messages = [
        {
            "type": "SCHEMA",
            "stream": "orders",
            "schema": schema,
            "key_properties": ["order_id"],
        }
    ]
    expected = []
    for i in range(10):
        record = {
            "order_id": f"0xabc:{i % 5}",
            "title": titles[i % 3],
            "timestamp": 1_700_000_000 + i,
            "price": 0.1 + i / 1000,
        }
        expected.append(record)
        messages.append({"type": "RECORD", "stream": "orders", "record": record})
        messages.append({"type": "STATE", "value": {"bookmarks": {"orders": {"n": i}}}})
    proc = invoke_loader(pipe, messages)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"bookmarks": {"orders": {"n": 9}}}
    with pipe.connect() as con:
        rows = con.execute(
            'select order_id, title, "timestamp", price from tap_dome.orders order by "timestamp"'
        ).fetchall()
    assert [r[0] for r in rows] == [e["order_id"] for e in expected]
    assert [(r[1], int(r[2]), r[3]) for r in rows] == [
        (e["title"], e["timestamp"], e["price"]) for e in expected
    ]


def test_loader_loads_batch_files(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    """BATCH messages (the tap's batch_config files, gzip JSONL) go straight into the table by
    one INSERT each, RECORDs around them still load, and each STATE after a BATCH is emitted
    once the rows before it are committed."""
    import gzip

    pipe = make_pipeline(Dataset.custom([0]))
    schema = {
        "type": "object",
        "properties": {
            "order_id": {"type": "string"},
            "title": {"type": ["string", "null"]},
            "timestamp": {"type": "integer"},
            "price": {"type": ["number", "null"]},
            "filled_at": {"type": "string", "format": "date-time"},
        },
    }

    def row(i: int) -> dict[str, Any]:
        return {
            "order_id": f"0xb:{i}",
            "title": None if i % 4 == 0 else f'T{i}, "q"',
            "timestamp": 1_700_000_000 + i,
            "price": 0.5 + i / 100,
            "filled_at": f"2023-11-14T22:13:{i % 60:02d}Z",
        }

    files = []
    for n, (start, stop) in enumerate([(0, 30), (30, 75)]):
        path = tmp_path / f"batch-{n}.json.gz"
        with gzip.open(path, "wt") as fh:
            fh.writelines(json.dumps(row(i)) + "\n" for i in range(start, stop))
        files.append(path)

    def batch(path: Path) -> dict[str, Any]:
        encoding = {"format": "jsonl", "compression": "gzip"}
        return {
            "type": "BATCH",
            "stream": "orders",
            "encoding": encoding,
            "manifest": [path.as_uri()],
        }

    def state(n: int) -> dict[str, Any]:
        return {"type": "STATE", "value": {"bookmarks": {"orders": {"n": n}}}}

    messages = [
        {
            "type": "SCHEMA",
            "stream": "orders",
            "schema": schema,
            "key_properties": ["order_id"],
        },
        batch(files[0]),
        state(1),
        {"type": "RECORD", "stream": "orders", "record": row(100)},
        batch(files[1]),
        state(2),
    ]
    proc = invoke_loader(pipe, messages)
    assert proc.returncode == 0, proc.stderr[-4000:]
    states = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert {"bookmarks": {"orders": {"n": 1}}} in states
    assert states[-1] == {"bookmarks": {"orders": {"n": 2}}}
    assert not any(path.exists() for path in files), "a loaded BATCH file was left behind"
    with pipe.connect() as con:
        rows = con.execute(
            'select order_id, title, "timestamp", price, filled_at, _sdc_batched_at '
            'from tap_dome.orders order by "timestamp"'
        ).fetchall()
    want = [row(i) for i in [*range(75), 100]]
    assert [r[0] for r in rows] == [w["order_id"] for w in want]
    assert [(r[1], int(r[2]), r[3]) for r in rows] == [
        (w["title"], w["timestamp"], w["price"]) for w in want
    ]
    assert rows[5][4] == datetime(2023, 11, 14, 22, 13, 5)
    assert all(r[5] is not None for r in rows)


AWKWARD_STRINGS = [
    'A "quoted", title\nover two lines',
    "cr\ronly",
    "crlf\r\nend",
    "tab\there",
    "back\\slash\\",
    "\\N",
    "NULL",
    " ",
    "  padded  ",
    "São Paulo, ünïcödé",
    "台湾总统选举 2028：国民党会获胜吗？",  # noqa: RUF001 (full-width punctuation on purpose)
    "emoji 🚀🇺🇸👩‍👩‍👧",
    "single ' quote",
    '"',
    ",",
    "\n",
    '{"not": "json"}',
    "nul\x00byte",
    "\u2028\u2029",
    "x" * 5000,
]
AWKWARD_EXTRA_FIELDS: list[Any] = [
    None,
    {},
    [],
    {"fee_rate_bps": 0},
    {
        "nested": {"a": [1, 2.5, None, True, "é🚀", "q\"uo'te\n"]},
        "big": 123456789012345678901234567890,
        "f": 0.1,
    },
    [1, "two", {"three": 3}],
]


def awkward_record(i: int) -> dict[str, Any]:
    """A fill of tap-dome's schema whose every column takes awkward values as ``i`` varies."""
    s = AWKWARD_STRINGS[i % len(AWKWARD_STRINGS)]
    record: dict[str, Any] = {
        "order_id": f"0xabc:{i}",
        "wallet": "0x" + "a" * 40,
        "user": s,
        "taker": [None, "", s][i % 3],
        "side": ["BUY", "SELL", "", None][i % 4],
        "token_id": "" if i % 5 == 0 else str(10**76 + i * 7919),
        "token_label": s[::-1],
        "market_slug": s.upper(),
        "condition_id": None,
        "title": s,
        "shares": [0, 17660000, 2**63 - 1, 2**63 + 5, 2**64 + 1, 10**30, -(2**63) - 1][i % 7],
        "shares_normalized": [17.66, 1e-7, 1e16, 0.30000000000000004, 5e-324, None][i % 6],
        "price": [0.9, 0.1, 1, 0, None, 0.123456789012345678, float("nan")][i % 7],
        "tx_hash": "0x" + "b" * 64,
        "log_index": [0, 1, None, 246][i % 4],
        "block_number": 84315457 + i,
        "order_hash": s if i % 2 else None,
        "timestamp": 1_700_000_000 + i,
        "filled_at": [
            "2026-01-17T06:21:54Z",
            "2026-01-17T06:21:54.123456Z",
            "2026-01-17T06:21:54+00:00",
            "2026-01-17 06:21:54",
            "",
            None,
        ][i % 6],
        "extra_fields": AWKWARD_EXTRA_FIELDS[i % len(AWKWARD_EXTRA_FIELDS)],
        "not_in_schema": "ignored",
    }
    if i % 9 == 4:
        del record["title"]  # a missing field is NULL
    return record


def expected_cell(column: str, value: Any) -> Any:
    """What the raw table holds for ``value``: target-duckdb 0.8.0's rules, kept by the wrapper.

    "" and null are NULL; objects and arrays are ``json.dumps`` text in a JSON column; date-times
    are UTC without a zone; integers are exact (HUGEINT), numbers are the same double.
    """
    if value is None or value == "":
        return None
    if column == "extra_fields":
        return json.dumps(value)
    if column in ("filled_at", "_sdc_extracted_at"):
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    if column in ("shares_normalized", "price"):
        return float(value)
    return value


def test_loader_keeps_awkward_values_cell_by_cell(make_pipeline: MakePipeline) -> None:
    """Every cell of the raw table equals its input value, for the values a CSV or JSON round
    trip could spoil: quotes, commas, CR/LF, tabs, backslashes, NUL, unicode and emoji, null and
    empty strings, 77-digit strings, integers beyond 64 bits (top level and nested), NaN, JSON
    objects and arrays, time stamps; in several batches, with STATE only after each batch."""
    schema = json.loads((ROOT / "tap-dome/tap_dome/schemas/orders.json").read_text())
    pipe = make_pipeline(Dataset.custom([0]))
    pipe.env_overrides["TARGET_DUCKDB_BATCH_SIZE_ROWS"] = "7"
    records = [awkward_record(i) for i in range(45)]
    messages: list[dict[str, Any]] = [
        {
            "type": "SCHEMA",
            "stream": "orders",
            "schema": schema,
            "key_properties": ["order_id"],
        }
    ]
    for i, record in enumerate(records):
        message = {"type": "RECORD", "stream": "orders", "record": record}
        if i % 4:
            message["time_extracted"] = f"2026-11-28T17:48:{i:02d}.397024Z"
        messages.append(message)
        # A bookmark beyond 64 bits must come back with every digit.
        bookmark = {"n": i, "block": 2**70 + i}
        messages.append({"type": "STATE", "value": {"bookmarks": {"orders": bookmark}}})
    started = datetime.now(UTC).replace(tzinfo=None)
    proc = invoke_loader(pipe, messages)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # A batch is committed when its 7th record arrives, before that record's STATE: each STATE
    # covers only committed records, and the last one comes after the final partial batch.
    states = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert states == [
        {"bookmarks": {"orders": {"n": n, "block": 2**70 + n}}} for n in (5, 12, 19, 26, 33, 40, 44)
    ]

    with pipe.connect() as con:
        rel = con.sql('select * from tap_dome.orders order by "timestamp"')
        columns, rows = rel.columns, rel.fetchall()
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'tap_dome' and table_name = 'orders'"
            ).fetchall()
        )
    metadata = {"_sdc_extracted_at", "_sdc_batched_at", "_sdc_deleted_at"}
    assert set(columns) == set(schema["properties"]) | metadata
    assert types["token_id"] == "VARCHAR"
    assert types["shares"] == "HUGEINT"
    assert types["extra_fields"] == "JSON"
    assert types["filled_at"] == "TIMESTAMP"
    assert len(rows) == len(records)
    finished = datetime.now(UTC).replace(tzinfo=None)
    diffs = []
    for record, message, row in zip(records, messages[1::2], rows, strict=True):
        cells = dict(zip(columns, row, strict=True))
        expected = {c: expected_cell(c, record.get(c)) for c in schema["properties"]}
        expected["_sdc_extracted_at"] = expected_cell(
            "_sdc_extracted_at", message.get("time_extracted")
        )
        expected["_sdc_deleted_at"] = None
        for column, want in expected.items():
            got = cells[column]
            same = repr(got) == repr(want)  # repr: NaN equals NaN, 1 differs from 1.0
            if not same:
                diffs.append((record["order_id"], column, want, got))
        assert started <= cells["_sdc_batched_at"] <= finished, cells["_sdc_batched_at"]
    assert not diffs, f"{len(diffs)} cells differ, e.g. (order_id, column, want, got): {diffs[:5]}"


def test_first_run_equals_the_simulator(make_pipeline: MakePipeline) -> None:
    pipe = make_pipeline(small_standard(large=E2E_LARGE))
    pipe.run()

    fct = pipe.assert_exact()
    assert len(fct) > 1000
    raw = pipe.raw_ids()
    assert set(raw) == set(fct), "the raw table and fct_orders disagree on which fills exist"
    assert len(raw) >= len(fct)


def test_incremental_runs_stay_exact(make_pipeline: MakePipeline) -> None:
    pipe = make_pipeline(small_standard(large=E2E_LARGE))
    pipe.run()
    pipe.assert_exact()
    first = len(pipe.raw_ids())

    # New fills at the head, fills indexed late inside the lookback, and the standard profile's
    # `late` wallet's 20 fills that become visible after 30 minutes.
    moved = pipe.sim.advance(seconds=1800, new_fills_per_wallet=3, late_fills_per_wallet=2)
    assert moved["new_fills"]
    assert moved["late_fills"]
    assert moved["became_visible"]
    pipe.run()
    fct = pipe.assert_exact()

    raw = pipe.raw_ids()
    duplicated = [oid for oid, n in Counter(raw).items() if n > 1]
    assert duplicated, "the lookback should have re-read some fills into the raw table"
    assert len(raw) > first

    # Nothing new: the lookback re-reads again, fct_orders does not change.
    pipe.run()
    assert content(pipe.assert_exact()) == content(fct)


def test_api_two_days_behind_loses_nothing_through_dbt(make_pipeline: MakePipeline) -> None:
    """Dome's indexer two days behind the clock: the rerun's fct_orders is still exact."""
    now = int(time.time())
    dataset = Dataset.custom([900, 120, 0], seed=41, now=now, span=6 * 86_400)
    pipe = make_pipeline(dataset, frozen_now=now - 2 * 86_400)
    pipe.run()
    pipe.assert_exact()
    moved = pipe.sim.advance(seconds=600, new_fills_per_wallet=4, late_fills_per_wallet=3)
    assert moved["new_fills"]
    assert moved["late_fills"]
    pipe.run()
    pipe.assert_exact()


def test_kill_mid_extract_then_rerun(make_pipeline: MakePipeline) -> None:
    # ~150 pages at 100-150 ms each, two at a time: several seconds of extraction to kill.
    dataset = Dataset.custom([3000, 2000, 2500], seed=11)
    pipe = make_pipeline(dataset, latency=(0.10, 0.15))
    pipe.env_overrides.update(TAP_DOME_MAX_CONCURRENCY="2", TAP_DOME_MAX_WINDOW_FILLS="500")
    total = len(pipe.truth())

    proc, log = pipe.start()
    served_some = wait_for(lambda: pipe.sim.stats()["rows_served"] >= total // 3, timeout=180)
    still_running = proc.poll() is None
    served_at_kill = pipe.sim.stats()["rows_served"]
    # SIGKILL the whole group: meltano, the tap and the target. They die asynchronously: wait
    # until the group is gone (the target holds the DuckDB file's lock until then).
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert wait_for(lambda: not group_alive(proc.pid), timeout=30), "the group survived"
    assert served_some, f"no middle to kill in:\n{log.read_text()[-4000:]}"
    assert still_running, f"the run ended before the kill:\n{log.read_text()[-4000:]}"
    assert served_at_kill < total, "the extract had already finished when it was killed"

    loaded = set(pipe.raw_ids())
    assert len(loaded) < total, "everything was loaded before the kill"
    saved = {w: v for w, v in bookmarks(pipe.state()).items() if v is not None}
    assert saved, "no bookmark was saved before the kill (nothing to resume from)"

    # Meltano refuses a second run of the same state id for a while after a kill: --force.
    pipe.sim.reset_stats()
    pipe.run("--force")
    pipe.assert_exact()
    assert set(pipe.raw_ids()) >= loaded
    # It resumed from the saved bookmarks rather than reading everything again.
    assert pipe.sim.stats()["rows_served"] < total, pipe.sim.stats()


def test_added_wallet_is_backfilled_alone(make_pipeline: MakePipeline) -> None:
    specs = [WalletSpec(400, "a"), WalletSpec(300, "b"), WalletSpec(450, "c")]
    dataset = Dataset(specs, seed=5)
    old, new = dataset.wallets[:2], dataset.wallets[2]
    pipe = make_pipeline(dataset, wallets=old)
    pipe.run()
    pipe.assert_exact()
    assert set(bookmarks(pipe.state())) == set(old)

    pipe.wallets = [*old, new]
    pipe.sim.reset_stats()
    pipe.run()
    fct = pipe.assert_exact()

    requests = pipe.sim.stats()["requests_by_wallet"]
    backfill_pages = -(-450 // 50)
    assert requests.get(new, 0) >= backfill_pages, requests
    # Old wallets: only the lookback before each bookmark, a page of orders and one of
    # activity, and at most one audit probe (audit_wallets_per_run).
    for wallet in old:
        assert 0 < requests.get(wallet, 0) <= 3, requests

    marks = bookmarks(pipe.state())
    assert set(marks) == {*old, new}
    assert all(isinstance(v, int) and v > 0 for v in marks.values()), marks

    # --full-refresh ignores the bookmarks and re-reads everything: the same table.
    pipe.sim.reset_stats()
    pipe.run("--full-refresh")
    assert content(pipe.assert_exact()) == content(fct)
    assert pipe.sim.stats()["requests_by_wallet"].get(old[0], 0) >= -(-400 // 50)

    # dbt's own --full-refresh rebuilds fct_orders from the raw table (duplicates and all).
    proc = pipe.meltano("invoke", "dbt-duckdb", "build", "--full-refresh")
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert content(pipe.assert_exact()) == content(fct)


def _completeness(pipe: Pipeline) -> dict[str, tuple[int, int, int]]:
    """wallet -> (api_total, missing_fills, extra_fills) from wallet_completeness."""
    with pipe.connect() as con:
        schema = pipe.fct_schema(con)
        columns = "wallet, api_total, missing_fills, extra_fills"
        rows = con.execute(f'select {columns} from "{schema}".wallet_completeness').fetchall()
    return {str(w): (int(t), int(m), int(e)) for w, t, m, e in rows}


def test_completeness_audit_through_the_whole_job(make_pipeline: MakePipeline) -> None:
    """Every stream through Meltano and dbt: exact, audited complete, then loss named."""
    dataset = Dataset.custom(
        [WalletSpec(600, activity=12), WalletSpec(250, activity=4), 40, 0], seed=61
    )
    pipe = make_pipeline(dataset)
    pipe.run()
    pipe.assert_exact()
    audit = _completeness(pipe)
    assert set(audit) == set(pipe.wallets)
    assert all(missing == 0 for _, missing, _ in audit.values()), audit
    with pipe.connect() as con:
        schema = pipe.fct_schema(con)
        markets = {
            r[0] for r in con.execute(f'select condition_id from "{schema}".dim_markets').fetchall()
        }
        activity = {
            r[0] for r in con.execute(f'select activity_id from "{schema}".fct_activity').fetchall()
        }
    assert {f["condition_id"] for f in pipe.sim.truth()} <= markets
    assert activity == {a["activity_id"] for a in pipe.sim.activity_truth()}

    # Late fills and new ones: still complete after the next run.
    moved = pipe.sim.advance(seconds=300, new_fills_per_wallet=3, late_fills_per_wallet=2)
    assert moved["late_fills"]
    pipe.run()
    pipe.assert_exact()
    assert all(missing == 0 for _, missing, _ in _completeness(pipe).values())

    # Fills lost from the raw table: a full refresh names exactly those wallets and counts.
    first, second = pipe.wallets[0], pipe.wallets[1]
    with duckdb.connect(str(pipe.duckdb_path)) as con:
        for wallet, count in ((first, 5), (second, 2)):
            con.execute(
                "delete from tap_dome.orders where order_id in (select distinct order_id "
                "from tap_dome.orders where wallet = ? order by order_id limit ?)",
                [wallet, count],
            )
    built = pipe.meltano("invoke", "dbt-duckdb", "build", "--full-refresh")
    assert built.returncode != 0, "the completeness test must fail the build"
    assert "wallet_completeness_nothing_missing" in built.stdout
    lost = {w: m for w, (_, m, _) in _completeness(pipe).items() if m}
    assert lost == {first: 5, second: 2}


def test_meltano_shows_the_tap_s_warnings_and_errors_at_their_level(
    make_pipeline: MakePipeline,
) -> None:
    # The extractor declares `structured-logging`: the tap logs JSON lines and Meltano shows
    # each at its own level. Before, every line of the tap was [info], its ERROR included,
    # and only Meltano's own "Extractor failed" said that something went wrong.
    pipe = make_pipeline(Dataset.custom([20], seed=3))
    pipe.sim.set_faults(fail_next={"500_json": 100})
    pipe.env_overrides.update(TAP_DOME_MAX_RETRIES="1")
    proc = pipe.meltano("run", "tap-dome", "target-duckdb")
    assert proc.returncode != 0
    lines = proc.stdout.splitlines()
    tap = [line for line in lines if "] tap-dome " in line]
    retried = [line for line in tap if "Retrying in" in line]
    failed = [line for line in tap if "Dome API request failed 2 times in a row" in line]
    shown = "\n".join(tap)
    assert retried, shown
    assert all("[warning" in line for line in retried), shown
    assert len(failed) == 1, shown
    assert "[error" in failed[0], shown
    assert all("Traceback" not in line for line in lines)
    # The tap's progress lines are shown as they were written, at their level.
    assert any("[info" in line and "orders done: wallets 0/1" in line for line in tap)
