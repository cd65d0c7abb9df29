"""Whole-job benchmark: tap-dome's Meltano + dbt job against dlt doing the same job, one run.

On the same fills from one simulator (its own process, no latency, budgets lifted) it runs,
interleaved round by round so that a busy shared machine slows all of them alike:

  tap        the tap CLI alone, records to /dev/null
  el         meltano run tap-dome target-duckdb
  job        meltano run tap-dome target-duckdb dbt-duckdb:build   (the whole DuckDB job)
  dlt        dlt 1.31's rest_api source doing the same job (bench/dlt_job.py)

and prints medians: fills/s, wall seconds, peak RSS summed over each job's processes, the
extract-load's ratio to the tap alone and tap-dome's speed ratio to dlt, with the machine's
load average. Every run starts from an empty DuckDB file and checks what it loaded.
Meltano runs in an isolated system directory (.cache/bench-job/meltano, kept between
benchmarks, like a deployment's .meltano), so the developer's state is never touched.
dlt lives in its own virtualenv, .cache/bench-dlt, installed from PyPI on first use.

Usage: `make bench`, or `.venv/bin/python bench/job.py [--rounds 3] [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from proctree import Measured, run_measured

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
DLT_VENV = CACHE / "bench-dlt"
DLT_REQUIREMENTS = ("dlt[duckdb,parquet]==1.31.*", "duckdb==1.5.5")  # duckdb as the product's
WORK = CACHE / "bench-job"
CATALOG = ROOT / "extract" / "tap-dome.catalog.json"
API_KEY = "bench-key"
START_DATE = "2020-01-01T00:00:00Z"
# Budgets lifted: the benchmark measures the code, not the rate limiter.
TAP_SETTINGS: dict[str, Any] = {
    "start_date": START_DATE,
    "requests_per_second": 10_000,
    "requests_per_10_seconds": 100_000,
    "progress_interval": 3600,
}
PLUGIN_KINDS = ("extractors", "loaders", "utilities")


@dataclass(frozen=True)
class Result:
    """One timed run of one step."""

    seconds: float
    peak_rss_mib: float
    fills: int
    peaks_mib: dict[str, float]


@contextmanager
def simulator(wallets: int, fills: int) -> Iterator[dict[str, Any]]:
    """The simulator CLI in its own process (it must not share the measured processes' GIL)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dome_simulator",
            "--port",
            "0",
            "--api-key",
            API_KEY,
            "--profile",
            "bench",
            "--bench-wallets",
            str(wallets),
            "--bench-fills",
            str(fills),
            "--rate-limit",
            "none",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    try:
        yield info
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def ensure_dlt() -> Path:
    """The benchmark-only virtualenv with dlt (from PyPI, with the repository's uv)."""
    python = DLT_VENV / "bin" / "python"
    stamp = DLT_VENV / ".requirements"
    if stamp.exists() and stamp.read_text() == "\n".join(DLT_REQUIREMENTS):
        return python
    uv = str(ROOT / ".venv" / "bin" / "uv")
    print(f"bench: installing {', '.join(DLT_REQUIREMENTS)} into {DLT_VENV}", flush=True)
    subprocess.run(
        [uv, "venv", "-q", "--clear", "--python", sys.executable, str(DLT_VENV)], check=True
    )
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python), *DLT_REQUIREMENTS],
        check=True,
        env={**os.environ, "UV_COMPILE_BYTECODE": "1"},
    )
    stamp.write_text("\n".join(DLT_REQUIREMENTS))
    return python


class Bench:
    """The four steps, each a fresh run on the same simulator."""

    def __init__(self, info: dict[str, Any], dlt_python: Path | None) -> None:
        self.info = info
        self.dlt_python = dlt_python
        self.runs = WORK / "runs"
        shutil.rmtree(self.runs, ignore_errors=True)
        self.runs.mkdir(parents=True)
        self.sys_dir = WORK / "meltano"
        self.sys_dir.mkdir(parents=True, exist_ok=True)
        for kind in PLUGIN_KINDS:
            link = self.sys_dir / kind
            if not link.is_symlink():
                link.symlink_to(ROOT / ".meltano" / kind, target_is_directory=True)
        self.count = 0

    def fresh(self, name: str) -> Path:
        self.count += 1
        folder = self.runs / f"{self.count:03d}-{name}"
        folder.mkdir()
        return folder

    def meltano_env(self, database: Path) -> dict[str, str]:
        """The inherited environment minus anything that could leak in, plus the bench's."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TAP_DOME_", "TARGET_DUCKDB_", "DBT_", "MELTANO_", "DOME_"))
        }
        env.update(
            MELTANO_SYS_DIR_ROOT=str(self.sys_dir),
            MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
            TAP_DOME_API_URL=self.info["url"],
            TAP_DOME_API_KEY=API_KEY,
            TAP_DOME_WALLETS=json.dumps(self.info["wallets"]),
            DOME_DUCKDB_PATH=str(database),
            **{f"TAP_DOME_{k.upper()}": str(v) for k, v in TAP_SETTINGS.items()},
        )
        return env

    def warm_up(self) -> None:
        """Migrate the bench's system database and let dbt keep a parsed manifest (untimed)."""
        folder = self.fresh("warm-up")
        with (folder / "log.txt").open("wb") as log:
            done = subprocess.run(
                [str(ROOT / ".venv/bin/meltano"), "invoke", "dbt-duckdb", "parse"],
                cwd=ROOT,
                env=self.meltano_env(self.warehouse("job")),
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        _check(done.returncode, folder / "log.txt", "meltano invoke dbt-duckdb parse")

    def tap(self) -> Result:
        folder = self.fresh("tap")
        config = folder / "config.json"
        settings = {
            "api_key": API_KEY,
            "api_url": self.info["url"],
            "wallets": self.info["wallets"],
        }
        config.write_text(json.dumps({**settings, **TAP_SETTINGS}))
        log = folder / "log.txt"
        with log.open("wb") as err:
            # The catalog Meltano hands it, so the tap alone reads the same streams.
            command = [str(ROOT / ".venv/bin/tap-dome"), "--config", str(config)]
            measured = run_measured([*command, "--catalog", str(CATALOG)], stderr=err)
        _check(measured.returncode, log, "tap-dome")
        line = next(x for x in log.read_text().splitlines() if "orders done: " in x)
        fills = int(line.split("fills ")[1].split(" ")[0].replace(",", ""))
        return _result(measured, fills)

    def warehouse(self, name: str) -> Path:
        """A step's DuckDB file: emptied before each run, at the same path every time.

        A deployment's warehouse stays where it is, and dbt keeps its parsed manifest only
        for the same connection settings, path included (a new path is a full parse).
        """
        path = WORK / "warehouse" / f"{name}.duckdb"
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in (path, path.with_name(path.name + ".wal")):
            stale.unlink(missing_ok=True)
        return path

    def meltano(self, *blocks: str, table: str) -> Result:
        name = "job" if len(blocks) > 2 else "el"
        folder = self.fresh(name)
        database = self.warehouse(name)
        log = folder / "log.txt"
        command = [
            str(ROOT / ".venv/bin/meltano"),
            "run",
            "--state-id-suffix",
            f"bench{time.time_ns()}",
            "--full-refresh",
            *blocks,
        ]
        with log.open("wb") as out:
            measured = run_measured(
                command, env=self.meltano_env(database), cwd=ROOT, stdout=out, stderr=out
            )
        _check(measured.returncode, log, " ".join(command[1:]))
        with duckdb.connect(str(database), read_only=True) as con:
            row = con.sql(f"select count(distinct order_id) from {table}").fetchone()
        database.unlink()
        return _result(measured, int(row[0]) if row else 0)

    def el(self) -> Result:
        return self.meltano("tap-dome", "target-duckdb", table="tap_dome.orders")

    def job(self) -> Result:
        return self.meltano("tap-dome", "target-duckdb", "dbt-duckdb:build", table="fct_orders")

    def dlt(self) -> Result:
        assert self.dlt_python is not None
        folder = self.fresh("dlt")
        database = self.warehouse("dlt")
        out, log = folder / "out.json", folder / "log.txt"
        env = {**os.environ, "NORMALIZE__WORKERS": "2", "RUNTIME__LOG_LEVEL": "WARNING"}
        with out.open("wb") as stdout, log.open("wb") as stderr:
            measured = run_measured(
                [
                    str(self.dlt_python),
                    str(ROOT / "bench" / "dlt_job.py"),
                    self.info["url"],
                    API_KEY,
                    json.dumps(self.info["wallets"]),
                    str(database),
                    str(folder / "pipelines"),
                ],
                env=env,
                stdout=stdout,
                stderr=stderr,
            )
        _check(measured.returncode, log, "bench/dlt_job.py")
        loaded = json.loads(out.read_text())
        database.unlink()
        return _result(measured, int(loaded["distinct"]))


def _result(measured: Measured, fills: int) -> Result:
    return Result(
        seconds=measured.seconds,
        peak_rss_mib=measured.peak_rss_mib,
        fills=fills,
        peaks_mib=measured.peaks_mib,
    )


def _per_process(results: list[Result]) -> str:
    """The median of each program's peak over the rounds, biggest first (below 5 MiB left out)."""
    names = {name for r in results for name in r.peaks_mib}
    medians = {n: statistics.median(r.peaks_mib.get(n, 0.0) for r in results) for n in names}
    ordered = sorted((m, n) for n, m in medians.items() if m >= 5)
    return ", ".join(f"{n} {m:.0f}" for m, n in reversed(ordered))


def _check(returncode: int, log: Path, what: str) -> None:
    if returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        sys.exit(f"bench: {what} exited with {returncode}; the end of {log}:\n{tail}")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f} (1/5/15 min) on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round on 40,000 fills")
    parser.add_argument("--wallets", type=int, default=4)
    parser.add_argument("--fills-per-wallet", type=int, default=50_000)
    parser.add_argument("--no-dlt", action="store_true", help="skip the dlt comparison")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.fills_per_wallet = 1, 10_000
    dlt_python = None if args.no_dlt else ensure_dlt()
    total = args.wallets * args.fills_per_wallet
    load_before = load()
    steps: dict[str, list[Result]] = {"tap": [], "el": [], "job": [], "dlt": []}
    with simulator(args.wallets, args.fills_per_wallet) as info:
        bench = Bench(info, dlt_python)
        bench.warm_up()
        work: dict[str, Callable[[], Result]] = {
            "tap": bench.tap,
            "el": bench.el,
            "job": bench.job,
            "dlt": bench.dlt,
        }
        if args.no_dlt:
            del work["dlt"], steps["dlt"]
        for n in range(args.rounds):
            for name, step in work.items():
                result = step()
                if result.fills != total:
                    sys.exit(f"bench: {name} loaded {result.fills:,} fills, expected {total:,}")
                steps[name].append(result)
                print(
                    f"bench: round {n + 1}/{args.rounds} {name:<4} {result.seconds:6.1f} s "
                    f"{result.peak_rss_mib:6.0f} MiB",
                    flush=True,
                )
    report(steps, total, args.rounds, load_before, load())


def report(
    steps: dict[str, list[Result]], total: int, rounds: int, before: str, after: str
) -> None:
    """Medians, ratios and peak memory, with the load the machine was under."""

    def seconds(name: str) -> float:
        return statistics.median(r.seconds for r in steps[name])

    def rss(name: str) -> float:
        return statistics.median(r.peak_rss_mib for r in steps[name])

    labels = {
        "tap": "tap-dome alone (records to /dev/null)",
        "el": "meltano run tap-dome target-duckdb",
        "job": "... target-duckdb dbt-duckdb:build (whole job)",
        "dlt": "dlt 1.31 rest_api -> DuckDB (merge)",
    }
    print(f"\n{total:,} fills, median of {rounds} interleaved round(s)")
    print(f"  {'':<48} {'wall s':>7} {'fills/s':>9} {'peak RSS':>9}")
    for name in steps:
        print(
            f"  {labels[name]:<48} {seconds(name):7.1f} {total / seconds(name):9,.0f} "
            f"{rss(name):6.0f} MiB"
        )
    print(f"  extract-load vs tap alone: {seconds('tap') / seconds('el'):.2f}x (target >= 0.8)")
    if "dlt" in steps:
        ratio = seconds("dlt") / seconds("job")
        print(f"  whole job vs dlt: tap-dome {ratio:.2f}x as fast (target >= 1.5)")
    print(f"  peak summed RSS of the whole job: {rss('job'):.0f} MiB (target <= 400)")
    print("  each process's own peak RSS (medians, MiB; they need not peak at the same moment):")
    for name in steps:
        print(f"    {name:<4} {_per_process(steps[name])}")
    print(f"  load average before: {before}; after: {after}")


if __name__ == "__main__":
    main()
