"""Where the DuckDB file lives: every place that applies the rule must agree.

The rule: ``$DOME_DUCKDB_PATH``, absolute or relative to the project root, default
``output/dome.duckdb`` under the project root. Meltano cannot hold it alone (it has no
``${VAR:-default}``, a config value naming an unset variable is dropped with no fallback to the
setting's ``value``, and a project-level ``env:`` overrides the shell's value), so it is applied
by the loader wrapper (``target_duckdb_dome.resolve_path``), dbt's executable
(``dbt_duckdb_dome.duckdb_path``), the dbt profile's fallback for dbt run by hand from
transform/, and scripts/run_job.sh. These tests fail when one of them drifts from the others.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LOADER_PYTHON = ROOT / ".meltano/loaders/target-duckdb/venv/bin/python"
DBT_PYTHON = ROOT / ".meltano/utilities/dbt-duckdb/venv/bin/python"
DEFAULT = "output/dome.duckdb"


def _loader_path(project: Path, dome_duckdb_path: str | None) -> str:
    """The file target-duckdb-dome opens, given the config Meltano writes for it."""
    # meltano/duckdb.meltano.yml: `path: $DOME_DUCKDB_PATH`, dropped when the variable is unset.
    config = {} if dome_duckdb_path is None else {"path": dome_duckdb_path}
    code = (
        "import json, sys; from target_duckdb_dome import resolve_path; "
        "c = json.loads(sys.argv[1]); resolve_path(c); print(c['path'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "DOME_DUCKDB_PATH"}
    env["MELTANO_PROJECT_ROOT"] = str(project)
    done = subprocess.run(
        [str(LOADER_PYTHON), "-c", code, json.dumps(config)],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _dbt_path(project: Path, dome_duckdb_path: str | None) -> str:
    """The file dbt-duckdb-dome hands dbt, given the environment Meltano gives it."""
    env = {k: v for k, v in os.environ.items() if k not in ("DOME_DUCKDB_PATH", "DBT_DUCKDB_PATH")}
    env["MELTANO_PROJECT_ROOT"] = str(project)
    if dome_duckdb_path is not None:
        # The utility's `path` setting (env DBT_DUCKDB_PATH) is `$DOME_DUCKDB_PATH`.
        env.update(DOME_DUCKDB_PATH=dome_duckdb_path, DBT_DUCKDB_PATH=dome_duckdb_path)
    code = (
        "import os; from dbt_duckdb_dome import duckdb_path; print(duckdb_path(dict(os.environ)))"
    )
    done = subprocess.run(
        [str(DBT_PYTHON), "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.parametrize("kind", ["unset", "relative", "absolute"])
def test_loader_and_dbt_open_the_same_file(tmp_path: Path, kind: str) -> None:
    project = tmp_path / "project"
    given, expected = {
        "unset": (None, project / DEFAULT),
        "relative": ("warehouse/x.duckdb", project / "warehouse/x.duckdb"),
        "absolute": (str(tmp_path / "elsewhere/x.duckdb"), tmp_path / "elsewhere/x.duckdb"),
    }[kind]
    project.mkdir()
    assert _loader_path(project, given) == str(expected)
    assert _dbt_path(project, given) == str(expected)


def test_profile_fallback_is_the_default() -> None:
    """dbt run by hand from transform/ (transform/README.md) finds the same default file."""
    profiles = yaml.safe_load((ROOT / "transform/profiles/profiles.yml").read_text())
    path = profiles["tap_dome"]["outputs"]["duckdb"]["path"]
    found = re.fullmatch(r"\{\{ env_var\('DBT_DUCKDB_PATH', '([^']+)'\) \}\}", path)
    assert found, path
    assert (ROOT / "transform" / found[1]).resolve() == ROOT / DEFAULT


def test_run_job_default_is_the_default() -> None:
    """`make run` against the real API loads into the same default file."""
    script = (ROOT / "scripts/run_job.sh").read_text()
    defaults = re.findall(r'DOME_DUCKDB_PATH="\$\{DOME_DUCKDB_PATH:-\$ROOT/([^}]+)\}"', script)
    # The real API's default, then the simulator demo's own file (kept apart on purpose).
    assert defaults == [DEFAULT, "output/dome-demo.duckdb"], defaults
