"""Crash and resume, concurrency under one limiter, flat memory."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

from dome_simulator import Dataset
from tap_harness import (
    TAP,
    bookmarks,
    run_tap,
    start_tap,
    tap_config,
    tap_env,
    truth_ids,
    write_args,
)

PAGE = 100
MAX_WINDOW_FILLS = 1000
LOOKBACK = 600


def _run_until_killed(
    tmp_path: Path, config: dict[str, Any], state: dict[str, Any] | None, stop_after: int
) -> tuple[list[str], dict[str, Any] | None, bool]:
    """Read the tap's output until `stop_after` records, then SIGKILL it.

    Only what was read counts as emitted (what a target would have received), and only
    a STATE read before the kill is kept, as Meltano would.
    """
    proc = start_tap(tmp_path, config, state)
    assert proc.stdout is not None
    ids: list[str] = []
    last_state = state
    finished = True
    for line in proc.stdout:
        message = json.loads(line)
        if message["type"] == "RECORD":
            ids.append(message["record"]["order_id"])
            if len(ids) >= stop_after:
                proc.kill()
                finished = False
                break
        elif message["type"] == "STATE":
            last_state = message["value"]
    proc.wait(timeout=30)
    proc.stdout.close()
    return ids, last_state, finished


def test_kill_9_and_resume_loses_nothing_and_rework_is_bounded(
    tmp_path: Path, simulator_factory: Any
) -> None:
    sim = simulator_factory(Dataset.custom([12000, 40], seed=21, span=120 * 86400))
    config = tap_config(sim, page_size=PAGE, max_window_fills=MAX_WINDOW_FILLS, lookback=LOOKBACK)
    rng = random.Random(1234)
    emitted: set[str] = set()
    state: dict[str, Any] | None = None
    kills = 0
    rework_bound = MAX_WINDOW_FILLS * 3 // 2 + 50  # + the lookback's few fills
    for attempt in range(6):
        stop_after = rng.randint(300, 3000)
        ids, state, finished = _run_until_killed(
            tmp_path / f"run{attempt}", config, state, stop_after
        )
        reread = sum(1 for i in ids if i in emitted)
        if attempt:
            assert reread <= rework_bound, f"resume {attempt} re-read {reread} fills"
        emitted.update(ids)
        if finished:
            break
        kills += 1
    assert kills >= 3
    final = run_tap(tmp_path / "final", config, state)
    assert final.returncode == 0, final.stderr[-3000:]
    emitted.update(final.ids)
    assert emitted == truth_ids(sim)
    assert set(bookmarks(final.last_state or {})) == set(sim.wallets)


def test_concurrent_wallets_use_the_budget_and_never_exceed_it(
    tmp_path: Path, simulator_factory: Any
) -> None:
    # 60 wallets of 3 pages each, 100-300 ms per request: one request at a time could not
    # pass 10 requests/s; the tap should approach its budget of 20/s without a single 429.
    sim = simulator_factory(
        Dataset.custom([120] * 60, seed=31), rate_limit=(20, 200), latency=(0.1, 0.3)
    )
    config = tap_config(
        sim,
        page_size=50,
        requests_per_second=20,
        requests_per_10_seconds=200,
        max_concurrency=8,
    )
    started = time.monotonic()
    run = run_tap(tmp_path, config, timeout=180)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:]
    assert set(run.ids) == truth_ids(sim)
    stats = sim.stats()
    assert stats["by_status"].get("429", stats["by_status"].get(429, 0)) == 0
    assert stats["max_in_1s"] <= 20
    assert stats["max_in_10s"] <= 200
    requests = stats["requests"]
    assert requests >= 180
    assert requests / elapsed > 10, f"{requests} requests in {elapsed:.1f}s"


def _peak_rss_kib(tmp_path: Path, config: dict[str, Any]) -> int:
    args = write_args(tmp_path, config, None, ("orders",))
    with open(os.devnull, "w") as sink:
        import subprocess

        proc = subprocess.Popen([*TAP, *args], stdout=sink, stderr=sink, env=tap_env())
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0
    return int(usage.ru_maxrss)


def test_memory_is_flat_in_wallet_size(tmp_path: Path, simulator_factory: Any) -> None:
    small = simulator_factory(Dataset.custom([200], seed=41))
    large = simulator_factory(Dataset.custom([80000], seed=42, span=300 * 86400))
    rss_small = _peak_rss_kib(tmp_path / "s", tap_config(small, page_size=1000))
    rss_large = _peak_rss_kib(tmp_path / "l", tap_config(large, page_size=1000))
    # 80,000 parsed fills held at once would take well over 100 MiB.
    assert rss_large - rss_small < 40 * 1024, (rss_small, rss_large)


def _stopped_by_sigterm(tmp_path: Path, config: dict[str, Any], after_records: int) -> Any:
    """Start the tap, send SIGTERM once `after_records` RECORD lines came (0: at once,
    after 1.5 s), and return (exit code, seconds it took to end, stdout lines, stderr)."""
    import signal
    import subprocess

    args = write_args(tmp_path, config, None, ("orders",))
    errors = tmp_path / "stderr.log"
    with errors.open("w") as stderr:
        proc = subprocess.Popen(
            [*TAP, *args], stdout=subprocess.PIPE, stderr=stderr, text=True, env=tap_env()
        )
        assert proc.stdout is not None
        lines: list[str] = []
        if after_records:
            while sum('"type":"RECORD"' in line for line in lines) < after_records:
                line = proc.stdout.readline()
                assert line, "the tap ended before it was stopped"
                lines.append(line)
        else:
            time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        lines.extend(proc.stdout.readlines())
        code = proc.wait(timeout=30)
        took = time.monotonic() - sent
    return code, took, lines, errors.read_text()


def test_a_stopped_run_says_so_and_resumes_exactly(tmp_path: Path, simulator_factory: Any) -> None:
    # SIGTERM (a scheduler stopping the job) must not look like success, and what the run
    # wrote before it must be a clean prefix to resume from.
    sim = simulator_factory(Dataset.custom([6000, 300], seed=31), latency=(0.01, 0.02))
    config = tap_config(sim, page_size=PAGE, max_window_fills=MAX_WINDOW_FILLS)
    code, took, lines, stderr = _stopped_by_sigterm(tmp_path / "1", config, 1500)
    assert code == 128 + 15, stderr[-2000:]
    assert took < 10
    assert "Stopped by SIGTERM" in stderr
    assert "Traceback" not in stderr
    for number, line in enumerate(lines):  # every line whole
        assert line.endswith("\n"), (number, len(lines), line[-200:])
        try:
            json.loads(line)
        except ValueError:
            raise AssertionError((number, len(lines), line[:300], line[-300:])) from None
    messages = [json.loads(line) for line in lines]
    ids = [m["record"]["order_id"] for m in messages if m["type"] == "RECORD"]
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    assert len(ids) < sum(1 for _ in truth_ids(sim))  # stopped before the end
    rest = run_tap(tmp_path / "2", config, state=states[-1] if states else None)
    assert rest.returncode == 0, rest.stderr[-2000:]
    assert set(ids) | set(rest.ids) == truth_ids(sim)


def test_a_run_stopped_while_it_retries_ends_at_once(
    tmp_path: Path, simulator_factory: Any
) -> None:
    sim = simulator_factory(Dataset.custom([50], seed=32))
    sim.set_faults(fail_every={"503": 1})  # every request fails: the tap backs off
    code, took, _, stderr = _stopped_by_sigterm(tmp_path, tap_config(sim, max_retries=12), 0)
    assert code == 128 + 15, stderr[-2000:]
    assert took < 5
    assert "Retrying in" in stderr
    assert "Stopped by SIGTERM" in stderr


def _429s(sim: Any) -> int:
    by_status = sim.stats()["by_status"]
    return int(by_status.get("429", by_status.get(429, 0)))


def test_a_run_right_after_another_waits_for_the_server_s_windows(
    tmp_path: Path, simulator_factory: Any, monkeypatch: Any
) -> None:
    # Dome counts a key's requests over 1 s and 10 s, whichever run sent them. Each run
    # below sends a whole 10 s budget (40 requests) in about 2 s, one after the other.
    sim = simulator_factory(Dataset.custom([5] * 40, seed=41), rate_limit=(20, 40))
    config = tap_config(
        sim, page_size=PAGE, requests_per_second=20, requests_per_10_seconds=40, max_concurrency=8
    )
    ledger_dir, fresh_dir = tmp_path / "ledger", tmp_path / "fresh"
    ledger_dir.mkdir()
    fresh_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(ledger_dir))
    first = run_tap(tmp_path / "1", config)
    assert first.returncode == 0, first.stderr[-3000:]
    assert _429s(sim) == 0
    # Right after it, with the ledger the first run left: no 429, the budgets wait instead.
    second = run_tap(tmp_path / "2", config)
    assert second.returncode == 0, second.stderr[-3000:]
    assert set(second.ids) == truth_ids(sim)
    assert "Rate budgets: 40 requests that an earlier run sent in the last 10 s" in second.stderr
    assert _429s(sim) == 0
    assert sim.stats()["max_in_10s"] <= 40
    # The same run without it (another temp directory) meets the server's full windows.
    monkeypatch.setenv("TMPDIR", str(fresh_dir))
    third = run_tap(tmp_path / "3", config)
    assert third.returncode == 0, third.stderr[-3000:]
    assert set(third.ids) == truth_ids(sim)
    assert "that an earlier run sent" not in third.stderr
    assert _429s(sim) > 0
