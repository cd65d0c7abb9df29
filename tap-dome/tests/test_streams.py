"""The streams beyond the fills: activity, markets, the completeness audit, wallets by handle."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dome_simulator import Dataset, WalletSpec
from tap_harness import bookmarks, run_tap, tap_config, truth_ids

PAGE = 50


def _activity_ids(sim: Any) -> set[str]:
    return {row["activity_id"] for row in sim.activity_truth()}


def test_activity_is_exact_and_resumes_from_its_bookmarks(
    tmp_path: Path, simulator_factory: Any
) -> None:
    sim = simulator_factory(
        Dataset.custom([WalletSpec(400, activity=30), WalletSpec(120, activity=8), 50], seed=51)
    )
    config = tap_config(sim, page_size=PAGE, max_window_fills=200)
    first = run_tap(tmp_path / "1", config, streams=("activity",))
    assert first.returncode == 0, first.stderr[-3000:]
    rows = first.stream("activity")
    assert rows, "the simulator should have served activity"
    assert {r["activity_id"] for r in rows} == _activity_ids(sim)
    assert len(rows) == len({r["activity_id"] for r in rows})
    assert {r["side"] for r in rows} <= {"SPLIT", "MERGE", "REDEEM"}
    assert all(r["occurred_at"].endswith("Z") and r["wallet"] == r["user"] for r in rows)
    state = first.last_state or {}
    marks = {
        p["context"]["wallet"]: p.get("replication_key_value")
        for p in state["bookmarks"]["activity"]["partitions"]
    }
    newest = max(r["timestamp"] for r in rows)
    assert all(mark is None or mark <= newest for mark in marks.values())

    sim.advance(seconds=120, new_activity_per_wallet=2)
    second = run_tap(tmp_path / "2", config, state=state, streams=("activity",))
    assert second.returncode == 0, second.stderr[-3000:]
    got = {r["activity_id"] for r in rows} | {r["activity_id"] for r in second.stream("activity")}
    assert got == _activity_ids(sim)
    assert len(second.stream("activity")) < len(rows)


def test_markets_cover_every_fill_and_unresolved_ones_are_read_again(
    tmp_path: Path, simulator_factory: Any
) -> None:
    sim = simulator_factory(Dataset.custom([300, 60, WalletSpec(80, activity=6)], seed=52))
    config = tap_config(sim, page_size=PAGE)
    first = run_tap(tmp_path / "1", config, streams=("orders", "activity", "markets"))
    assert first.returncode == 0, first.stderr[-3000:]
    markets = {m["condition_id"]: m for m in first.stream("markets")}
    assert {f["condition_id"] for f in sim.truth()} <= set(markets)
    truth = {m["condition_id"]: m for m in sim.markets_truth()}
    for condition_id, record in markets.items():
        served = truth[condition_id]
        assert record["side_a_token_id"] == served["side_a"]["id"]
        assert record["side_b_label"] == served["side_b"]["label"]
        assert record["status"] == served["status"]
        winner = served.get("winning_side") or {}
        assert record["winning_token_id"] == (winner.get("id") if winner else None)
    pending = (first.last_state or {})["bookmarks"]["markets"]["unresolved_condition_ids"]
    unresolved = sorted(c for c, m in markets.items() if not m["winning_token_id"])
    assert pending == unresolved
    assert pending, "the dataset should leave some market unresolved"

    target = pending[0]
    sim.resolve_market(target, winner=1)
    second = run_tap(tmp_path / "2", config, state=first.last_state, streams=("orders", "markets"))
    assert second.returncode == 0, second.stderr[-3000:]
    again = {m["condition_id"]: m for m in second.stream("markets")}
    assert set(pending) <= set(again), "every unresolved market is read again"
    assert again[target]["winning_token_id"] == truth[target]["side_b"]["id"]
    left = (second.last_state or {})["bookmarks"]["markets"]["unresolved_condition_ids"]
    assert target not in left


def test_thousands_of_markets_are_read_many_requests_at_once_in_order(
    tmp_path: Path, simulator_factory: Any
) -> None:
    sim = simulator_factory(Dataset.custom([1500, 900, 400], seed=54, markets=1200))
    config = tap_config(sim, page_size=1000, max_concurrency=16)
    first = run_tap(tmp_path / "1", config, streams=("orders", "markets"))
    assert first.returncode == 0, first.stderr[-3000:]
    traded = {f["condition_id"] for f in sim.truth()}
    assert len(traded) > 500  # more than five requests of 100 ids
    read = [m["condition_id"] for m in first.stream("markets")]
    assert set(read) == traded
    assert len(read) == len(traded)  # each once, read ahead or in the stream's turn
    # Only the markets an earlier run left unresolved, re-read: requests overlap.
    pending = (first.last_state or {})["bookmarks"]["markets"]["unresolved_condition_ids"]
    assert len(pending) > 500
    sim.reset_stats()
    sim.set_faults(latency=(0.2, 0.2))
    second = run_tap(tmp_path / "2", config, state=first.last_state, streams=("markets",))
    assert second.returncode == 0, second.stderr[-3000:]
    # Nothing read ahead (no stream before it): in the order asked, however the answers
    # came back.
    assert [m["condition_id"] for m in second.stream("markets")] == pending
    stats = sim.stats()
    assert stats["requests_by_route"] == {"markets": -(-len(pending) // 100)}
    assert stats["max_in_flight"] >= 8  # of ten requests (one at a time before)


def test_markets_are_read_while_the_fills_still_come(
    tmp_path: Path, simulator_factory: Any
) -> None:
    # The markets requests need only the ids: they overlap the orders stream's requests
    # instead of waiting a round trip after its last page, markets an earlier run left
    # unresolved included.
    sim = simulator_factory(Dataset.custom([6000, 40, 30], seed=55, markets=900))
    sim.set_faults(latency=(0.05, 0.05))
    config = tap_config(sim, page_size=100, max_concurrency=8)
    first = run_tap(tmp_path / "1", config, streams=("orders", "markets"))
    assert first.returncode == 0, first.stderr[-3000:]
    traded = {f["condition_id"] for f in sim.truth()}
    assert len(traded) > 300
    read = [m["condition_id"] for m in first.stream("markets")]
    assert sorted(read) == sorted(traded)  # every one, once
    stats = sim.stats()
    spans = stats["arrivals_by_route"]
    assert spans["markets"][0] < spans["orders"][1], spans  # before the last orders request
    # Full chunks of 100 ahead, the rest in the turn: at most one request more than needed.
    assert stats["requests_by_route"]["markets"] <= -(-len(traded) // 100) + 1

    pending = (first.last_state or {})["bookmarks"]["markets"]["unresolved_condition_ids"]
    assert len(pending) > 200
    # An hour on, with new fills: the markets left unresolved are read while they come.
    sim.advance(seconds=3600, new_fills_per_wallet=1500, wallets=[sim.wallets[0]])
    sim.reset_stats()
    second = run_tap(tmp_path / "2", config, state=first.last_state, streams=("orders", "markets"))
    assert second.returncode == 0, second.stderr[-3000:]
    again = [m["condition_id"] for m in second.stream("markets")]
    assert sorted(again) == sorted(
        set(pending) | {o["condition_id"] for o in second.stream("orders")}
    )
    spans = sim.stats()["arrivals_by_route"]
    assert spans["markets"][0] < spans["orders"][1], spans


def _audits(run: Any) -> dict[str, dict[str, Any]]:
    return {a["wallet"]: a for a in run.stream("wallet_audits")}


def test_audits_count_what_the_api_counts(tmp_path: Path, simulator_factory: Any) -> None:
    sim = simulator_factory(Dataset.custom([500, 120, 0, 7], seed=53, span=20 * 86400))
    streams = ("orders", "wallet_audits")
    config = tap_config(sim, page_size=PAGE, max_window_fills=200, audit_wallets_per_run=1)
    first = run_tap(tmp_path / "1", config, streams=streams)
    assert first.returncode == 0, first.stderr[-3000:]
    # A backfill's first requests cover each wallet's whole range: every count is free.
    audits = _audits(first)
    assert set(audits) == set(sim.wallets)
    for wallet, audit in audits.items():
        assert audit["source"] == "window_first_page"
        assert audit["api_total"] == len(truth_ids(sim, wallet))
        assert audit["api_total"] == sim.fill_count(wallet, audit["start_time"], audit["end_time"])
        got = [r for r in first.records if r["wallet"] == wallet]
        assert len(got) == audit["api_total"]

    # Incremental runs read only the lookback: one wallet a run is probed, in rotation.
    sim.advance(seconds=60, new_fills_per_wallet=2)
    state = first.last_state
    probed: list[str] = []
    for run_number in range(2, 2 + len(sim.wallets)):
        sim.reset_stats()
        run = run_tap(tmp_path / str(run_number), config, state=state, streams=streams)
        assert run.returncode == 0, run.stderr[-3000:]
        audits = _audits(run)
        marks = bookmarks(run.last_state or {})
        probes = {w: a for w, a in audits.items() if a["source"] == "limit_1_probe"}
        assert len(probes) == 1
        # Free counts only where this run's read covered the whole range again: a wallet
        # that has never had a fill (no bookmark) is read from start_date every run.
        free = {w for w, a in audits.items() if a["source"] == "window_first_page"}
        before = bookmarks(state or {})
        assert all(before.get(w) is None for w in free)
        ((wallet, audit),) = probes.items()
        if marks.get(wallet) is not None:
            assert audit["end_time"] == marks[wallet]
        assert audit["api_total"] == sim.fill_count(wallet, audit["start_time"], audit["end_time"])
        probed.append(wallet)
        state = run.last_state
    never_filled = {w for w in sim.wallets if not truth_ids(sim, w)}
    assert set(probed) | never_filled == set(sim.wallets), "the rotation reaches every wallet"

    every = run_tap(
        tmp_path / "all",
        {**config, "audit_all_wallets": True},
        state=state,
        streams=streams,
    )
    assert every.returncode == 0, every.stderr[-3000:]
    assert set(_audits(every)) == set(sim.wallets)


def test_wallets_by_handle_and_by_eoa(tmp_path: Path, simulator_factory: Any) -> None:
    sim = simulator_factory(Dataset.custom([60, 40, 30, 20, 10], seed=54))
    mappings = sim.wallet_mappings()
    with_handle = [m for m in mappings if m.get("handle")]
    assert len(with_handle) >= 2
    handles = [f"@{m['handle']}" for m in with_handle]
    run = run_tap(tmp_path / "h", tap_config(sim, wallets=handles, page_size=PAGE))
    assert run.returncode == 0, run.stderr[-3000:]
    proxies = {m["proxy"].lower() for m in with_handle}
    assert {r["wallet"] for r in run.records} == proxies
    assert set(run.ids) == set().union(*(truth_ids(sim, p) for p in proxies))
    assert set(bookmarks(run.last_state or {})) == proxies  # the proxy is what is bookmarked

    eoas = [m["eoa"] for m in mappings[:2]]
    run = run_tap(
        tmp_path / "e", tap_config(sim, wallets=eoas, wallets_are_eoas=True, page_size=PAGE)
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert {r["wallet"] for r in run.records} == {m["proxy"].lower() for m in mappings[:2]}

    unknown = ["@nobody-here", "@also_missing", handles[0]]
    bad = run_tap(tmp_path / "u", tap_config(sim, wallets=unknown))
    assert bad.returncode == 1
    errors = [line for line in bad.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, bad.stderr[-2000:]
    assert "@nobody-here" in errors[0]
    assert "@also_missing" in errors[0]
    assert handles[0] not in errors[0]
    assert not bad.records
    assert "Traceback" not in bad.stderr


def test_a_run_that_moves_no_bookmark_still_delivers_every_record(
    tmp_path: Path, simulator_factory: Any
) -> None:
    """Nothing new: the state does not change, the lookback's records still all go out.

    (The SDK writes no final STATE when the state is unchanged; buffered records must not
    depend on one to be flushed.)
    """
    sim = simulator_factory(Dataset.custom([200, 30], seed=55))
    lookback = 10 * 86400
    config = tap_config(sim, page_size=PAGE, lookback=lookback)
    first = run_tap(tmp_path / "1", config)
    assert first.returncode == 0, first.stderr[-3000:]
    marks = bookmarks(first.last_state or {})
    second = run_tap(tmp_path / "2", config, state=first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    assert bookmarks(second.last_state or {}) == marks
    expected = {
        fill["order_id"]
        for wallet, mark in marks.items()
        for fill in sim.truth(wallet)
        if fill["timestamp"] >= mark - lookback
    }
    assert expected
    assert set(second.ids) == expected


def test_activity_reads_ahead_while_orders_finishes(tmp_path: Path, simulator_factory: Any) -> None:
    # Once orders has sent a request for every wallet, activity starts fetching: its first
    # pages wait for its turn. Both streams stay exact, the STATE messages of orders carry
    # nothing of activity, and activity's bookmarks still drive its next run.
    sim = simulator_factory(
        Dataset.custom([WalletSpec(900, activity=25), WalletSpec(300, activity=10), 40, 7], seed=57)
    )
    config = tap_config(sim, page_size=PAGE)
    both = ("orders", "activity")
    first = run_tap(tmp_path / "1", config, streams=both)
    assert first.returncode == 0, first.stderr[-3000:]
    lines = first.stderr.splitlines()
    ahead = [
        i for i, line in enumerate(lines) if "tap-dome.activity" in line and "Reading ahead" in line
    ]
    orders_done = [
        i for i, line in enumerate(lines) if "tap-dome.orders" in line and "Fetching:" in line
    ]
    assert ahead, "activity did not read ahead"
    assert orders_done
    assert ahead[0] < orders_done[0], "activity read ahead only after orders had finished"
    assert set(first.ids) == truth_ids(sim)
    assert len(first.ids) == len(set(first.ids))
    rows = first.stream("activity")
    assert {r["activity_id"] for r in rows} == _activity_ids(sim)
    assert len(rows) == len({r["activity_id"] for r in rows})
    # Until activity's own turn, no STATE mentions it.
    first_activity = next(i for i, m in enumerate(first.messages) if m.get("stream") == "activity")
    for message in first.messages[:first_activity]:
        if message.get("type") == "STATE":
            assert "activity" not in message["value"].get("bookmarks", {})
    state = first.last_state or {}
    assert bookmarks(state)  # orders' bookmarks
    marks = [p.get("replication_key_value") for p in state["bookmarks"]["activity"]["partitions"]]
    assert len(marks) == len(sim.wallets)
    assert any(mark is not None for mark in marks)

    sim.advance(seconds=120, new_fills_per_wallet=3, new_activity_per_wallet=2)
    second = run_tap(tmp_path / "2", config, state=state, streams=both)
    assert second.returncode == 0, second.stderr[-3000:]
    again = second.stream("activity")
    assert {r["activity_id"] for r in rows} | {r["activity_id"] for r in again} == _activity_ids(
        sim
    )
    assert len(again) < len(rows)  # read from its bookmarks, not from start_date
    assert set(first.ids) | set(second.ids) == truth_ids(sim)


def _closing_line(stderr: str, stream: str) -> re.Match[str]:
    pattern = (
        rf"\| {stream} done: wallets (\d+)/(\d+), (\w+) ([\d,]+) \([\d,]+/s\), "
        rf"requests ([\d,]+) \(([\d.]+)/s\), 429s (\d+), retries (\d+), elapsed"
    )
    found = re.findall(pattern, stderr)
    assert len(found) == 1, f"one closing line of {stream} expected:\n{stderr[-3000:]}"
    match = re.search(pattern, stderr)
    assert match is not None
    return match


def test_each_stream_s_closing_line_counts_its_own_rows_and_requests(
    tmp_path: Path, simulator_factory: Any
) -> None:
    # Under Meltano only a log line's message is shown, so the line names its stream. Its
    # requests are the stream's own, as the server counted them: activity reads ahead while
    # orders finishes, and its line once counted the whole run's requests over its own
    # short time (1,220 requests at 1,303,941/s).
    sim = simulator_factory(
        Dataset.custom([WalletSpec(900, activity=25), WalletSpec(300, activity=10), 40, 7], seed=57)
    )
    run = run_tap(tmp_path, tap_config(sim, page_size=PAGE), streams=("orders", "activity"))
    assert run.returncode == 0, run.stderr[-3000:]
    served = sim.stats()["requests_by_route"]
    rows = {"orders": len(run.records), "activity": len(run.stream("activity"))}
    for stream, noun in (("orders", "fills"), ("activity", "events")):
        line = _closing_line(run.stderr, stream)
        assert line.group(1) == line.group(2) == str(len(sim.wallets))
        assert (line.group(3), int(line.group(4).replace(",", ""))) == (noun, rows[stream])
        assert int(line.group(5).replace(",", "")) == served[stream]
