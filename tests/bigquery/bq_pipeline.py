"""The BigQuery pipeline on the emulators: ``BqPipeline`` and what its tests compare with.

Like tests/pipeline.py's ``Pipeline``, but the pipeline is
``meltano --environment=bqtest run tap-dome target-bigquery dbt-bigquery:build`` with its own
raw and dbt datasets, its own Meltano system directory (so its own state) and the plugin
virtualenvs that scripts/bootstrap.sh installed under ``.meltano/``. The fixtures that start
the emulators and build pipelines live in tests/bigquery/conftest.py.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

from dome_simulator import DomeSimulator
from tests.bigquery import bq_harness
from tests.pipeline import ROOT, Pipeline

ENVIRONMENT = "bqtest"
BQ_PIPELINE = ("tap-dome", "target-bigquery", "dbt-bigquery:build")
BQ_STATE_ID = f"{ENVIRONMENT}:tap-dome-to-target-bigquery"
BUCKET = "tap-dome-staging"
LOADER_VENV = ROOT / ".meltano" / "loaders" / "target-bigquery" / "venv"


def norm(value: Any) -> Any:
    """One representation per value, whichever warehouse or client it came from."""
    if value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return round(value.timestamp(), 6)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int | float | Decimal):
        f = float(value)
        return int(f) if f == int(f) else round(f, 9)
    return value


class BqPipeline(Pipeline):
    """One isolated deployment on the emulators: raw dataset, dbt dataset, Meltano state."""

    meltano_options = (f"--environment={ENVIRONMENT}",)
    pipeline = BQ_PIPELINE
    state_id = BQ_STATE_ID

    def __init__(
        self,
        workdir: Path,
        sim: DomeSimulator,
        wallets: list[str],
        stack: bq_harness.Stack,
    ) -> None:
        super().__init__(workdir, sim, wallets)
        self.bq = stack
        tag = re.sub(r"[^a-z0-9_]", "_", workdir.name.lower())[-40:]
        self.raw_dataset = f"raw_{tag}_{os.getpid()}"
        self.dbt_dataset = f"dbt_{tag}_{os.getpid()}"

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in super().env().items()
            if not k.startswith(("TARGET_BIGQUERY_", "GOOGLE_", "BIGQUERY_", "STORAGE_EMULATOR"))
        }
        env.update(self.bq.env())
        env.update(
            MELTANO_ENVIRONMENT=ENVIRONMENT,
            TARGET_BIGQUERY_PROJECT=self.bq.project,
            TARGET_BIGQUERY_DATASET=self.raw_dataset,
            TARGET_BIGQUERY_LOCATION=self.bq.location,
            TARGET_BIGQUERY_BUCKET=BUCKET,
            TARGET_BIGQUERY_CREDENTIALS_PATH=str(self.bq.credentials),
            DBT_BIGQUERY_DATASET=self.dbt_dataset,
            # The tap's BATCH files (bqtest's batch_config), one folder per deployment.
            TAP_DOME_BATCH_ROOT=str(self.workdir / "tap-batches"),
            DBT_BIGQUERY_API_ENDPOINT=self.bq.bq_url,
            DBT_SEND_ANONYMOUS_USAGE_STATS="false",
            DO_NOT_TRACK="1",
        )
        env.update(self.env_overrides)
        return env

    def run_fails(self, *options: str) -> subprocess.CompletedProcess[str]:
        proc = self.meltano("run", *options, *self.pipeline, timeout=300)
        assert proc.returncode != 0, f"meltano run should have failed:\n{proc.stdout[-4000:]}"
        return proc

    def stored_state_rows(self) -> list[dict[str, Any]]:
        """The rows of Meltano's state table for this pipeline (read directly, no Meltano)."""
        import sqlite3

        db = self.sys_dir / "meltano.db"
        if not db.exists():
            return []
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            tables = {r[0] for r in con.execute("select name from sqlite_master")}
            if "state" not in tables:
                return []
            con.row_factory = sqlite3.Row
            return [
                dict(r)
                for r in con.execute("select * from state where state_id = ?", (BQ_STATE_ID,))
            ]
        except sqlite3.OperationalError:
            return []
        finally:
            con.close()

    # ------------------------------------------------------------------ reading BigQuery
    def fct(self) -> dict[str, dict[str, Any]]:
        rows = self.bq.query(f"select * from `{self.bq.project}.{self.dbt_dataset}.fct_orders`")
        ids = [r["order_id"] for r in rows]
        assert len(ids) == len(set(ids)), "fct_orders holds duplicate order_ids"
        return {r["order_id"]: r for r in rows}

    def raw_rows(self, columns: str = "*") -> list[dict[str, Any]]:
        if not self.bq.table_exists(self.raw_dataset, "orders"):
            return []
        return self.bq.query(f"select {columns} from `{self.bq.project}.{self.raw_dataset}.orders`")

    def raw_ids(self) -> list[str]:
        return [r["order_id"] for r in self.raw_rows("order_id")]

    def raw_columns(self) -> dict[str, str]:
        return {k: v.upper() for k, v in self.bq.table_columns(self.raw_dataset, "orders").items()}

    def staged_files(self) -> list[str]:
        return self.bq.list_objects(BUCKET, f"target_bigquery/{self.raw_dataset}/orders/")

    def dbt_sql(self, kind: str, model: str = "fct_orders") -> str:
        """The SQL dbt wrote for a model in the last run: kind is "compiled" or "run"."""
        # dbt's artifacts live under the pipeline's Meltano directory (the utility's
        # target_path: $MELTANO_SYS_DIR_ROOT/dbt/dbt-bigquery/target).
        target = self.sys_dir / "dbt" / "dbt-bigquery" / "target"
        path = target / kind / "tap_dome" / "models" / "marts" / f"{model}.sql"
        assert path.exists(), f"dbt wrote no {kind} SQL for {model} at {path}"
        return path.read_text()
