"""Rate benchmark: does the tap use its API tier under real latency, whatever the wallet mix?

For each tier x wallet mix x page size, a simulator enforcing the tier's two budgets with
network latency serves a seeded dataset (its wallets trade up to a thousand markets between
them, as a real wallet list does), and the real tap CLI reads it (records to /dev/null), every
stream selected. Per case it prints the requests sent, the time from the first to the last
request, the best schedule the two budgets allow for that many requests (each request at
the earliest moment both sliding windows permit), their ratio, the 429s, the most
requests in any 1 s and 10 s window (counted by the simulator), the shortest time in
which the server saw one request more than each budget (below 1 s or 10 s is a 429), and
the tap's and the simulator's CPU time (the simulator's while it serves): a case whose
CPU time nears its elapsed time is bound by the tap's per-record cost, not by its
scheduling, and on two cores, CPU times that add up to twice the elapsed time are bound by
the machine. Requests that all fit in one second's budget have a best schedule of 0 s and
no ratio (nan): their elapsed time is the figure. Beside the ratio, the "ceiling": the best
schedule over the time the tap's own limiter (its slack and spacing) needs for that many
requests, all ready at once: the most any fetching schedule of the tap could reach. Last,
the tap's peak RSS on a 50,000-fill and a 200,000-fill wallet (medians of three
interleaved rounds).

With `--bare` (as `make bench` runs it), each run of a case is preceded by the bare client
(bare.py) on a simulator of its own with the same dataset: it only fetches and parses pages,
every request known beforehand, so its ratio is what a client with no schedule to find and no
record to write reaches on this machine, and `tap/bare` is the share of it the tap reaches.

With `--latency-before-count`, the simulator sleeps each request's latency before it counts
it (a network in front of the server's counter, not after it): requests that left evenly
spaced arrive unevenly, and the limiter's slack and its widening on 429 are what is tried.
Traffic stays on 127.0.0.1.

Usage: `make bench` runs this after bench/run.py; alone: `.venv/bin/python bench/rate.py
[--quick] [--repeats N] [--tiers dev,pro] [--mixes tiny] [--pages 100] [--max-fills 200000]
[--latency-before-count] [--bare]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from dome_simulator import Dataset, DomeSimulator, WalletSpec
from tap_dome.ratelimit import RateLimiter

API_KEY = "bench-key"
DAY = 86_400
TIERS: dict[str, tuple[int, int]] = {"free": (10, 100), "dev": (100, 500), "pro": (300, 3000)}
# Requests per case, per tier: the best schedule for that many takes about 12-15 s.
REQUESTS = {"free": 130, "dev": 900, "pro": 3900}
QUICK_REQUESTS = {"free": 60, "dev": 600, "pro": 1800}
# The huge mix is the million-fill wallet, cut to what the case's requests hold (a
# Free case reads 13,000 fills in its ~13 s). The mid-size wallet stays at most MID_FILLS:
# the simulator generates about 55,000 fills/s, and the mid-size mixes are about the hand-over
# to the small wallets, not about volume.
MAX_FILLS = 1_000_000
MID_FILLS = 100_000
MIXES = ("mid+small", "tiny", "huge")
LATENCY_MS = (100, 300)
# Markets the wallets of a case trade between them, beside the simulator's 16 templates: a
# real wallet list trades thousands, and the markets stream reads them 100 per request.
MARKETS = 1000
# Peak RSS of one wallet of each size: memory must not grow with the wallet.
MEMORY_FILLS = (50_000, 200_000)
MEMORY_ROUNDS = 3


# ----------------------------------------------------------------------------- the server


class TimedSimulator(DomeSimulator):
    """The simulator, also noting when each API request arrived (for the elapsed time)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._arrivals: list[float] = []
        self._arrivals_lock = threading.Lock()

    def _count(self, wallet: str | None, route: str | None) -> None:
        with self._arrivals_lock:
            self._arrivals.append(time.monotonic())
        super()._count(wallet, route)

    def stats(self) -> dict[str, Any]:
        snapshot = super().stats()
        with self._arrivals_lock:
            arrivals = list(self._arrivals)
        snapshot["elapsed"] = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
        snapshot["arrivals"] = [t - arrivals[0] for t in arrivals]
        return snapshot


def serve(spec: dict[str, Any]) -> None:
    """Child process: serve `spec`'s dataset until SIGTERM; print one JSON banner line."""
    specs = [WalletSpec(count, span=span) for count, span in spec["wallets"]]
    latency = (spec["latency_ms"][0] / 1000, spec["latency_ms"][1] / 1000)
    before = spec.get("before_count", False)
    sim = TimedSimulator(
        seed=spec["seed"],
        api_key=API_KEY,
        dataset=Dataset.custom(
            specs, seed=spec["seed"], markets=spec.get("markets", 0), now=spec.get("now")
        ),
        rate_limit=tuple(spec["rate_limit"]) if spec["rate_limit"] else None,
        latency=(0.0, 0.0) if before else latency,
    )
    if before:  # on the way in: requests are counted unevenly, however evenly they left
        sim.set_faults(arrival_latency=latency)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with sim:
        fills = sum(spec.fills for spec in specs)
        banner = {"url": sim.base_url, "control": sim.control_url, "fills": fills}
        print(json.dumps({**banner, "wallets": sim.wallets}), flush=True)
        stop.wait()


@contextmanager
def simulator(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A simulator in its own process (it must not share the bench's or the tap's GIL)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    info: dict[str, Any] = {}
    ready = 0.0
    try:
        info.update(json.loads(proc.stdout.readline()))
        ready = process_cpu(proc.pid)  # the dataset's set-up, before the tap starts
        yield info
    finally:
        proc.terminate()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        info["cpu"] = usage.ru_utime + usage.ru_stime - ready  # while serving the tap


def process_cpu(pid: int) -> float:
    """A live process's CPU seconds so far (Linux; elsewhere 0)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    """One measurement: a tier, a wallet mix, a page size."""

    tier: str
    mix: str
    page: int
    requests: int  # about how many requests the mix needs
    max_fills: int = MAX_FILLS  # the huge wallet's most fills

    def wallets(self) -> list[tuple[int, float]]:
        """(fills, span in seconds) per wallet: the mix's shape at this case's scale."""
        n, page = self.requests, self.page
        if self.mix == "tiny":  # thousands of wallets with a handful of fills: one page each
            return [(i % 4, 30.0 * DAY) for i in range(n)]
        if self.mix == "huge":  # one wallet far bigger than any buffer: cut, and cut again
            return [(min(n * page, self.max_fills), 3.0 * 365 * DAY)]
        # One mid-size wallet (half the requests) and small wallets of one page each.
        mid = min(n * page // 2, MID_FILLS)
        small = max(1, n - mid // page)
        return [(mid, 365.0 * DAY)] + [(2 + i % 29, 60.0 * DAY) for i in range(small)]

    @property
    def name(self) -> str:
        return f"{self.tier:<4} {self.mix:<9} page {self.page:<4}"


def best_schedule(requests: int, budgets: tuple[int, int]) -> float:
    """When the last of `requests` leaves if each goes at the earliest moment both sliding
    windows, (t - 1, t] and (t - 10, t], still have room (the first at t = 0)."""
    per_second, per_10s = budgets
    times: list[float] = []
    for i in range(requests):
        at = times[-1] if times else 0.0
        if i >= per_second:
            at = max(at, times[i - per_second] + 1.0)
        if i >= per_10s:
            at = max(at, times[i - per_10s] + 10.0)
        times.append(at)
    return times[-1] if times else 0.0


def limiter_schedule(requests: int, budgets: tuple[int, int]) -> float:
    """When the last of `requests` leaves the tap's own rate limiter if every one is ready
    at t = 0 (its slack and spacing: ratelimit.py), on a simulated clock: best_schedule
    over this is the most any fetching schedule of the tap can reach (its "ceiling")."""
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    limiter = RateLimiter([(1.0, budgets[0]), (10.0, budgets[1])], lambda: clock[0], sleep)
    for _ in range(requests):
        limiter.acquire()
    return clock[0]


def tightest(arrivals: list[float], limit: int) -> float:
    """The shortest time any `limit` + 1 consecutive arrivals took: under the budget's
    window, the server saw one request too many (with 0.1 s of slack, about 1.1 or 10.1
    is what the limiter aims for when the budget is the bottleneck)."""
    spans = [arrivals[i + limit] - arrivals[i] for i in range(len(arrivals) - limit)]
    return min(spans, default=float("inf"))


def run_tap(spec: dict[str, Any], settings: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Serve `spec`'s dataset, run the tap CLI against it once; the simulator's stats and
    the tap's wall time, CPU time and peak RSS."""
    with simulator(spec) as info:
        wallets_file = workdir / "wallets.txt"
        wallets_file.write_text("\n".join(info["wallets"]) + "\n")
        config = {
            "api_key": API_KEY,
            "api_url": info["url"],
            "wallets_file": str(wallets_file),
            "start_date": "2015-01-01T00:00:00Z",
            "progress_interval": 3600,
            **settings,
        }
        config_path = workdir / "config.json"
        config_path.write_text(json.dumps(config))
        started = time.perf_counter()
        with open(os.devnull, "wb") as sink, open(workdir / "stderr.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tap_dome.tap", "--config", str(config_path)],
                stdout=sink,
                stderr=log,
            )
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        stderr = (workdir / "stderr.log").read_text(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"the tap failed:\n{stderr[-3000:]}")
        stats = requests.get(info["control"] + "/stats", timeout=10).json()
    done = re.findall(r"\| orders done: .*?fills ([\d,]+)", stderr)
    fills = int(done[-1].replace(",", "")) if done else None
    if fills is not None and fills != info["fills"]:
        raise RuntimeError(f"the tap emitted {fills} fills of {info['fills']}")
    return {
        "stats": stats,
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "sim_cpu": info["cpu"],
        "rss_mib": usage.ru_maxrss / 1024,
        "fills": info["fills"],
    }


def run_case(
    case: Case, workdir: Path, extra: dict[str, Any], seed: int, *, before_count: bool = False
) -> dict[str, Any]:
    """One run of a case: its numbers against the best schedule; `before_count`: the
    latency lies in front of the server's counter (see the simulator's arrival_latency)."""
    spec = {
        "wallets": case.wallets(),
        "seed": seed,
        "rate_limit": TIERS[case.tier],
        "latency_ms": LATENCY_MS,
        "before_count": before_count,
        "markets": MARKETS,
    }
    settings = {"api_tier": case.tier, "page_size": case.page, **extra}
    run = run_tap(spec, settings, workdir)
    stats = run["stats"]
    sent = stats["requests"]
    best = best_schedule(sent, TIERS[case.tier])
    elapsed = stats["elapsed"]
    per_second, per_10s = TIERS[case.tier]
    ceiling = limiter_schedule(sent, TIERS[case.tier])
    return {
        "gap_1s": tightest(stats["arrivals"], per_second),
        "gap_10s": tightest(stats["arrivals"], per_10s),
        "requests": sent,
        "elapsed": elapsed,
        "best": best,
        # Requests that all fit in one second's budget have a best schedule of 0 s: no ratio
        # (the elapsed time is the figure then).
        "ratio": best / elapsed if best > 0 and elapsed > 0 else float("nan"),
        # The most this tap's limiter allows for that many requests (limiter_schedule).
        "ceiling": best / ceiling if best > 0 and ceiling > 0 else float("nan"),
        "429s": stats["by_status"].get("429", 0),
        "max_1s": stats["max_in_1s"],
        "max_10s": stats["max_in_10s"],
        "wall": run["wall"],
        "cpu": run["cpu"],
        "sim_cpu": run["sim_cpu"],
        "rss_mib": run["rss_mib"],
        "fills": run["fills"],
    }


def run_bare_case(case: Case, seed: int) -> dict[str, Any]:
    """The bare client (bare.py) on the same case, on a simulator of its own: its ratio is
    what fetching and parsing alone reach on this machine."""
    spec = {
        "wallets": case.wallets(),
        "seed": seed,
        "rate_limit": TIERS[case.tier],
        "latency_ms": LATENCY_MS,
        "markets": MARKETS,
        "now": float(int(time.time())),  # the same fills in the simulator as in the slices
    }
    with simulator(spec) as info:
        job = {
            "spec": spec,
            "url": info["url"],
            "api_key": API_KEY,
            "budgets": TIERS[case.tier],
            "page": case.page,
        }
        out = subprocess.run(
            [sys.executable, str(Path(__file__).parent / "bare.py"), json.dumps(job)],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"the bare client failed:\n{out.stderr[-3000:]}")
        read = json.loads(out.stdout)
        stats = requests.get(info["control"] + "/stats", timeout=10).json()
    if read["fills"] != read["expected"]:
        raise RuntimeError(f"the bare client read {read['fills']} fills of {read['expected']}")
    best = best_schedule(stats["requests"], TIERS[case.tier])
    elapsed = stats["elapsed"]
    return {
        "bare": best / elapsed if best > 0 and elapsed > 0 else float("nan"),
        "bare_cpu": read["cpu"],
        "bare_requests": stats["requests"],
        "bare_429s": read["429s"],
    }


def run_memory(fills: int, workdir: Path, extra: dict[str, Any]) -> float:
    """Peak RSS (MiB) of the tap reading one wallet of `fills` fills as fast as it can.

    No rate limit and no latency: the fetching outruns the emitting, so the buffer is as
    full as the scheduler lets it be, the worst case for memory.
    """
    spec = {"wallets": [(fills, 365 * DAY)], "seed": 1, "rate_limit": None, "latency_ms": (0, 0)}
    settings = {"requests_per_second": 10_000, "requests_per_10_seconds": 100_000, **extra}
    return float(run_tap(spec, settings, workdir)["rss_mib"])


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per number, the median over repeats (the 429s and window maxima: the worst)."""

    def pick(key: str) -> Any:
        values = [run[key] for run in runs]
        if key.endswith("429s") or key in ("max_1s", "max_10s"):
            return max(values)
        if key.startswith("gap"):
            return min(values)
        return statistics.median(values)

    return {key: pick(key) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="smaller cases (about 2 min)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per case (medians)")
    parser.add_argument("--tiers", help="comma-separated (default: all; --quick: dev)")
    parser.add_argument("--mixes", default=",".join(MIXES))
    parser.add_argument("--pages", default="100,1000")
    parser.add_argument("--skip-memory", action="store_true", help="no peak-RSS comparison")
    parser.add_argument(
        "--bare",
        action="store_true",
        help="also run the bare client (bare.py) on each case, interleaved with the tap",
    )
    parser.add_argument(
        "--max-fills",
        type=int,
        default=MAX_FILLS,
        help=f"the huge wallet's most fills (default {MAX_FILLS:,})",
    )
    parser.add_argument(
        "--latency-before-count",
        action="store_true",
        help="the simulator sleeps the latency before it counts a request, not after",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="a tap setting on top of the defaults, e.g. max_concurrency=64",
    )
    args = parser.parse_args()
    if args.serve:
        serve(json.loads(args.serve))
        return
    extra = {}
    for item in args.setting:
        name, _, value = item.partition("=")
        extra[name] = json.loads(value)
    sizes = QUICK_REQUESTS if args.quick else REQUESTS
    tiers = args.tiers.split(",") if args.tiers else ["dev"] if args.quick else list(TIERS)
    cases = [
        Case(tier, mix, int(page), sizes[tier], args.max_fills)
        for tier in tiers
        for mix in args.mixes.split(",")
        for page in args.pages.split(",")
    ]
    workdir = Path(tempfile.mkdtemp(prefix="tap-dome-rate-"))
    settings = ", ".join(f"{k}={v}" for k, v in extra.items()) or "defaults"
    where = " before the server counts" if args.latency_before_count else ""
    print(
        f"Requests sent vs the best schedule of the tier's two budgets; latency "
        f"{LATENCY_MS[0]}-{LATENCY_MS[1]} ms{where}; "
        f"tap settings: api_tier, page_size, {settings}; "
        f"{args.repeats} run(s) per case (medians; 429s, window maxima and gaps: the worst)"
    )
    header = (
        f"{'case':<25} {'fills':>8} {'requests':>8} {'elapsed':>8} {'best':>6} {'ratio':>6} "
        f"{'ceiling':>7} "
        f"{'429s':>5} {'max 1s':>6} {'max 10s':>7} {'gap 1s':>6} {'gap 10s':>7} {'wall':>6} "
        f"{'cpu':>6} {'sim cpu':>7} {'rss MiB':>7}"
        + (f" {'bare':>5} {'bare cpu':>8} {'429s':>5} {'tap/bare':>8}" if args.bare else "")
    )
    print(header, flush=True)
    for case in cases:
        runs = []
        for i in range(args.repeats):
            ceiling = run_bare_case(case, seed=7 + i) if args.bare else {}
            tap = run_case(case, workdir, extra, seed=7 + i, before_count=args.latency_before_count)
            runs.append({**tap, **ceiling})
        row = median_row(runs)
        against = (
            f" {row['bare']:>5.2f} {row['bare_cpu']:>7.1f}s {row['bare_429s']:>5} "
            f"{row['ratio'] / row['bare']:>8.2f}"
            if args.bare
            else ""
        )
        budget = TIERS[case.tier]
        print(
            f"{case.name:<25} {row['fills']:>8,} {row['requests']:>8,} "
            f"{row['elapsed']:>7.1f}s {row['best']:>5.1f}s {row['ratio']:>6.2f} "
            f"{row['ceiling']:>7.2f} "
            f"{row['429s']:>5} {row['max_1s']:>3}/{budget[0]:<3}"
            f"{row['max_10s']:>5}/{budget[1]:<4}"
            f"{row['gap_1s']:>6.2f} {row['gap_10s']:>7.2f} "
            f"{row['wall']:>5.1f}s {row['cpu']:>5.1f}s {row['sim_cpu']:>6.1f}s "
            f"{row['rss_mib']:>7.0f}{against}",
            flush=True,
        )
    if args.skip_memory:
        return
    # Peak RSS moves by several MiB run to run: medians of interleaved rounds.
    rounds = max(MEMORY_ROUNDS, args.repeats)
    peaks: dict[int, list[float]] = {fills: [] for fills in MEMORY_FILLS}
    for _ in range(rounds):
        for fills in MEMORY_FILLS:
            peaks[fills].append(run_memory(fills, workdir, extra))
    small, big = (statistics.median(peaks[fills]) for fills in MEMORY_FILLS)
    print(
        f"\nPeak RSS, one wallet read without rate limit (page 1000; medians of {rounds}): "
        f"{MEMORY_FILLS[0]:,} fills {small:.0f} MiB, {MEMORY_FILLS[1]:,} fills {big:.0f} MiB: "
        f"{big / small:.2f}x",
        flush=True,
    )


if __name__ == "__main__":
    main()
