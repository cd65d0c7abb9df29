"""The end-to-end harness: one isolated deployment of the project against the simulator.

Each pipeline gets its own DuckDB file and its own Meltano system directory
(``MELTANO_SYS_DIR_ROOT``: system database, hence state, run files and logs), whose plugin
virtualenvs are symlinks to the project's ``.meltano/`` installed by scripts/bootstrap.sh. So
tests neither see each other's state nor touch the developer's ``.meltano/meltano.db`` or
``output/``. The fixtures that build pipelines live in tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from dome_simulator import API_FIELDS, DomeSimulator

ROOT = Path(__file__).resolve().parents[1]
MELTANO = ROOT / ".venv" / "bin" / "meltano"
PLUGIN_KINDS = ("extractors", "loaders", "utilities")
STATE_ID = "dev:tap-dome-to-target-duckdb"
PIPELINE = ("tap-dome", "target-duckdb", "dbt-duckdb:build")
#: ``make_pipeline(dataset, wallets=None, **simulator_options)``: the conftest fixture's type.
MakePipeline = Callable[..., "Pipeline"]
#: ``small_standard(large=E2E_LARGE)``: every edge case of the standard profile, sized for
#: page_size 50 (~1,100 fills), quick enough to load through Meltano several times.
E2E_LARGE = 600

# API_FIELDS: fill fields the API serves (and the raw table keeps under these names); fct_orders may
# rename some (FCT_NAMES): a field is compared under the first of its names that fct_orders has.
FCT_NAMES = {
    "user": ("user", "user_address"),
    "taker": ("taker", "taker_address"),
    "title": ("title", "market_title"),
    "timestamp": ("timestamp", "filled_at_unix"),
}
CORE_FIELDS = ("side", "price", "shares", "tx_hash", "log_index", "timestamp", "user")


def _norm(value: Any) -> Any:
    """target-duckdb writes "" as NULL; numbers may come back as int, float or Decimal."""
    if value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return float(value) if value != int(value) else int(value)
    return value


class Pipeline:
    """One isolated deployment of the project: its DuckDB file, its state, its wallet list.

    Subclasses for another warehouse set the three class attributes below.
    """

    meltano_options: tuple[str, ...] = ()  # e.g. ("--environment=bqtest",)
    pipeline: tuple[str, ...] = PIPELINE
    state_id: str = STATE_ID

    def __init__(self, workdir: Path, sim: DomeSimulator, wallets: list[str]) -> None:
        self.workdir = workdir
        self.sim = sim
        self.wallets = list(wallets)
        self.duckdb_path = workdir / "warehouse.duckdb"
        self.sys_dir = workdir / "meltano"
        self.sys_dir.mkdir()
        for kind in PLUGIN_KINDS:
            (self.sys_dir / kind).symlink_to(ROOT / ".meltano" / kind, target_is_directory=True)
        self.env_overrides: dict[str, str] = {}
        self.runs = 0

    # ------------------------------------------------------------------ running
    def env(self) -> dict[str, str]:
        """The environment of every command: inherited, minus anything that could leak in."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TAP_DOME_", "TARGET_DUCKDB_", "DBT_", "MELTANO_", "DOME_"))
        }
        env.update(
            MELTANO_SYS_DIR_ROOT=str(self.sys_dir),
            MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
            TAP_DOME_API_URL=self.sim.base_url,
            TAP_DOME_API_KEY=self.sim.api_key,
            TAP_DOME_WALLETS=json.dumps(self.wallets),
            TAP_DOME_PAGE_SIZE="50",
            TAP_DOME_REQUESTS_PER_SECOND="500",
            TAP_DOME_REQUESTS_PER_10_SECONDS="5000",
            TAP_DOME_MAX_CONCURRENCY="4",
            TAP_DOME_PROGRESS_INTERVAL="5",
            DOME_DUCKDB_PATH=str(self.duckdb_path),
            TARGET_DUCKDB_BATCH_SIZE_ROWS="200",
            # dbt writes its manifest and logs here, not into the shared transform/ folder.
            DBT_TARGET_PATH=str(self.workdir / "dbt-target"),
            DBT_LOG_PATH=str(self.workdir / "dbt-logs"),
        )
        env.update(self.env_overrides)
        return env

    def _log(self, name: str) -> Path:
        self.runs += 1
        return self.workdir / f"{self.runs:02d}-{name}.log"

    def meltano(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``meltano ARGS`` to the end; output goes to a log file (shown on failure)."""
        log = self._log(args[0])
        with log.open("w") as out:
            proc = subprocess.run(
                [str(MELTANO), *self.meltano_options, *args],
                cwd=ROOT,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        proc.stdout = log.read_text()
        return proc

    def run(self, *options: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``meltano run [OPTIONS] <the pipeline>``; must exit 0."""
        proc = self.meltano("run", *options, *self.pipeline, timeout=timeout)
        assert proc.returncode == 0, (
            f"meltano run failed ({proc.returncode}):\n{proc.stdout[-6000:]}"
        )
        return proc

    def start(self, *options: str) -> tuple[subprocess.Popen[bytes], Path]:
        """Start ``meltano run`` in its own process group (so it can be killed whole)."""
        log = self._log("run-bg")
        out = log.open("w")
        proc = subprocess.Popen(
            [str(MELTANO), *self.meltano_options, "run", *options, *self.pipeline],
            cwd=ROOT,
            env=self.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        return proc, log

    def state(self) -> dict[str, Any]:
        """``meltano state get`` of the pipeline's state id, parsed."""
        proc = self.meltano("state", "get", self.state_id, timeout=120)
        assert proc.returncode == 0, proc.stdout[-3000:]
        # The JSON is the last non-log line(s) of the output.
        text = proc.stdout
        start = text.find("{")
        assert start >= 0, f"no state in:\n{text[-3000:]}"
        state, _ = json.JSONDecoder().raw_decode(text[start:])
        assert isinstance(state, dict), f"the state is not an object: {state!r}"
        return state

    # ------------------------------------------------------------------- reading
    def connect(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.duckdb_path), read_only=True)

    def fct_schema(self, con: duckdb.DuckDBPyConnection) -> str:
        rows = con.execute(
            "select table_schema from information_schema.tables where table_name = 'fct_orders'"
        ).fetchall()
        assert len(rows) == 1, f"expected one fct_orders table, found schemas {rows}"
        return str(rows[0][0])

    def fct(self) -> dict[str, dict[str, Any]]:
        """fct_orders as {order_id: row}; asserts order_id is unique there."""
        with self.connect() as con:
            rel = con.sql(f'select * from "{self.fct_schema(con)}".fct_orders')
            cols = rel.columns
            rows = [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]
        ids = [r["order_id"] for r in rows]
        assert len(ids) == len(set(ids)), "fct_orders holds duplicate order_ids"
        return {r["order_id"]: r for r in rows}

    def raw_ids(self) -> list[str]:
        """Every order_id in the raw table, duplicates included."""
        if not self.duckdb_path.exists():
            return []
        with self.connect() as con:
            present = con.execute(
                "select count(*) from information_schema.tables "
                "where table_schema = 'tap_dome' and table_name = 'orders'"
            ).fetchone()
            if not present or not present[0]:
                return []
            return [r[0] for r in con.execute("select order_id from tap_dome.orders").fetchall()]

    def truth(self) -> dict[str, dict[str, Any]]:
        """The simulator's visible fills of this pipeline's wallets, as {order_id: row}."""
        out: dict[str, dict[str, Any]] = {}
        for wallet in self.wallets:
            for row in self.sim.truth(wallet):
                out[row["order_id"]] = {**row, "wallet": wallet}
        return out

    def assert_exact(self) -> dict[str, dict[str, Any]]:
        """fct_orders == the simulator's truth: same order_ids, same values, no duplicates."""
        truth = self.truth()
        fct = self.fct()
        missing = sorted(set(truth) - set(fct))
        extra = sorted(set(fct) - set(truth))
        assert not missing + extra, (
            f"fct_orders differs from the simulator: {len(missing)} missing "
            f"(e.g. {missing[:3]}), {len(extra)} unexpected (e.g. {extra[:3]}); "
            f"fct={len(fct)} truth={len(truth)}"
        )
        fct_columns = set(next(iter(fct.values()), {}))
        pairs = [("wallet", "wallet")] if "wallet" in fct_columns else []
        for field in API_FIELDS:
            name = next((n for n in FCT_NAMES.get(field, (field,)) if n in fct_columns), None)
            if name is not None:
                pairs.append((field, name))
        compared = {field for field, _ in pairs}
        assert fct, "fct_orders is empty"
        assert {"wallet", *CORE_FIELDS} <= compared, (
            f"fct_orders lacks columns to compare: has {sorted(fct_columns)}"
        )
        diffs = [
            (oid, col, truth[oid].get(field), fct[oid][col])
            for oid in truth
            for field, col in pairs
            if _norm(truth[oid].get(field)) != _norm(fct[oid][col])
        ]
        assert not diffs, (
            f"{len(diffs)} values differ, e.g. (order_id, column, api, fct): {diffs[:5]}"
        )
        return fct


# Loader metadata: changes whenever a fill is read again; everything else must not.
LOAD_COLUMNS = {"extracted_at", "batched_at", "_sdc_extracted_at", "_sdc_batched_at"}


def content(fct: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """fct_orders rows without the loader's metadata columns."""
    return {
        oid: {k: v for k, v in row.items() if k not in LOAD_COLUMNS} for oid, row in fct.items()
    }


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process of the group is still there (Linux /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def bookmarks(state: dict[str, Any]) -> dict[str, object]:
    """Wallet -> replication_key_value, from a Singer state with one partition per wallet."""
    partitions = state.get("singer_state", state).get("bookmarks", {}).get("orders", {})
    return {
        p["context"]["wallet"]: p.get("replication_key_value")
        for p in partitions.get("partitions", [])
    }
