"""The ``dbt-duckdb`` utility's executable: dbt itself, with an absolute ``DBT_DUCKDB_PATH``.

dbt runs in the dbt project directory (``DBT_PROJECT_DIR``, as meltano-dbt-ext's
``dbt_invoker`` runs it), so a relative DuckDB path would not be the loader's file, and Meltano
drops the ``path`` setting when ``$DOME_DUCKDB_PATH`` is unset (it has no ``${VAR:-default}``).
The rule here is the loader wrapper's (plugins/loaders/target-duckdb-dome): ``DBT_DUCKDB_PATH``,
else ``DOME_DUCKDB_PATH``, else ``output/dome.duckdb``; a relative path is taken from the
Meltano project root.

It execs ``dbt`` directly rather than through ``dbt_invoker``: that wrapper only re-logs dbt's
lines (Meltano logs them anyway) and, unless told to skip it, runs ``dbt clean`` and
``dbt deps`` first, which would delete the kept manifest that partial parsing needs. One
Python interpreter fewer per run: ~0.2 s of start-up and ~30 MiB.
"""

from __future__ import annotations

import os
import sys


def duckdb_path(env: dict[str, str]) -> str:
    """The DuckDB file dbt should use, from the environment Meltano gives the plugin."""
    path = env.get("DBT_DUCKDB_PATH") or env.get("DOME_DUCKDB_PATH") or "output/dome.duckdb"
    return _absolute(path, env)


def project_dir(env: dict[str, str]) -> str:
    """The dbt project directory: ``DBT_PROJECT_DIR``, else ``transform`` in the project."""
    return _absolute(env.get("DBT_PROJECT_DIR") or "transform", env)


def _absolute(path: str, env: dict[str, str]) -> str:
    if path == ":memory:" or ":" in path.split("/")[0] or os.path.isabs(path):
        return path
    return os.path.join(env.get("MELTANO_PROJECT_ROOT") or os.getcwd(), path)


def main() -> None:
    """Set ``DBT_DUCKDB_PATH``, enter the dbt project and exec ``dbt`` from this virtualenv."""
    env = dict(os.environ)
    os.environ["DBT_DUCKDB_PATH"] = duckdb_path(env)
    os.chdir(project_dir(env))
    dbt = os.path.join(os.path.dirname(sys.executable), "dbt")
    os.execv(dbt, [dbt, *sys.argv[1:]])
