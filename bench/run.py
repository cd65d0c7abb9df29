"""Throughput benchmark: tap-dome against the shipped simulator, side by side in one run.

Prints medians of repeated runs and ratios against a raw client measured in the same run,
so a noisy shared machine moves numerator and denominator together. Traffic stays on
127.0.0.1. Usage: `make bench` (or `.venv/bin/python bench/run.py --repeats 3`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import requests

API_KEY = "bench-key"


@contextmanager
def simulator(*extra: str) -> Iterator[dict[str, Any]]:
    """The simulator CLI in its own process (it must not share this process's GIL)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dome_simulator",
            "--port",
            "0",
            "--api-key",
            API_KEY,
            *extra,
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


def raw_client(info: dict[str, Any], *, emit: bool) -> int:
    """Fetch every page with one session and parse it; optionally write a RECORD per fill."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {API_KEY}"
    fills = 0
    sink = open(os.devnull, "wb")  # noqa: SIM115 - closed below
    for wallet in info["wallets"]:
        params: dict[str, Any] = {
            "user": wallet,
            "limit": 1000,
            "start_time": 1577836800,
            "end_time": int(time.time()),
        }
        while True:
            page = orjson.loads(
                session.get(info["url"] + "/polymarket/orders", params=params).content
            )
            fills += len(page["orders"])
            if emit:
                for fill in page["orders"]:
                    message = {"type": "RECORD", "stream": "orders", "record": fill}
                    sink.write(orjson.dumps(message) + b"\n")
            key = page["pagination"].get("pagination_key")
            if not page["pagination"].get("has_more") or not key:
                break
            params["pagination_key"] = key
    sink.close()
    return fills


def run_tap(info: dict[str, Any], workdir: Path, **settings: Any) -> tuple[int, float]:
    """The real tap CLI, output to /dev/null; returns (fills, requests per second)."""
    fills, rate, _ = run_tap_emitting(info, workdir, sink=False, **settings)
    return fills, rate


def run_tap_emitting(
    info: dict[str, Any], workdir: Path, *, sink: bool = True, **settings: Any
) -> tuple[int, float, float]:
    """The tap CLI; returns (fills, requests per second, seconds from its first fill to its
    last on stdout), the last 0 with `sink=False` (output to /dev/null, not timed).

    With `sink`, stdout is read here in 1 MiB blocks (the tap writes a block at a time), so
    the reading costs little beside the tap; the emission time leaves start-up out.
    """
    config = {
        "api_key": API_KEY,
        "api_url": info["url"],
        "wallets": info["wallets"],
        "start_date": "2020-01-01T00:00:00Z",
        "progress_interval": 3600,
        **settings,
    }
    path = workdir / "config.json"
    path.write_text(json.dumps(config))
    command = [sys.executable, "-m", "tap_dome.tap", "--config", str(path)]
    emitting = 0.0
    with tempfile.TemporaryFile("w+") as errors:
        if sink:
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
            assert proc.stdout is not None
            first = last = 0.0
            fd = proc.stdout.fileno()
            while block := os.read(fd, 1 << 20):
                if b'{"type":"RECORD","stream":"orders"' in block:
                    last = time.perf_counter()
                    first = first or last
            if proc.wait() != 0:
                raise subprocess.CalledProcessError(proc.returncode, command)
            emitting = last - first
        else:
            with open(os.devnull, "w") as devnull:
                subprocess.run(command, stdout=devnull, stderr=errors, check=True)
        errors.seek(0)
        line = next(line for line in errors.read().splitlines() if "orders done: " in line)
    fills = int(line.split("fills ")[1].split(" ")[0].replace(",", ""))
    rate = float(line.split("requests ")[1].split("(")[1].split("/s")[0])
    return fills, rate, emitting


def run_pipeline(info: dict[str, Any], workdir: Path) -> int:
    """`meltano run tap-dome target-duckdb` into a fresh DuckDB file; returns rows loaded."""
    import duckdb

    root = Path(__file__).resolve().parents[1]
    database = workdir / "bench.duckdb"
    database.unlink(missing_ok=True)
    env = {
        **os.environ,
        "TAP_DOME_API_URL": info["url"],
        "TAP_DOME_API_KEY": API_KEY,
        "TAP_DOME_WALLETS": json.dumps(info["wallets"]),
        "TAP_DOME_REQUESTS_PER_SECOND": "10000",
        "TAP_DOME_REQUESTS_PER_10_SECONDS": "100000",
        "DOME_DUCKDB_PATH": str(database),
    }
    subprocess.run(
        [
            str(root / ".venv/bin/meltano"),
            "run",
            "--state-id-suffix",
            f"bench{time.time_ns()}",
            "--full-refresh",
            "tap-dome",
            "target-duckdb",
        ],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    with duckdb.connect(str(database), read_only=True) as con:
        row = con.sql("select count(*) from tap_dome.orders").fetchone()
    return int(row[0]) if row else 0


def timed(repeats: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """Median wall seconds of `repeats` runs, and the last result."""
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fills-per-wallet", type=int, default=50_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tap-dome-bench-"))
    rows: list[tuple[str, float, str]] = []

    bench = (
        "--profile",
        "bench",
        "--bench-wallets",
        "4",
        "--bench-fills",
        str(args.fills_per_wallet),
    )
    with simulator(*bench) as info:
        fast: dict[str, Any] = {
            "requests_per_second": 10_000,
            "requests_per_10_seconds": 100_000,
            "max_concurrency": 4,
        }
        # Round by round, so that a machine that speeds up or slows down moves all alike.
        times: dict[str, list[float]] = {}
        fills = tap_fills = 0
        for _ in range(args.repeats):
            seconds, fills = timed(1, lambda: raw_client(info, emit=False))
            times.setdefault("raw", []).append(seconds)
            seconds, _ = timed(1, lambda: raw_client(info, emit=True))
            times.setdefault("emit", []).append(seconds)
            seconds, (tap_fills, _) = timed(1, lambda: run_tap(info, workdir, **fast))
            times.setdefault("tap", []).append(seconds)
            emitted, _, emitting = run_tap_emitting(info, workdir, **fast)
            times.setdefault("tap emitting", []).append(emitting)
            alone, _, emitting = run_tap_emitting(info, workdir, **fast, encode_processes=0)
            times.setdefault("tap emitting alone", []).append(emitting)
            assert tap_fills == emitted == alone == fills, (tap_fills, emitted, alone, fills)
        raw_s, emit_s, tap_s, emit_tap_s, alone_s = (
            statistics.median(times[name])
            for name in ("raw", "emit", "tap", "tap emitting", "tap emitting alone")
        )
        pipe_s, loaded = timed(args.repeats, lambda: run_pipeline(info, workdir))
        assert loaded == fills, (loaded, fills)
        raw_rate = fills / raw_s
        rows.append(("raw client: fetch + parse pages", fills / raw_s, "1.00"))
        rows.append(
            (
                "raw client + one RECORD line per fill",
                fills / emit_s,
                f"{raw_s / emit_s:.2f}",
            )
        )
        rows.append(
            (
                "tap-dome (whole CLI run, start-up included)",
                tap_fills / tap_s,
                f"{(tap_fills / tap_s) / raw_rate:.2f}",
            )
        )
        rows.append(
            (
                "tap-dome, first fill to last on stdout",
                tap_fills / emit_tap_s,
                f"{(tap_fills / emit_tap_s) / raw_rate:.2f}",
            )
        )
        rows.append(
            (
                "the same, encode_processes=0 (no helper processes)",
                tap_fills / alone_s,
                f"{(tap_fills / alone_s) / raw_rate:.2f}",
            )
        )
        rows.append(
            (
                "meltano run tap-dome target-duckdb",
                loaded / pipe_s,
                f"{(loaded / pipe_s) / raw_rate:.2f}",
            )
        )
    print(
        f"\nRecords: {fills:,} fills, {args.repeats} runs each, "
        "medians (fills/s; ratio to raw client)"
    )
    for name, rate, ratio in rows:
        print(f"  {name:<52} {rate:>10,.0f}   {ratio}")
    print(f"  whole extract-load vs tap-dome alone: {tap_s / pipe_s:.2f} of the tap's speed")

    # Concurrency under network latency: the same budget, one request at a time vs eight.
    latency = (
        "--profile",
        "bench",
        "--bench-wallets",
        "24",
        "--bench-fills",
        "2500",
        "--latency-ms",
        "100-300",
        "--rate-limit",
        "dev",
    )
    with simulator(*latency) as info:
        tier = {"api_tier": "dev", "page_size": 1000}
        one_s, (one_fills, one_rate) = timed(
            1, lambda: run_tap(info, workdir, max_concurrency=1, **tier)
        )
        many_s, (many_fills, many_rate) = timed(
            1, lambda: run_tap(info, workdir, max_concurrency=8, **tier)
        )
        assert one_fills == many_fills
    print(
        "\nLatency 100-300 ms per request, Dev tier budget (100/s, 500 per 10 s), "
        f"{one_fills:,} fills in 24 wallets"
    )
    print(f"  max_concurrency=1: {one_rate:6.1f} requests/s, {one_s:5.1f} s")
    print(f"  max_concurrency=8: {many_rate:6.1f} requests/s, {many_s:5.1f} s")
    print(f"  speed-up: {one_s / many_s:.2f}x (requests/s ratio {many_rate / one_rate:.2f})")


if __name__ == "__main__":
    main()
