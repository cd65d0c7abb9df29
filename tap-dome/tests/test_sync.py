"""The tap against the simulator: every fill exactly, through every API quirk and fault."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dome_simulator import API_FIELDS, Dataset
from dome_simulator.testing import small_standard
from tap_dome.records import order_id
from tap_harness import API_KEY, TAP, bookmarks, run_tap, tap_config, tap_env, truth_ids

PAGE = 50


def assert_exact(records: list[dict[str, Any]], truth: list[dict[str, Any]]) -> None:
    """Every fill once, with the API's values (a single fresh run reads no overlap)."""
    ids = [r["order_id"] for r in records]
    assert len(ids) == len(set(ids)), "a fill was emitted twice in one run"
    by_id = {r["order_id"]: r for r in records}
    assert set(by_id) == {t["order_id"] for t in truth}
    for expected in truth:
        got = by_id[expected["order_id"]]
        for name in API_FIELDS:
            if name in expected:
                assert got.get(name) == expected[name], (name, expected["order_id"])


def test_full_sync_is_exact_for_every_edge_case(tmp_path: Path, simulator_factory: Any) -> None:
    sim = simulator_factory(small_standard(11, page=PAGE, large=3000))
    run = run_tap(tmp_path, tap_config(sim, page_size=PAGE, max_window_fills=400))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_exact(run.records, sim.truth())
    # Partial fills of one order across transactions, and several fills per transaction,
    # survive as distinct rows.
    by_order: dict[str, set[str]] = {}
    by_tx: dict[str, int] = {}
    for record in run.records:
        by_order.setdefault(record["order_hash"], set()).add(record["tx_hash"])
        by_tx[record["tx_hash"]] = by_tx.get(record["tx_hash"], 0) + 1
    assert any(len(txs) > 1 for txs in by_order.values())
    assert any(count > 1 for count in by_tx.values())
    # Records carry the partition wallet and a UTC date-time.
    assert all(r["wallet"] == r["user"] for r in run.records)
    assert all(r["filled_at"].endswith("Z") for r in run.records)
    # Unknown API fields are kept.
    assert any("fee_rate_bps" in (r.get("extra_fields") or {}) for r in run.records)
    # Bookmarks follow the API's data, never the local clock: each wallet's covers its own
    # newest fill and none is past the newest fill the API served (its data clock).
    final = bookmarks(run.last_state or {})
    newest: dict[str, int] = {}
    for record in run.records:
        newest[record["wallet"]] = max(newest.get(record["wallet"], 0), record["timestamp"])
    data_clock = max(r["timestamp"] for r in run.records)
    for wallet in sim.wallets:
        mark = final.get(wallet)
        if wallet in newest:
            assert mark is not None
            assert newest[wallet] <= mark <= data_clock
        else:  # no fill of its own: moves only once the run has seen some fill
            assert mark is None or mark <= data_clock


def test_offset_fallback_and_old_api_without_log_index(
    tmp_path: Path, simulator_factory: Any
) -> None:
    sim = simulator_factory(small_standard(11, page=PAGE, large=3000))
    sim.set_faults(no_pagination_key=True, no_log_index=True, omit_total=True)
    run = run_tap(tmp_path, tap_config(sim, page_size=PAGE, max_window_fills=400))
    assert run.returncode == 0, run.stderr[-3000:]
    truth = sim.truth()
    # Without log_index the documented fallback identity is used, by the tap and by the
    # simulator's truth alike; compare on the served fields as well.
    served = {(t["tx_hash"], t["order_hash"], t["shares"], t["price"]) for t in truth}
    got = {(r["tx_hash"], r["order_hash"], r["shares"], r["price"]) for r in run.records}
    assert got == served
    assert all(":h" in r["order_id"] for r in run.records)
    assert all(r["order_id"] == order_id(dict(r, log_index=None)) for r in run.records)
    assert len(run.records) == len(truth)


@pytest.mark.parametrize(
    "fault", ["omit_has_more", "null_empty_rows", "empty_pages", "unknown_wallet_404"]
)
def test_every_fill_through_other_shapes_of_the_contract(
    tmp_path: Path, simulator_factory: Any, fault: str
) -> None:
    # What another server may answer within the API's contract: no `has_more` (the key
    # says more), an empty list as null, an empty page with has_more and a new key before
    # each page, a 404 "No wallet mapping" for a wallet it has nothing of.
    sim = simulator_factory(small_standard(11, page=PAGE, large=3000))
    sim.set_faults(**{fault: True})
    unknown = "0x" + "ab" * 20
    config = tap_config(sim, page_size=PAGE, max_window_fills=400)
    config["wallets"] = [*sim.wallets, unknown]
    run = run_tap(tmp_path, config)
    assert run.returncode == 0, run.stderr[-3000:]
    assert_exact(run.records, sim.truth())
    if fault == "unknown_wallet_404":
        assert f"Dome API knows no wallet {unknown}" in run.stderr
        assert "Traceback" not in run.stderr


def test_ascending_order_does_not_matter(tmp_path: Path, simulator_factory: Any) -> None:
    sim = simulator_factory(small_standard(11, page=PAGE, large=3000))
    sim.set_faults(sort="asc")
    run = run_tap(tmp_path, tap_config(sim, page_size=PAGE, max_window_fills=400))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_exact(run.records, sim.truth())


@pytest.mark.parametrize(
    "kind", ["500_json", "502_html", "503", "truncated", "invalid_json", "drop", "429"]
)
def test_transient_faults_are_retried_without_loss(
    tmp_path: Path, simulator_factory: Any, kind: str
) -> None:
    sim = simulator_factory(Dataset.custom([120, 75, 0, 1], seed=3))
    sim.set_faults(fail_every={kind: 3})
    run = run_tap(tmp_path, tap_config(sim, page_size=PAGE))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_exact(run.records, sim.truth())
    assert "Retrying" in run.stderr


def test_timeouts_are_retried(tmp_path: Path, simulator_factory: Any) -> None:
    sim = simulator_factory(Dataset.custom([120], seed=3))
    sim.set_faults(fail_next={"timeout": 2}, timeout_sleep=3)
    run = run_tap(tmp_path, tap_config(sim, page_size=PAGE, request_timeout=1))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_exact(run.records, sim.truth())


def test_rate_limit_429_honours_retry_after(tmp_path: Path, simulator_factory: Any) -> None:
    sim = simulator_factory(Dataset.custom([400, 300], seed=5))
    sim.set_faults(rate_limit=(5, 1000), retry_after=1)
    run = run_tap(tmp_path, tap_config(sim, page_size=PAGE, max_concurrency=6))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_exact(run.records, sim.truth())
    assert sim.stats()["by_status"].get("429", sim.stats()["by_status"].get(429, 0)) > 0
    # The tap's budget (the free tier's 10/s) is above the server's: each clash widens the
    # limiter's margin (once per window), and the warning says what may be wrong.
    assert "limiter's margin on its shortest window is 0.22s" in run.stderr
    assert "`api_tier`" in run.stderr


def test_bad_key_fails_at_once_naming_the_setting_never_the_key(
    tmp_path: Path, simulator_factory: Any
) -> None:
    sim = simulator_factory(Dataset.custom([10], seed=1))
    secret = "wrong-key-that-must-not-leak-42"
    run = run_tap(tmp_path, tap_config(sim, api_key=secret))
    assert run.returncode != 0
    assert "api_key" in run.stderr
    assert secret not in run.stdout + run.stderr
    assert sim.stats()["requests"] <= 4  # no retry storm on a wrong key


def test_key_never_appears_in_output_or_state(tmp_path: Path, simulator_factory: Any) -> None:
    sim = simulator_factory(Dataset.custom([60, 5], seed=2))
    sim.set_faults(fail_next={"500_json": 2})
    run = run_tap(tmp_path, tap_config(sim, page_size=PAGE))
    assert run.returncode == 0
    assert API_KEY not in run.stdout
    assert API_KEY not in run.stderr
    assert "progress:" in run.stderr or "done:" in run.stderr


def test_invalid_wallets_are_all_named_and_no_request_is_made(
    tmp_path: Path, simulator_factory: Any
) -> None:
    sim = simulator_factory(Dataset.custom([10], seed=1))
    listing = tmp_path / "wallets.txt"
    listing.write_text("# list\n0x12345\n" + sim.wallets[0] + "\nnope\n")
    config = tap_config(sim, wallets=["0xZZ"], wallets_file=str(listing))
    run = run_tap(tmp_path, config)
    assert run.returncode != 0
    for named in ("0x12345", "nope", "0xZZ", "wallets.txt:2", "wallets.txt:4"):
        assert named in run.stderr
    assert sim.stats()["requests"] == 0


def test_other_4xx_stops_with_the_api_message(tmp_path: Path, simulator_factory: Any) -> None:
    sim = simulator_factory(Dataset.custom([300], seed=1))
    sim.set_faults(no_pagination_key=True, offset_limit=100)
    # One request at a time: no free slot to read the chain's rest as slices, whose
    # offsets would stay under the limit.
    run = run_tap(tmp_path, tap_config(sim, page_size=PAGE, max_concurrency=1))
    assert run.returncode != 0
    assert "HTTP 401" in run.stderr
    assert "offset" in run.stderr.lower()
    assert "user=" + sim.wallets[0] in run.stderr


def test_incremental_run_reads_only_lookback_and_catches_late_fills(
    tmp_path: Path, simulator_factory: Any
) -> None:
    sim = simulator_factory(Dataset.custom([400, 250, 3], seed=9, span=10 * 86400))
    config = tap_config(sim, page_size=PAGE, lookback=3600)
    first = run_tap(tmp_path / "1", config)
    assert first.returncode == 0, first.stderr[-3000:]
    assert set(first.ids) == truth_ids(sim)
    sim.advance(seconds=60, new_fills_per_wallet=4, late_fills_per_wallet=3)
    sim.reset_stats()
    second = run_tap(tmp_path / "2", config, state=first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    assert set(first.ids) | set(second.ids) == truth_ids(sim)
    # Only the last hour was re-read: each wallet's whole history fits one page there.
    assert sim.stats()["requests"] <= len(sim.wallets) * 2
    assert len(second.ids) < len(first.ids) / 2


def test_added_wallet_is_backfilled_alone(tmp_path: Path, simulator_factory: Any) -> None:
    sim = simulator_factory(Dataset.custom([300, 200, 500], seed=4, span=20 * 86400))
    old, new = sim.wallets[:2], sim.wallets[2]
    first = run_tap(tmp_path / "1", tap_config(sim, wallets=old, page_size=PAGE, lookback=600))
    assert first.returncode == 0, first.stderr[-3000:]
    sim.reset_stats()
    config = tap_config(sim, wallets=[*old, new], page_size=PAGE, lookback=600)
    second = run_tap(tmp_path / "2", config, state=first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    assert {r["order_id"] for r in second.records if r["wallet"] == new} == truth_ids(sim, new)
    assert set(first.ids) | set(second.ids) == truth_ids(sim)
    per_wallet = sim.stats()["requests_by_wallet"]
    assert all(per_wallet.get(w, 0) <= 1 for w in old)
    assert per_wallet[new] >= 500 // PAGE
    assert set(bookmarks(second.last_state or {})) == set(sim.wallets)


def test_state_is_written_per_window_and_never_runs_ahead(
    tmp_path: Path, simulator_factory: Any
) -> None:
    sim = simulator_factory(Dataset.custom([3000], seed=8, span=100 * 86400))
    wallet = sim.wallets[0]
    run = run_tap(tmp_path, tap_config(sim, page_size=PAGE, max_window_fills=300))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_exact(run.records, sim.truth())
    # Walk the output: at each STATE, every fill at or before the bookmark was emitted.
    truth_ts = sorted(fill["timestamp"] for fill in sim.truth())
    emitted = 0
    seen_marks = []
    for message in run.messages:
        if message["type"] == "RECORD":
            emitted += 1
        elif message["type"] == "STATE":
            mark = bookmarks(message["value"]).get(wallet)
            if mark is None:
                continue
            seen_marks.append(mark)
            covered = sum(1 for ts in truth_ts if ts <= mark)
            assert covered <= emitted
    assert len(set(seen_marks)) >= 5, "the bookmark should advance window by window"
    assert seen_marks == sorted(seen_marks)


def test_deselected_fields_are_dropped(tmp_path: Path, simulator_factory: Any) -> None:
    """Guards the fast path that skips the SDK's per-record selection walk."""
    sim = simulator_factory(Dataset.custom([60], seed=6))
    config = tap_config(sim, page_size=PAGE)
    (tmp_path / "config.json").write_text(json.dumps(config))
    discovered = subprocess.run(
        [*TAP, "--config", str(tmp_path / "config.json"), "--discover"],
        capture_output=True,
        text=True,
        check=True,
        env=tap_env(),
    )
    catalog = json.loads(discovered.stdout)
    for entry in catalog["streams"][0]["metadata"]:
        if entry["breadcrumb"] == ["properties", "title"]:
            entry["metadata"]["selected"] = False
        if entry["breadcrumb"] == []:
            entry["metadata"]["selected"] = True
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    done = subprocess.run(
        [
            *TAP,
            "--config",
            str(tmp_path / "config.json"),
            "--catalog",
            str(tmp_path / "catalog.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=tap_env(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = [
        json.loads(line)["record"]
        for line in done.stdout.splitlines()
        if '"RECORD"' in line and '"stream":"orders"' in line
    ]
    assert {r["order_id"] for r in records} == truth_ids(sim)
    assert all("title" not in r for r in records)
    assert all("market_slug" in r for r in records)


def test_windows_smaller_than_a_burst_second_still_read_every_fill(
    tmp_path: Path, simulator_factory: Any
) -> None:
    # The burst wallet has more than a page of fills in one second: no window can be cut
    # below two seconds, so that window is walked whole, page by page, by cursor.
    sim = simulator_factory(small_standard(11, page=PAGE, large=3000))
    run = run_tap(tmp_path, tap_config(sim, page_size=PAGE, max_window_fills=20))
    assert run.returncode == 0, run.stderr[-3000:]
    assert_exact(run.records, sim.truth())


def test_fills_inserted_during_a_walk_are_caught_by_the_next_run(
    tmp_path: Path, simulator_factory: Any
) -> None:
    sim = simulator_factory(Dataset.custom([600, 300], seed=12))
    sim.set_faults(insert_on_walk=True)
    config = tap_config(sim, page_size=PAGE, lookback=3600)
    first = run_tap(tmp_path / "1", config)
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(first.ids) == len(set(first.ids))
    sim.clear_faults()
    second = run_tap(tmp_path / "2", config, state=first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    assert set(first.ids) | set(second.ids) == truth_ids(sim)
    assert len(truth_ids(sim)) > 900  # the walk did insert fills at the head


def test_batch_mode_writes_every_fill_to_files_before_state(
    tmp_path: Path, simulator_factory: Any
) -> None:
    import gzip
    import json

    sim = simulator_factory(Dataset.custom([250, 30, 0], seed=3))
    out = tmp_path / "batches"
    out.mkdir()
    batch_config = {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": out.as_uri(), "prefix": "orders-"},
        "batch_size": 100,
    }
    run = run_tap(tmp_path, tap_config(sim, page_size=PAGE, batch_config=batch_config))
    assert run.returncode == 0, run.stderr[-3000:]
    assert not run.records
    ids: list[str] = []
    for message in run.messages:
        if message["type"] == "BATCH":
            for uri in message["manifest"]:
                with gzip.open(uri.removeprefix("file://"), "rt") as handle:
                    ids.extend(json.loads(line)["order_id"] for line in handle)
        elif message["type"] == "STATE":
            # Every bookmark in a STATE covers only fills already in a batch file.
            for wallet, mark in bookmarks(message["value"]).items():
                if mark is not None:
                    covered = {t["order_id"] for t in sim.truth(wallet) if t["timestamp"] <= mark}
                    assert covered <= set(ids)
    assert sorted(ids) == sorted(truth_ids(sim))
