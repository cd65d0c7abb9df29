"""``dbt_invoker`` (meltano-dbt-ext) with ``DBT_DUCKDB_PATH`` always set to an absolute path.

meltano-dbt-ext runs dbt with ``transform/`` as its working directory, so a relative DuckDB
path would not be the loader's file, and Meltano drops the ``path`` setting when
``$DOME_DUCKDB_PATH`` is unset (it has no ``${VAR:-default}``). The rule here is the loader
wrapper's (plugins/loaders/target-duckdb-dome): ``DBT_DUCKDB_PATH``, else ``DOME_DUCKDB_PATH``,
else ``output/dome.duckdb``; a relative path is taken from the Meltano project root.
"""

from __future__ import annotations

import os
import sys


def duckdb_path(env: dict[str, str]) -> str:
    """The DuckDB file dbt should use, from the environment Meltano gives the plugin."""
    root = env.get("MELTANO_PROJECT_ROOT") or os.getcwd()
    path = env.get("DBT_DUCKDB_PATH") or env.get("DOME_DUCKDB_PATH") or "output/dome.duckdb"
    if path == ":memory:" or ":" in path.split("/")[0] or os.path.isabs(path):
        return path
    return os.path.join(root, path)


def main() -> None:
    """Set ``DBT_DUCKDB_PATH`` and exec ``dbt_invoker`` from the same virtualenv."""
    os.environ["DBT_DUCKDB_PATH"] = duckdb_path(dict(os.environ))
    invoker = os.path.join(os.path.dirname(sys.executable), "dbt_invoker")
    os.execv(invoker, [invoker, *sys.argv[1:]])
