"""A DuckDB warehouse and the dbt that builds transform/ into it, for the dbt test modules.

dbt comes from Meltano's plugin virtualenv (set up by `make test` through bootstrap and
`meltano install`), or from DOME_DBT_BIN; without one the tests skip. DuckDB is driven with
that virtualenv's Python, so the file format always matches dbt's duckdb. Raw tables are
created the way target-duckdb creates them (HUGEINT integers, naive TIMESTAMPs, loader
metadata) by the test that needs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "MELTANO_DBT",
    "MELTANO_DBT_BIGQUERY",
    "PROJECT_DIR",
    "ROOT",
    "DbtResult",
    "Warehouse",
    "adapters",
    "open_warehouse",
]

ROOT = Path(__file__).resolve().parents[1]
PROJECT_DIR = ROOT / "transform"
PROFILES_DIR = PROJECT_DIR / "profiles"
MELTANO_DBT = ROOT / ".meltano/utilities/dbt-duckdb/venv/bin/dbt"
MELTANO_DBT_BIGQUERY = ROOT / ".meltano/utilities/dbt-bigquery/venv/bin/dbt"

DBT_TIMEOUT = 300

DUCKDB_SCRIPT = r"""
import datetime, decimal, json, sys
import duckdb

request = json.load(sys.stdin)
con = duckdb.connect(request["db"])
if request["op"] == "append":
    con.execute(request["ddl"])
    columns = request["columns"]
    quoted = ", ".join('"%s"' % c for c in columns)
    marks = ", ".join("?" for _ in columns)
    con.executemany(
        "insert into %s (%s) values (%s)" % (request["table"], quoted, marks),
        [[row.get(c) for c in columns] for row in request["rows"]],
    )
    print(json.dumps({"ok": True}))
elif request["op"] == "execute":
    con.execute(request["sql"])
    print(json.dumps({"ok": True}))
else:
    cursor = con.execute(request["sql"])
    names = [d[0] for d in cursor.description]
    def plain(value):
        if isinstance(value, (datetime.datetime, datetime.date)):
            return value.isoformat()
        if isinstance(value, decimal.Decimal):
            return int(value) if value == int(value) else float(value)
        return value
    rows = [{n: plain(v) for n, v in zip(names, r)} for r in cursor.fetchall()]
    types = {d[0]: str(d[1]) for d in cursor.description}
    print(json.dumps({"rows": rows, "types": types}))
"""


def _find_dbt() -> Path | None:
    explicit = os.environ.get("DOME_DBT_BIN")
    if explicit:
        return Path(explicit)
    return MELTANO_DBT if MELTANO_DBT.exists() else None


def _venv_python(dbt_bin: Path) -> Path:
    return dbt_bin.parent / "python"


def adapters(dbt_bin: Path) -> set[str]:
    """The dbt adapters (duckdb, bigquery) installed beside ``dbt_bin``."""
    code = (
        "import importlib.util as u;"
        "print(' '.join(a for a in ('duckdb', 'bigquery') if u.find_spec('dbt.adapters.' + a)))"
    )
    out = subprocess.run(
        [str(_venv_python(dbt_bin)), "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


@dataclass(frozen=True)
class DbtResult:
    """One dbt command: its exit code and output."""

    returncode: int
    stdout: str
    stderr: str


@dataclass
class Warehouse:
    """A DuckDB file plus the dbt that builds the project into it."""

    dbt: Path
    db: Path
    workdir: Path

    def duckdb(self, request: dict[str, Any]) -> dict[str, Any]:
        out = subprocess.run(
            [str(_venv_python(self.dbt)), "-c", DUCKDB_SCRIPT],
            input=json.dumps({"db": str(self.db), **request}),
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def append(self, table: str, ddl: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
        """Create ``table`` with ``ddl`` (if needed) and insert ``rows`` (their ``columns``)."""
        request = {"op": "append", "table": table, "ddl": ddl, "columns": columns, "rows": rows}
        self.duckdb(request)

    def execute(self, sql: str) -> None:
        self.duckdb({"op": "execute", "sql": sql})

    def query(self, sql: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.duckdb({"op": "query", "sql": sql})["rows"]
        return rows

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DBT_", "DOME_RAW_", "DOME_COMPLETENESS_", "TARGET_BIGQUERY_"))
        }
        env.update(
            DBT_TARGET="duckdb",
            DBT_DUCKDB_PATH=str(self.db),
            DBT_PROJECT_DIR=str(PROJECT_DIR),
            DBT_PROFILES_DIR=str(PROFILES_DIR),
            DBT_TARGET_PATH=str(self.workdir / "target"),
            DBT_LOG_PATH=str(self.workdir / "logs"),
            DBT_SEND_ANONYMOUS_USAGE_STATS="false",
            DO_NOT_TRACK="1",
            DBT_USE_COLORS="false",
            DBT_VERSION_CHECK="false",
        )
        env.update(extra)
        return env

    def dbt_call(self, *args: str, dbt: Path | None = None, **env: str) -> DbtResult:
        """Run dbt; the caller checks the outcome."""
        started = time.monotonic()
        out = subprocess.run(
            [str(dbt or self.dbt), *args],
            cwd=ROOT,
            env=self.env(**env),
            check=False,
            capture_output=True,
            text=True,
            timeout=DBT_TIMEOUT,
        )
        took = time.monotonic() - started
        print(f"dbt {' '.join(args)}: exit {out.returncode} in {took:.1f}s")
        return DbtResult(out.returncode, out.stdout, out.stderr)

    def dbt_run(self, *args: str, dbt: Path | None = None, **env: str) -> str:
        """Run dbt and require success; returns its output."""
        out = self.dbt_call(*args, dbt=dbt, **env)
        assert out.returncode == 0, f"dbt {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
        return out.stdout


def open_warehouse(tmp_path_factory: pytest.TempPathFactory, name: str = "dbt") -> Warehouse:
    """A fresh warehouse, or a skip when no dbt with the DuckDB adapter is installed."""
    dbt = _find_dbt()
    if dbt is None:
        pytest.skip(
            f"no dbt: {MELTANO_DBT.relative_to(ROOT)} is missing (`make test` installs it "
            "through meltano install) and DOME_DBT_BIN is not set"
        )
    if not dbt.exists():
        pytest.fail(f"DOME_DBT_BIN={dbt} does not exist")
    if "duckdb" not in adapters(dbt):
        pytest.skip(f"{dbt} has no dbt-duckdb adapter")
    workdir = tmp_path_factory.mktemp(name)
    return Warehouse(dbt=dbt, db=workdir / "dome.duckdb", workdir=workdir)
