"""dbt keeps its parsed project between Meltano runs, and still sees a changed model.

The `dbt-duckdb` utility writes dbt's artifacts under the Meltano system directory
(meltano/duckdb.meltano.yml: target_path, log_path), so every run after the first reads the
kept partial_parse.msgpack instead of parsing the whole project again. This runs the real
plugin through Meltano on a copy of transform/ and edits a model in between.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.pipeline import MELTANO, PLUGIN_KINDS, ROOT

pytestmark = pytest.mark.e2e

FULL_PARSE = "Unable to do partial parsing"
PROBE = "-- partial-parse probe"


def test_kept_manifest_is_reused_and_a_changed_model_reparsed(
    installed: None, tmp_path: Path
) -> None:
    sys_dir = tmp_path / "meltano"
    sys_dir.mkdir()
    for kind in PLUGIN_KINDS:
        (sys_dir / kind).symlink_to(ROOT / ".meltano" / kind, target_is_directory=True)
    project = tmp_path / "transform"
    shutil.copytree(
        ROOT / "transform", project, ignore=shutil.ignore_patterns("target", "logs", ".user.yml")
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DBT_", "MELTANO_", "DOME_", "TARGET_DUCKDB_"))
    }
    env.update(
        MELTANO_SYS_DIR_ROOT=str(sys_dir),
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        DBT_DUCKDB_PROJECT_DIR=str(project),
        DBT_DUCKDB_PROFILES_DIR=str(project / "profiles"),
        DOME_DUCKDB_PATH=str(tmp_path / "warehouse.duckdb"),
    )
    artifacts = sys_dir / "dbt" / "dbt-duckdb"
    log = artifacts / "logs" / "dbt.log"

    def parse() -> str:
        """`meltano invoke dbt-duckdb parse`; returns Meltano's output and dbt.log's new lines."""
        before = log.stat().st_size if log.exists() else 0
        done = subprocess.run(
            [str(MELTANO), "invoke", "--no-install", "dbt-duckdb", "parse"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        with log.open() as f:
            f.seek(before)
            return done.stdout + done.stderr + f.read()

    first = parse()
    assert f"{FULL_PARSE} because saved manifest not found" in first
    assert (artifacts / "target" / "partial_parse.msgpack").is_file()
    assert not (project / "target").exists(), "artifacts belong under the Meltano system dir"

    second = parse()
    assert FULL_PARSE not in second
    assert "Partial parsing enabled, no changes found" in second

    model = project / "models" / "marts" / "dim_wallets.sql"
    model.write_text(model.read_text() + f"\n{PROBE}\n")
    third = parse()
    assert FULL_PARSE not in third
    assert "0 files deleted, 0 files added, 1 files changed" in third
    manifest = json.loads((artifacts / "target" / "manifest.json").read_text())
    assert PROBE in manifest["nodes"]["model.tap_dome.dim_wallets"]["raw_code"]
