"""Loader benchmark: the tap alone against whole Meltano extract-loads, on the same fills.

One run prints, for ~200,000 fills from the simulator (no latency, budgets lifted):

- tap-dome alone (RECORD lines to /dev/null);
- `meltano run tap-dome target-bigquery` on the local emulators (bqemulator + GCS emulator,
  as in tests/bigquery), in record mode and in batch mode (the tap writes gzip JSONL files,
  the loader uploads and loads them: what the prod environment does);
- `meltano run tap-dome target-duckdb`;

each as fills/s, its ratio to the tap alone, and the peak RSS summed over the job's processes
(Meltano, tap, loader; sampled every 50 ms from /proc), interleaved round by round so that a
busy shared machine slows all of them alike. For the BigQuery runs it also prints where the
time went: the CPU seconds of Meltano, the tap, the loader and the emulators (bqemulator + the
GCS emulator) during the run, the loader's CPU per row, and the emulator's own time inside load
jobs (the jobs' start-to-end statistics, as the loader logs them): the emulator's share is not
the loader's. Traffic stays on 127.0.0.1.
Usage: `make bench` (runs bench/run.py, then this), or `.venv/bin/python bench/loaders.py`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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


TICK = os.sysconf("SC_CLK_TCK")
ROLES = (("target-", "loader"), ("tap-dome", "tap"), ("tap_dome", "tap"), ("meltano", "meltano"))


@dataclass
class Run:
    """One timed job: wall, peak summed RSS, CPU seconds per role, rows loaded, loader log."""

    wall: float
    rss_kib: int
    cpu: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    log: str = ""


def _stat(pid: int) -> tuple[int, float] | None:
    """(process group, CPU seconds so far) of a process, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[2]), (int(fields[11]) + int(fields[12])) / TICK


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _role(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            words = fh.read().split(b"\0")
    except OSError:
        return "other"
    head = " ".join(w.decode(errors="replace").rsplit("/", 1)[-1] for w in words[:3])
    return next((role for key, role in ROLES if key in head), "other")


def cpu_seconds(pids: list[int]) -> float:
    return sum(stat[1] for pid in pids if (stat := _stat(pid)) is not None)


@contextmanager
def sampled(pgid: int) -> Iterator[Run]:
    """While the block runs: peak summed RSS of the process group, and each process's CPU."""
    run = Run(wall=0.0, rss_kib=0)
    cpu: dict[int, tuple[str, float]] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            pids = [int(e) for e in os.listdir("/proc") if e.isdigit()]
            total = 0
            for pid in pids:
                stat = _stat(pid)
                if stat is None or stat[0] != pgid:
                    continue
                total += _rss_kib(pid)
                role = cpu[pid][0] if pid in cpu else _role(pid)
                cpu[pid] = (role, stat[1])
            run.rss_kib = max(run.rss_kib, total)
            done.wait(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield run
    finally:
        done.set()
        thread.join()
        for role, seconds in cpu.values():
            run.cpu[role] = run.cpu.get(role, 0.0) + seconds


def run_job(args: list[str], env: dict[str, str]) -> Run:
    """Run a command in its own process group, sampled (a process's last 50 ms may be missed)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    with sampled(proc.pid) as run:
        _out, err = proc.communicate()
    run.wall = time.perf_counter() - started
    run.log = err.decode(errors="replace")
    if proc.returncode:
        raise RuntimeError(f"{args[:4]} failed:\n{run.log[-3000:]}")
    return run


def tap_env(info: dict[str, Any]) -> dict[str, str]:
    return {
        **os.environ,
        "TAP_DOME_API_URL": info["url"],
        "TAP_DOME_API_KEY": API_KEY,
        "TAP_DOME_WALLETS": json.dumps(info["wallets"]),
        "TAP_DOME_MAX_CONCURRENCY": "4",
        **FAST,
    }


def tap_alone(info: dict[str, Any], workdir: Path) -> Run:
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


BIGQUERY_SECONDS = re.compile(
    r"Loaded \d+ rows into \S+\.orders \(job \S+, ([\d.]+) s in BigQuery\)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
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
    fills = 4 * args.fills_per_wallet
    load_before = os.getloadavg()
    runs: dict[str, list[Run]] = {}
    with (
        simulator(*bench) as info,
        bq_harness.running_stack(workdir / "stack") as stack,
    ):
        stack.create_bucket(BUCKET)
        emulators = [p.pid for p in stack.procs]
        schema: dict[str, Any] = {}

        def tap(_i: int) -> Run:
            run = tap_alone(info, workdir)
            run.rows = fills
            return run

        def bigquery(mode: str) -> Callable[[int], Run]:
            def work(i: int) -> Run:
                dataset = f"bench_{mode}_{i}_{os.getpid()}"
                env = bigquery_env(info, stack, dataset)
                # prod: the tap writes BATCH files (its batch_config); dev: RECORD lines.
                environment = "prod" if mode == "batch" else "dev"
                cmd = meltano_run(env, "tap-dome", "target-bigquery", environment=environment)
                before = cpu_seconds(emulators)
                run = run_job(cmd, env)
                run.cpu["emulators"] = cpu_seconds(emulators) - before
                run.rows = count_bq(stack, dataset)
                schema.update(stack.table(dataset, "orders")["schema"])
                stack.drop_dataset(dataset)
                return run

            return work

        def duckdb(i: int) -> Run:
            database = workdir / f"bench-{i}.duckdb"
            env = {**tap_env(info), "DOME_DUCKDB_PATH": str(database)}
            run = run_job(meltano_run(env, "tap-dome", "target-duckdb"), env)
            run.rows = count_duckdb(database)
            return run

        jobs: dict[str, Callable[[int], Run]] = {
            "tap-dome alone (RECORD lines to /dev/null)": tap,
            "meltano run tap-dome target-bigquery, RECORD lines": bigquery("record"),
            "meltano run tap-dome target-bigquery, BATCH files (prod)": bigquery("batch"),
            "meltano run tap-dome target-duckdb": duckdb,
        }
        for i in range(args.repeats):
            for name, work in jobs.items():
                runs.setdefault(name, []).append(work(i))
        probe = emulator_probe(info, stack, workdir, schema, args.repeats)
    report(runs, fills, args.repeats, load_before, os.getloadavg())
    rows, seconds = probe
    print(
        f"  bqemulator alone, one load job of {rows:,} fills (gzip JSONL, as the loader stages"
        f" them), nothing else running: {seconds:.2f} s median ({seconds / rows * 1e6:.1f} µs"
        " per row; it loads one job at a time and copies the whole table after each load)"
    )


def emulator_probe(
    info: dict[str, Any], stack: bq_harness.Stack, workdir: Path, schema: dict[str, Any], n: int
) -> tuple[int, float]:
    """The emulator's own time for one load job of one tap batch file (median of n).

    The tap writes its batch files (as in prod); the first fills file, gzipped with the two
    metadata fields the loader adds, is put where bqemulator reads gs:// URIs from, and
    loaded into a new table by a load job: its wall time is the emulator's alone.
    """
    folder = workdir / "probe-batches"
    config = json.loads((workdir / "tap.json").read_text())
    config["batch_config"] = {
        "encoding": {"format": "jsonl", "compression": "none"},
        "storage": {"root": folder.as_uri()},
        "batch_size": 50_000,
    }
    (workdir / "tap-batch.json").write_text(json.dumps(config))
    run_job(
        [sys.executable, "-m", "tap_dome.tap", "--config", str(workdir / "tap-batch.json")],
        dict(os.environ),
    )
    source = next(f for f in sorted(folder.iterdir()) if "--orders-" in f.name)
    at = b'"2026-01-01T00:00:00.000000Z"'
    data = source.read_bytes().replace(
        b"}\n", b',"_sdc_extracted_at":' + at + b',"_sdc_batched_at":' + at + b"}\n"
    )
    target = stack.gcs_data / BUCKET / "probe" / "fills.jsonl.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(gzip.compress(data, 1))
    stack.bq_request("POST", "/datasets", {"datasetReference": {"datasetId": "probe"}})
    times = []
    for i in range(n):
        load = {
            "sourceUris": [f"gs://{BUCKET}/probe/fills.jsonl.gz"],
            "sourceFormat": "NEWLINE_DELIMITED_JSON",
            "destinationTable": {
                "projectId": stack.project,
                "datasetId": "probe",
                "tableId": f"t{i}",
            },
            "schema": schema,
            "createDisposition": "CREATE_IF_NEEDED",
            "ignoreUnknownValues": True,
        }
        started = time.perf_counter()
        job = stack.bq_request("POST", "/jobs", {"configuration": {"load": load}})
        while job["status"]["state"] != "DONE":
            time.sleep(0.05)
            job = stack.bq_request("GET", f"/jobs/{job['jobReference']['jobId']}")
        times.append(time.perf_counter() - started)
        if job["status"].get("errorResult"):
            raise SystemExit(f"probe load failed: {job['status']}")
    rows = data.count(b"\n")
    return rows, statistics.median(times)


def report(
    runs: dict[str, list[Run]],
    fills: int,
    repeats: int,
    before: tuple[float, float, float],
    after: tuple[float, float, float],
) -> None:
    """Medians side by side: rates and ratios, then the BigQuery runs' time by process."""

    def median(values: list[float]) -> float:
        return statistics.median(values)

    names = list(runs)
    tap_rate = fills / median([r.wall for r in runs[names[0]]])
    print(f"\nLoaders: {fills:,} fills, median of {repeats} interleaved round(s)")
    print(f"  {'job':<58} {'fills/s':>9} {'ratio':>6} {'peak RSS':>10}  rows")
    for name in names:
        rate = fills / median([r.wall for r in runs[name]])
        rss = max(r.rss_kib for r in runs[name]) / 1024
        rows = runs[name][-1].rows
        print(f"  {name:<58} {rate:>9,.0f} {rate / tap_rate:>6.2f} {rss:>7.0f} MiB  {rows:,}")
        if rows != fills and "target-bigquery" not in name:
            raise SystemExit(f"{name}: loaded {rows:,} rows, expected {fills:,}")
    print(
        "\n  Where a BigQuery run's time went (medians; CPU seconds of each process during the run)"
    )
    print(
        f"  {'job':<26} {'wall':>6} {'meltano':>8} {'tap':>6} {'loader':>7} {'emulators':>10}"
        f" {'loader µs/row':>14} {'load jobs':>10} {'in emulator':>12}"
    )
    for name in names:
        if "target-bigquery" not in name:
            continue
        found = [BIGQUERY_SECONDS.findall(r.log) for r in runs[name]]
        jobs = median([len(f) for f in found])
        in_emulator = median([sum(float(s) for s in f) for f in found])
        roles = ("meltano", "tap", "loader", "emulators")
        cpu = {k: median([r.cpu.get(k, 0.0) for r in runs[name]]) for k in roles}
        label = "BATCH files (prod)" if "BATCH" in name else "RECORD lines"
        print(
            f"  {label:<26} {median([r.wall for r in runs[name]]):>5.1f}s {cpu['meltano']:>7.1f}s"
            f" {cpu['tap']:>5.1f}s {cpu['loader']:>6.1f}s {cpu['emulators']:>9.1f}s"
            f" {cpu['loader'] / fills * 1e6:>14.1f} {jobs:>10.0f} {in_emulator:>11.2f}s"
        )
        for run in runs[name]:
            if run.rows < fills:
                raise SystemExit(f"{name}: loaded {run.rows:,} rows, expected {fills:,}")
    print(
        f"  load average before: {before[0]:.1f} / {before[1]:.1f} / {before[2]:.1f};"
        f" after: {after[0]:.1f} / {after[1]:.1f} / {after[2]:.1f} (1/5/15 min)"
        f" on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
