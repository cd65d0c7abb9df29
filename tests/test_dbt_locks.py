"""dbt, as the dbt-duckdb utility runs it, takes thread locks only: no resource tracker process.

dbt-core hard-codes a ``spawn`` multiprocessing context for locks it only uses between threads;
each such lock starts multiprocessing's resource tracker, a second Python process (~12 MiB) for
the whole run. ``dbt_duckdb_dome.thread_locks_only`` hands dbt a ``fork`` context instead. These
tests run the dbt utility's own virtualenv, so a dbt upgrade that moves the context (and brings
the tracker back) fails here.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DBT_VENV = ROOT / ".meltano/utilities/dbt-duckdb/venv/bin"

# dbt's own lock calls (the manifest's Lock, a connection manager's RLock), then whether the
# resource tracker was started: its pid, or None.
LOCKS = (
    "import multiprocessing.resource_tracker as tracker, sys\n"
    "import dbt_duckdb_dome\n"
    "if sys.argv[1] == 'patched': dbt_duckdb_dome.thread_locks_only()\n"
    "from dbt.mp_context import get_mp_context\n"
    "context = get_mp_context()\n"
    "lock, rlock = context.Lock(), context.RLock()\n"
    "with lock, rlock: pass\n"
    "print(tracker._resource_tracker._pid)\n"
)


@pytest.mark.parametrize(("mode", "tracker_started"), [("patched", False), ("as-shipped", True)])
def test_dbt_locks_start_no_resource_tracker(mode: str, tracker_started: bool) -> None:
    done = subprocess.run(
        [str(DBT_VENV / "python"), "-c", LOCKS, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert (done.stdout.strip() != "None") is tracker_started, done.stdout


def _children(pid: int) -> set[str]:
    """The command lines of the processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == pid:
                found.add((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError, IndexError):
            continue
    return found


def _run_watching(command: list[str], env: dict[str, str], cwd: Path) -> tuple[int, set[str]]:
    """Run ``command`` and collect its children's command lines, polled every 10 ms."""
    seen: set[str] = set()
    proc = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while proc.poll() is None:
        seen |= _children(proc.pid)
        time.sleep(0.01)
    return proc.returncode, seen


@pytest.mark.e2e
def test_dbt_debug_through_the_utility_has_no_second_process(tmp_path: Path) -> None:
    """`dbt debug` opens the DuckDB connection, as a build does; the control is dbt itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBT_", "DOME_"))}
    env.update(
        MELTANO_PROJECT_ROOT=str(ROOT),
        DBT_PROJECT_DIR=str(ROOT / "transform"),
        DBT_PROFILES_DIR=str(ROOT / "transform" / "profiles"),
        DBT_TARGET_PATH=str(tmp_path / "target"),
        DBT_LOG_PATH=str(tmp_path / "logs"),
        DOME_DUCKDB_PATH=str(tmp_path / "debug.duckdb"),
    )
    code, children = _run_watching([str(DBT_VENV / "dbt-duckdb-dome"), "debug"], env, ROOT)
    assert code == 0
    assert not [c for c in children if "resource_tracker" in c], children

    env["DBT_DUCKDB_PATH"] = env["DOME_DUCKDB_PATH"]
    code, children = _run_watching([str(DBT_VENV / "dbt"), "debug"], env, ROOT / "transform")
    assert code == 0
    assert [c for c in children if "resource_tracker" in c], children
