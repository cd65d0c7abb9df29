"""Loader benchmark: the tap alone against whole Meltano extract-loads, on the same fills.

One run prints, for ~200,000 fills from the simulator (no latency, budgets lifted):

- tap-dome alone (RECORD lines to /dev/null);
- `meltano run tap-dome target-bigquery` on the local emulators (bqemulator + GCS emulator,
  as in tests/bigquery), in record mode and in batch mode (the tap writes gzip JSONL files,
  the loader uploads and loads them: what the prod environment does);
- `meltano run tap-dome target-duckdb`;

each as fills/s, its ratio to the tap alone, and the peak RSS summed over the job's processes
(Meltano, tap, loader; sampled every 50 ms from /proc). Traffic stays on 127.0.0.1.
Usage: `make bench` (runs bench/run.py, then this), or `.venv/bin/python bench/loaders.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import API_KEY, simulator  # noqa: E402

from tests.bigquery import bq_harness  # noqa: E402

BUCKET = "bench-staging"
FAST = {
    "TAP_DOME_REQUESTS_PER_SECOND": "10000",
    "TAP_DOME_REQUESTS_PER_10_SECONDS": "100000",
}


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _group(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


@contextmanager
def peak_rss(pgid: int) -> Iterator[list[int]]:
    """Peak of the summed RSS (KiB) of every process in the group, while the block runs."""
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], sum(_rss_kib(pid) for pid in _group(pgid)))
            done.wait(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def run_job(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run a command in its own process group: (wall seconds, peak summed RSS in KiB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    with peak_rss(proc.pid) as peak:
        _out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{args[:4]} failed:\n{err.decode(errors='replace')[-3000:]}")
    return time.perf_counter() - started, peak[0]


def tap_env(info: dict[str, Any]) -> dict[str, str]:
    return {
        **os.environ,
        "TAP_DOME_API_URL": info["url"],
        "TAP_DOME_API_KEY": API_KEY,
        "TAP_DOME_WALLETS": json.dumps(info["wallets"]),
        "TAP_DOME_MAX_CONCURRENCY": "4",
        **FAST,
    }


def tap_alone(info: dict[str, Any], workdir: Path) -> tuple[float, int]:
    config = {
        "api_key": API_KEY,
        "api_url": info["url"],
        "wallets": info["wallets"],
        "start_date": "2020-01-01T00:00:00Z",
        "progress_interval": 3600,
        "requests_per_second": 10_000,
        "requests_per_10_seconds": 100_000,
        "max_concurrency": 4,
    }
    path = workdir / "tap.json"
    path.write_text(json.dumps(config))
    return run_job([sys.executable, "-m", "tap_dome.tap", "--config", str(path)], dict(os.environ))


def meltano_run(env: dict[str, str], *plugins: str, environment: str = "dev") -> list[str]:
    suffix = f"bench{time.time_ns()}"
    return [
        str(ROOT / ".venv/bin/meltano"),
        f"--environment={environment}",
        "run",
        "--state-id-suffix",
        suffix,
        "--full-refresh",
        *plugins,
    ]


def bigquery_env(info: dict[str, Any], stack: bq_harness.Stack, dataset: str) -> dict[str, str]:
    return {
        **tap_env(info),
        **stack.env(),
        "TARGET_BIGQUERY_PROJECT": stack.project,
        "TARGET_BIGQUERY_DATASET": dataset,
        "TARGET_BIGQUERY_LOCATION": stack.location,
        "TARGET_BIGQUERY_BUCKET": BUCKET,
        "TARGET_BIGQUERY_CREDENTIALS_PATH": str(stack.credentials),
    }


def count_bq(stack: bq_harness.Stack, dataset: str) -> int:
    rows = stack.query(f"select count(*) as n from `{stack.project}.{dataset}.orders`")
    return int(rows[0]["n"])


def count_duckdb(path: Path) -> int:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        row = con.sql("select count(*) from tap_dome.orders").fetchone()
    return int(row[0]) if row else 0


def median_of(
    repeats: int, work: Callable[[int], tuple[float, int, int]]
) -> tuple[float, int, int]:
    """Median wall, max peak RSS, last row count over `repeats` runs."""
    results = [work(i) for i in range(repeats)]
    walls = sorted(r[0] for r in results)
    return walls[len(walls) // 2], max(r[1] for r in results), results[-1][2]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--fills-per-wallet", type=int, default=50_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tap-dome-bench-loaders-"))
    bench = (
        "--profile",
        "bench",
        "--bench-wallets",
        "4",
        "--bench-fills",
        str(args.fills_per_wallet),
    )
    rows: list[tuple[str, float, int, int]] = []
    with (
        simulator(*bench) as info,
        bq_harness.running_stack(workdir / "stack") as stack,
    ):
        stack.create_bucket(BUCKET)
        fills = 4 * args.fills_per_wallet

        def tap(_i: int) -> tuple[float, int, int]:
            wall, rss = tap_alone(info, workdir)
            return wall, rss, fills

        rows.append(
            (
                "tap-dome alone (RECORD lines to /dev/null)",
                *median_of(args.repeats, tap),
            )
        )

        def bigquery(mode: str) -> Callable[[int], tuple[float, int, int]]:
            def work(i: int) -> tuple[float, int, int]:
                dataset = f"bench_{mode}_{i}_{os.getpid()}"
                env = bigquery_env(info, stack, dataset)
                # prod: the tap writes BATCH files (its batch_config); dev: RECORD lines.
                environment = "prod" if mode == "batch" else "dev"
                cmd = meltano_run(env, "tap-dome", "target-bigquery", environment=environment)
                wall, rss = run_job(cmd, env)
                loaded = count_bq(stack, dataset)
                stack.drop_dataset(dataset)
                return wall, rss, loaded

            return work

        rows.append(
            (
                "meltano run tap-dome target-bigquery, RECORD lines",
                *median_of(args.repeats, bigquery("record")),
            )
        )
        rows.append(
            (
                "meltano run tap-dome target-bigquery, BATCH files",
                *median_of(args.repeats, bigquery("batch")),
            )
        )

        def duckdb(i: int) -> tuple[float, int, int]:
            database = workdir / f"bench-{i}.duckdb"
            env = {**tap_env(info), "DOME_DUCKDB_PATH": str(database)}
            wall, rss = run_job(meltano_run(env, "tap-dome", "target-duckdb"), env)
            return wall, rss, count_duckdb(database)

        rows.append(("meltano run tap-dome target-duckdb", *median_of(args.repeats, duckdb)))

    tap_rate = fills / rows[0][1]
    print(f"\nLoaders: {fills:,} fills, {args.repeats} run(s) each (median wall; peak summed RSS)")
    print(f"  {'job':<56} {'fills/s':>9} {'ratio':>6} {'peak RSS':>10}  rows")
    for name, wall, rss, loaded in rows:
        rate = fills / wall
        print(
            f"  {name:<56} {rate:>9,.0f} {rate / tap_rate:>6.2f} {rss / 1024:>7.0f} MiB  {loaded:,}"
        )
        if loaded != fills:
            raise SystemExit(f"{name}: loaded {loaded:,} rows, expected {fills:,}")


if __name__ == "__main__":
    main()
