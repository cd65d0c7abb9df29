"""The ``dbt-duckdb`` utility's executable: dbt itself, with an absolute ``DBT_DUCKDB_PATH``.

dbt runs in the dbt project directory (``DBT_PROJECT_DIR``, as meltano-dbt-ext's
``dbt_invoker`` runs it), so a relative DuckDB path would not be the loader's file, and Meltano
drops the ``path`` setting when ``$DOME_DUCKDB_PATH`` is unset (it has no ``${VAR:-default}``).
The rule here is the loader wrapper's (plugins/loaders/target-duckdb-dome): ``DBT_DUCKDB_PATH``,
else ``DOME_DUCKDB_PATH``, else ``output/dome.duckdb``; a relative path is taken from the
Meltano project root.

It runs dbt itself, in this process, rather than through ``dbt_invoker``: that wrapper only
re-logs dbt's lines (Meltano logs them anyway) and, unless told to skip it, runs ``dbt clean``
and ``dbt deps`` first, which would delete the kept manifest that partial parsing needs. One
Python interpreter fewer per run: ~0.2 s of start-up and ~30 MiB.

And in this process dbt's locks can be plain ones (`thread_locks_only`): no multiprocessing
resource tracker, a second Python process of ~12 MiB for the whole run.
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


def thread_locks_only() -> None:
    """Give dbt a ``fork`` multiprocessing context instead of its hard-coded ``spawn`` one.

    dbt-core (1.12.0, ``dbt/mp_context.py``: a private module-level ``_MP_CONTEXT``) takes its
    locks (the manifest's, each adapter connection manager's) from a ``spawn`` context, and
    only uses them between threads: it starts no processes. A ``spawn`` semaphore registers with
    multiprocessing's resource tracker, which starts a second Python process for the run
    (~12 MiB, beside dbt's ~315 at 200,000 fills); a ``fork`` one is unlinked at once and needs
    none. The locks behave the same between threads. tests/test_dbt_locks.py fails when a dbt
    upgrade moves the context or starts the tracker again.
    """
    import multiprocessing
    from multiprocessing.context import BaseContext

    from dbt import mp_context

    if not isinstance(getattr(mp_context, "_MP_CONTEXT", None), BaseContext):
        return  # a dbt that keeps its context elsewhere: leave it as it is
    mp_context._MP_CONTEXT = multiprocessing.get_context("fork")  # type: ignore[assignment]


def main() -> None:
    """Set ``DBT_DUCKDB_PATH``, enter the dbt project and run dbt's CLI in this process."""
    env = dict(os.environ)
    os.environ["DBT_DUCKDB_PATH"] = duckdb_path(env)
    os.chdir(project_dir(env))
    thread_locks_only()
    from dbt.cli.main import cli

    sys.argv[0] = "dbt"
    sys.exit(cli())
