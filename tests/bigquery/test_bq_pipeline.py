"""End to end on BigQuery (emulated): ``meltano --environment=bqtest run tap-dome target-bigquery
dbt-bigquery:build`` against the shipped simulator, bqemulator and the GCS emulator.

Every check compares order_ids, values and columns: the loader can exit 0 on some failures.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from typing import Any

import pytest

from dome_simulator import Dataset
from dome_simulator.testing import small_standard
from tests.bigquery.bq_pipeline import BQ_STATE_ID, BUCKET, BqPipeline, norm
from tests.pipeline import E2E_LARGE, LOAD_COLUMNS, bookmarks, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_two_runs_with_new_duplicate_and_late_fills_stay_exact(
    make_bq_pipeline: Any,
) -> None:
    pipe: BqPipeline = make_bq_pipeline(small_standard(large=E2E_LARGE))
    # As in prod: Meltano's state in GCS (the gs:// backend, here on the GCS emulator).
    state_prefix = f"meltano-state/{pipe.raw_dataset}"
    pipe.env_overrides["MELTANO_STATE_BACKEND_URI"] = f"gs://{BUCKET}/{state_prefix}"
    first = pipe.run()
    fct = pipe.assert_exact()
    assert len(fct) > 1000
    assert pipe.bq.list_objects(BUCKET, state_prefix), "no state object in the gs:// backend"
    assert set(bookmarks(pipe.state())) == set(pipe.wallets)

    # The raw table: one typed column per field of the stream, the loader's metadata, the same
    # fills as fct_orders (append-only, so possibly more rows).
    columns = pipe.raw_columns()
    assert {
        "order_id": "STRING",
        "timestamp": "INTEGER",
        "filled_at": "TIMESTAMP",
    }.items() <= (columns.items())
    assert {
        "wallet",
        "shares",
        "price",
        "tx_hash",
        "log_index",
        "_sdc_batched_at",
    } <= set(columns)
    raw = pipe.raw_ids()
    assert set(raw) == set(fct)
    # Staged as files in the bucket (several: the tap's batch files hold 500 fills), loaded
    # by load jobs, and each staged file deleted once its rows were loaded. How many load jobs
    # depends on how uploads overlap (one job may take every file uploaded by then); that
    # loads run while the input is still read is test_bq_target's to check, message by message.
    staged = f"gs://{BUCKET}/target_bigquery/{pipe.raw_dataset}/orders/"
    loads = re.findall(
        r"Load job \S+: (\d+) file\(s\) from (\S+), (\d+) rows into \S+\.orders",
        first.stdout,
    )
    assert loads, first.stdout[-3000:]
    assert sum(int(files) for files, _, _ in loads) >= 2, loads
    assert sum(int(rows) for _, _, rows in loads) == len(raw), loads
    assert all(folder.startswith(staged) for _, folder, _ in loads), loads
    assert pipe.staged_files() == []

    # The first build creates fct_orders partitioned by fill day and clustered (the emulator
    # accepts and drops both, so they are checked in the DDL dbt sent).
    ddl = pipe.dbt_sql("run")
    assert re.search(r"partition by\s+filled_date", ddl, re.IGNORECASE), ddl[:3000]
    assert re.search(r"cluster by\s+wallet,\s*condition_id", ddl, re.IGNORECASE), ddl[:3000]

    moved = pipe.sim.advance(seconds=1800, new_fills_per_wallet=3, late_fills_per_wallet=2)
    assert moved["new_fills"]
    assert moved["late_fills"]
    pipe.sim.reset_stats()
    pipe.run()
    # Resumed from the bookmarks in GCS: only the lookback and the new fills were read.
    assert pipe.sim.stats()["rows_served"] < len(fct) / 2
    fct2 = pipe.assert_exact()
    assert len(fct2) > len(fct)
    raw2 = pipe.raw_ids()
    assert [oid for oid, n in Counter(raw2).items() if n > 1], "no re-read (lookback) duplicates"
    assert len(raw2) > len(raw)

    # The incremental run replaced only the day partitions the new rows touch: insert_overwrite
    # driven by literal day lists, so neither fct_orders nor the raw table is scanned whole.
    run_sql = pipe.dbt_sql("run")
    assert "dbt_partitions_for_replacement" in run_sql, run_sql[:3000]
    assert re.search(r"when not matched by source\s+and", run_sql, re.IGNORECASE), run_sql[:3000]
    compiled = pipe.dbt_sql("compiled")
    this = f"`{pipe.bq.project}`.`{pipe.dbt_dataset}`.`fct_orders`"
    reads_of_this = [m.end() for m in re.finditer(re.escape(this), compiled)]
    assert reads_of_this, compiled
    for end in reads_of_this:
        tail = compiled[end : end + 300]
        assert re.match(
            r"\s*where\s+filled_date\s+in\s+\(\s*date\s+'\d{4}-\d\d-\d\d'",
            tail,
            re.IGNORECASE,
        ), f"fct_orders read without a literal partition filter:\n{compiled}"
    assert re.search(r"batched_at\s*>=\s*cast\('\d{4}-\d\d-\d\d", compiled), compiled


def test_kill_after_state_before_load_end_then_rerun_is_exact(
    make_bq_pipeline: Any,
) -> None:
    """SIGKILL the whole ``meltano run`` after the target emitted STATE (and Meltano stored it)
    and before the run finished; at that moment every fill the stored bookmarks cover must
    already be in BigQuery; the rerun resumes and the tables end exact."""
    dataset = Dataset.custom([400, 1500, 2500, 3000], seed=13)
    pipe: BqPipeline = make_bq_pipeline(dataset, latency=(0.05, 0.08))
    pipe.env_overrides.update(
        TAP_DOME_MAX_CONCURRENCY="1",
        TAP_DOME_MAX_WINDOW_FILLS="500",
        TARGET_BIGQUERY_BATCH_SIZE="150",
    )
    truth = pipe.truth()
    proc, log = pipe.start()

    # Kill once a bookmark is stored AND the tap is well into later wallets (so batches after
    # the last STATE are in flight: read, staged or uploaded, not loaded).
    got_state = wait_for(
        lambda: stored_bookmarks(pipe) and pipe.sim.stats()["rows_served"] >= 0.4 * len(truth),
        timeout=240,
        interval=0.1,
    )
    text = log.read_text()
    running = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)  # meltano, tap, target: the whole group
    proc.wait(timeout=30)
    assert got_state, f"no STATE stored mid-run to kill after:\n{text[-5000:]}"
    assert running, f"the run ended before the kill:\n{text[-5000:]}"
    assert "Emitting completed target state" in log.read_text()

    state = pipe.state()
    marks = bookmarks(state)
    assert marks, f"no bookmark stored: {state}"
    raw = set(pipe.raw_ids())
    assert len(raw) < len(truth), "everything was loaded before the kill: nothing was tested"
    covered = sum(1 for row in truth.values() if marks.get(row["wallet"]) is not None)
    assert covered, f"no fill is covered by a bookmark: {marks}"
    behind = [
        oid
        for oid, row in truth.items()
        if row["wallet"] in marks
        and marks[row["wallet"]] is not None
        and int(row["timestamp"]) <= int(str(marks[row["wallet"]]))
        and oid not in raw
    ]
    assert not behind, (
        f"{len(behind)} fills behind a stored bookmark are not in BigQuery (e.g. {behind[:3]}); "
        f"bookmarks {marks}"
    )

    # Meltano refuses a second run of the state id for a while after a kill: --force.
    pipe.sim.reset_stats()
    pipe.run("--force")
    pipe.assert_exact()
    assert set(pipe.raw_ids()) >= raw
    # The rerun resumed: it did not read every fill again.
    assert pipe.sim.stats()["rows_served"] < 2 * len(truth)


def stored_bookmarks(pipe: BqPipeline) -> bool:
    """Whether Meltano stored a STATE with a bookmark (read from its database, no Meltano)."""
    rows = pipe.stored_state_rows()
    return any(
        "replication_key_value" in str(r.get(column) or "")
        for r in rows
        for column in ("partial_state", "completed_state")
    )


@pytest.mark.parametrize(
    ("step", "what"),
    [
        ("before_upload", "upload"),
        ("before_load", "load"),
        ("in_load", "load"),
        ("after_load", "load"),
    ],
)
def test_kill_at_a_load_then_rerun_is_exact(make_bq_pipeline: Any, step: str, what: str) -> None:
    """SIGKILL the whole ``meltano run`` while the loader holds its uploads or load jobs, from
    the first STATE stored on, at one step (target_bigquery_dome/testpause.py): a file staged
    locally and not uploaded
    (``before_upload``); uploaded, its load job not started (``before_load``); the load job
    accepted by BigQuery, its result not seen (``in_load``; bqemulator runs a load within its
    insert call, so there the job is done: a real BigQuery job may finish or not, which
    ``after_load`` and ``before_load`` cover); the load done, the STATE after it not written
    (``after_load``). Nothing a stored bookmark covers is missing from BigQuery then, and the
    forced rerun ends with fct_orders exact."""
    dataset = Dataset.custom([400, 1500, 2500, 3000], seed=17)
    pipe: BqPipeline = make_bq_pipeline(dataset, latency=(0.02, 0.04))
    trigger = pipe.workdir / "hold-now"
    pipe.env_overrides.update(
        TAP_DOME_MAX_CONCURRENCY="1",
        TAP_DOME_MAX_WINDOW_FILLS="500",
        TARGET_BIGQUERY_DOME_TEST_PAUSE=f"{step}=120@{trigger}",
    )
    truth = pipe.truth()
    proc, log = pipe.start()
    # Loads start while the tap reads (every 200 rows here): hold the next ones once a STATE
    # is stored, so the kill lands with bookmarks stored and rows still unloaded.
    stored = wait_for(lambda: stored_bookmarks(pipe), timeout=240, interval=0.1)
    trigger.touch()
    paused = stored and wait_for(
        lambda: f"test pause {step} of {what}" in log.read_text(), timeout=240, interval=0.1
    )
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert paused, f"the loader never reached {step}:\n{log.read_text()[-5000:]}"

    marks = bookmarks(pipe.state())
    assert marks, "no STATE was stored before the held load"
    raw = set(pipe.raw_ids())
    behind = [
        oid
        for oid, row in truth.items()
        if marks.get(row["wallet"]) is not None
        and int(row["timestamp"]) <= int(str(marks[row["wallet"]]))
        and oid not in raw
    ]
    assert not behind, f"{len(behind)} fills behind a stored bookmark are not in BigQuery"
    assert len(raw) < len(truth), "everything was loaded before the kill: nothing was tested"

    pipe.env_overrides.pop("TARGET_BIGQUERY_DOME_TEST_PAUSE")
    pipe.run("--force")
    fct = pipe.assert_exact()
    assert set(fct) == set(truth)


def _content(fct: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        oid: {k: norm(v) for k, v in row.items() if k not in LOAD_COLUMNS}
        for oid, row in fct.items()
    }


def test_duckdb_and_bigquery_give_the_same_fct_orders(
    make_bq_pipeline: Any, make_pipeline: Any
) -> None:
    dataset = Dataset.standard(seed=7, page=50, large=300)
    bq_pipe: BqPipeline = make_bq_pipeline(dataset)
    duck_pipe = make_pipeline(Dataset.standard(seed=7, page=50, large=300))
    assert bq_pipe.truth() == duck_pipe.truth(), "the two simulators serve different data"

    # The production runbook on a new bucket: preflight says it is missing, create-bucket
    # makes it (in the location), preflight passes, the pipeline runs.
    bucket = f"tap-dome-new-{os.getpid()}"
    # No key file anywhere: the loader and dbt (method oauth) both use application default
    # credentials from the metadata server, as on a VM or under GKE workload identity.
    bq_pipe.env_overrides.update(
        bq_pipe.bq.workload_identity_env(),
        TARGET_BIGQUERY_BUCKET=bucket,
        TARGET_BIGQUERY_CREDENTIALS_PATH="",
    )
    missing = bq_pipe.meltano("invoke", "target-bigquery:preflight", timeout=120)
    assert missing.returncode != 0, missing.stdout[-3000:]
    assert "TARGET_BIGQUERY_BUCKET" in missing.stdout, missing.stdout[-3000:]
    created = bq_pipe.meltano("invoke", "target-bigquery:create-bucket", timeout=120)
    assert created.returncode == 0, created.stdout[-3000:]
    assert f"created bucket gs://{bucket}" in created.stdout, created.stdout[-3000:]
    ok = bq_pipe.meltano("invoke", "target-bigquery:preflight", timeout=120)
    assert ok.returncode == 0, ok.stdout[-3000:]
    assert "preflight ok" in ok.stdout, ok.stdout[-3000:]
    assert "credentials application default credentials" in ok.stdout, ok.stdout[-3000:]

    tokens = bq_pipe.bq.metadata_tokens()
    bq_pipe.run()
    # Files went through the new bucket; each was deleted once loaded.
    assert bq_pipe.bq.list_objects(bucket, "target_bigquery/") == []
    # The metadata server was the only source of credentials, and dbt (method oauth) took its
    # own token: the loader takes two (its preflight's clients and the load's).
    assert bq_pipe.bq.metadata_tokens() >= tokens + 3, bq_pipe.bq.metadata_tokens() - tokens
    duck_pipe.run()
    bq_fct, duck_fct = (
        _content(bq_pipe.assert_exact()),
        _content(duck_pipe.assert_exact()),
    )
    assert set(bq_fct) == set(duck_fct)
    assert set(next(iter(bq_fct.values()))) == set(next(iter(duck_fct.values()))), "columns differ"
    diffs = [
        (oid, col, duck_fct[oid][col], bq_fct[oid][col])
        for oid in duck_fct
        for col in duck_fct[oid]
        if duck_fct[oid][col] != bq_fct[oid][col]
    ]
    assert not diffs, (
        f"{len(diffs)} values differ, e.g. (order_id, column, duckdb, bigquery): {diffs[:5]}"
    )
    # The completeness audit holds on both warehouses, with the same counts.
    columns = "wallet, api_total, warehouse_fills, missing_fills"
    table = f"`{bq_pipe.bq.project}.{bq_pipe.dbt_dataset}.wallet_completeness`"
    bq_audit = {
        r["wallet"]: (int(r["api_total"]), int(r["warehouse_fills"]), int(r["missing_fills"]))
        for r in bq_pipe.bq.query(f"select {columns} from {table}")
    }
    with duck_pipe.connect() as con:
        schema = duck_pipe.fct_schema(con)
        duck_audit = {
            str(w): (int(t), int(h), int(m))
            for w, t, h, m in con.execute(
                f'select {columns} from "{schema}".wallet_completeness'
            ).fetchall()
        }
    assert bq_audit == duck_audit
    assert set(bq_audit) == set(bq_pipe.wallets)
    assert all(missing == 0 for _, _, missing in bq_audit.values()), bq_audit


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        (
            {"TARGET_BIGQUERY_BUCKET": "tap-dome-no-such-bucket"},
            "TARGET_BIGQUERY_BUCKET",
        ),
        ({"TARGET_BIGQUERY_LOCATION": "EU"}, "TARGET_BIGQUERY_LOCATION"),
        (
            {"TARGET_BIGQUERY_CREDENTIALS_PATH": "GARBAGE"},
            "TARGET_BIGQUERY_CREDENTIALS_PATH",
        ),
    ],
    ids=["missing-bucket", "wrong-location", "bad-credentials-file"],
)
def test_bad_config_fails_clearly_and_saves_no_state(
    make_bq_pipeline: Any, env: dict[str, str], setting: str
) -> None:
    pipe: BqPipeline = make_bq_pipeline(Dataset.custom([300, 200], seed=3))
    if env.get("TARGET_BIGQUERY_CREDENTIALS_PATH") == "GARBAGE":
        bad = pipe.workdir / "key.json"
        bad.write_text('{"type": "service_account", "private_key": "not a key"')
        env = {"TARGET_BIGQUERY_CREDENTIALS_PATH": str(bad)}
    pipe.env_overrides.update(env)

    started = time.monotonic()
    proc = pipe.run_fails()
    assert setting in proc.stdout, proc.stdout[-4000:]
    assert "configuration error" in proc.stdout, proc.stdout[-4000:]
    assert time.monotonic() - started < 120

    # No state: neither in Meltano's table nor through `meltano state get`.
    assert not any(
        r.get("partial_state") or r.get("completed_state") for r in pipe.stored_state_rows()
    )
    got = pipe.meltano("state", "get", BQ_STATE_ID, timeout=120)
    assert "replication_key_value" not in got.stdout, got.stdout[-3000:]
    assert not pipe.bq.table_exists(pipe.raw_dataset, "orders")

    # The preflight command says the same before any run.
    check = pipe.meltano("invoke", "target-bigquery:preflight", timeout=120)
    assert check.returncode != 0, check.stdout[-3000:]
    assert setting in check.stdout, check.stdout[-3000:]
