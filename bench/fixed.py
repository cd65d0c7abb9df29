"""Fixed costs of the whole job: an hourly-sized run with each start-up saving switched off.

An hourly run loads a few thousand fills, so what it costs is mostly start-up: Meltano, the
tap's discovery, dbt's parse. This runs the whole DuckDB job (`meltano run tap-dome
target-duckdb dbt-duckdb:build`) on a small simulator (4 wallets x 500 fills by default),
as the project ships it and with one saving undone per variant (through environment
overrides, the project files stay as they are), interleaved round by round; it prints
median wall time, CPU time of the whole process tree and peak summed RSS.

Usage: `.venv/bin/python bench/fixed.py [--rounds 5]`.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

from job import ROOT, WORK, Bench, simulator
from proctree import run_measured

# name -> environment overrides that undo one saving (shipped: none).
VARIANTS: dict[str, dict[str, str]] = {
    "as shipped": {},
    "catalog discovery every run": {"TAP_DOME__CATALOG": ""},
    "no kept dbt manifest": {"DBT_DUCKDB_TARGET_PATH": "{fresh}"},
    "Meltano buffer 100 MiB": {"MELTANO_ELT_BUFFER_SIZE": "104857600"},
    "DuckDB defaults in dbt": {
        "DBT_DUCKDB_MEMORY_LIMIT": "19GB",  # 80% of this machine's RAM, DuckDB's default
        "DBT_DUCKDB_THREADS": "2",
        "DBT_DUCKDB_TARGET_PATH": str(WORK / "fixed-duckdb-defaults" / "target"),
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fills-per-wallet", type=int, default=500)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in VARIANTS}
    with simulator(4, args.fills_per_wallet) as info:
        bench = Bench(info, None)
        for n in range(args.rounds + 1):  # round 0 warms every variant up, untimed
            for name, overrides in VARIANTS.items():
                folder = bench.fresh("fixed")
                env = bench.meltano_env(bench.warehouse("fixed"))
                env.update({k: v.format(fresh=folder / "target") for k, v in overrides.items()})
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                log = folder / "log.txt"
                with log.open("wb") as out:
                    measured = run_measured(
                        [
                            str(ROOT / ".venv/bin/meltano"),
                            "run",
                            "--state-id-suffix",
                            f"fixed{time.time_ns()}",
                            "--full-refresh",
                            "tap-dome",
                            "target-duckdb",
                            "dbt-duckdb:build",
                        ],
                        env=env,
                        cwd=ROOT,
                        stdout=out,
                        stderr=out,
                    )
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                if measured.returncode != 0:
                    sys.exit(f"bench: {name} failed ({measured.returncode}); see {log}")
                cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
                if n:
                    results[name].append((measured.seconds, cpu, measured.peak_rss_mib))
    print(f"\nWhole job, {4 * args.fills_per_wallet:,} fills, median of {args.rounds} rounds")
    print(f"  {'':<30} {'wall s':>7} {'CPU s':>7} {'peak RSS':>9}")
    for name, rows in results.items():
        wall, cpu, rss = (statistics.median(r[i] for r in rows) for i in range(3))
        print(f"  {name:<30} {wall:7.2f} {cpu:7.2f} {rss:6.0f} MiB")


if __name__ == "__main__":
    main()
