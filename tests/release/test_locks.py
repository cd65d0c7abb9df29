"""Every virtualenv is locked, the locks are current, and what is installed is what is locked."""

from __future__ import annotations

import importlib.util
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.release.artifacts import ROOT, UV

# Installed by the venv module or by bootstrap before the lock applies; not dependencies.
BOOTSTRAP_TOOLS = {"pip", "setuptools", "wheel", "uv"}


def lock_module() -> ModuleType:
    """scripts/lock.py as a module (a fresh copy each call: tests patch it)."""
    spec = importlib.util.spec_from_file_location("scripts_lock", ROOT / "scripts" / "lock.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def pins(lock: Path) -> dict[str, str]:
    """name -> version of every pin in a lock that applies to this Python and platform."""
    found: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        if not line[:1].isalnum():
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate():
            (spec,) = req.specifier
            assert spec.operator == "==", line
            found[canonicalize_name(req.name)] = spec.version
    return found


def frozen(python: Path) -> dict[str, str]:
    """name -> version of what a virtualenv has from an index (editable local packages left out)."""
    out = subprocess.run(
        [str(UV), "pip", "freeze", "--python", str(python)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            found[canonicalize_name(name)] = version
    return found


def test_locks_are_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lock.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_a_changed_input_makes_its_lock_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = lock_module()
    assert lock.problems() == []
    requirements = tmp_path / "requirements-dev.txt"
    text = (ROOT / "requirements-dev.txt").read_text()
    requirements.write_text(text.replace("pytest==9.2.0", "pytest==9.1.0"))
    monkeypatch.setattr(lock, "ROOT_REQUIREMENTS", requirements)
    assert lock.problems() == [
        "requirements-dev.lock: stale, its inputs (requirements-dev.txt) changed"
    ]


def test_a_plugin_without_its_constraint_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lock = lock_module()
    real = list(lock.plugins())
    path, first = real[0]
    unconstrained = {**first, "pip_url": first["pip_url"].split(" --constraint")[0]}
    monkeypatch.setattr(lock, "plugins", lambda: iter([(path, unconstrained), *real[1:]]))
    wanted = f"--constraint ${{MELTANO_PROJECT_ROOT}}/plugins/locks/{first['name']}.txt"
    assert lock.problems() == [
        f"{path.relative_to(ROOT)}: the pip_url of {first['name']} must end with {wanted}"
    ]


def test_every_environment_has_a_lock_of_exact_pins() -> None:
    lock = lock_module()
    envs = lock.environments()
    names = {e.name for e in envs}
    assert "root .venv" in names
    assert "BigQuery test harness" in names
    plugins = {p["name"] for _, p in lock.plugins()}
    assert {"tap-dome", "target-duckdb", "dbt-duckdb"} <= plugins
    assert {f"Meltano plugin {p}" for p in plugins} <= names
    for env in envs:
        assert pins(env.lock), env.lock
    # dbt needs a pre-release parser (see notes): it is locked, not left to resolve.
    dbt = pins(ROOT / "plugins" / "locks" / "dbt-duckdb.txt")
    assert dbt["dbt-core-experimental-parser"] == "2.0.0a4"
    assert dbt["dbt-core"] == "1.12.0"


def test_bootstrap_installs_the_root_with_its_lock() -> None:
    script = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert "-r requirements-dev.txt \\\n    --constraint requirements-dev.lock" in script
    for _, plugin in lock_module().plugins():
        words = shlex.split(plugin["pip_url"])
        assert words[-2:] == [
            "--constraint",
            f"${{MELTANO_PROJECT_ROOT}}/plugins/locks/{plugin['name']}.txt",
        ]


def _venvs() -> list[tuple[str, Path, Path]]:
    lock = lock_module()
    found = [("root", ROOT / "requirements-dev.lock", ROOT / ".venv" / "bin" / "python")]
    for path, plugin in lock.plugins():
        kind = next(
            k
            for k in lock.PLUGIN_TYPES
            if plugin in (lock.yaml.safe_load(path.read_text())["plugins"].get(k) or [])
        )
        venv = ROOT / ".meltano" / kind / plugin["name"] / "venv" / "bin" / "python"
        found.append((plugin["name"], ROOT / "plugins" / "locks" / f"{plugin['name']}.txt", venv))
    return found


@pytest.mark.parametrize(("name", "lock", "python"), _venvs(), ids=[v[0] for v in _venvs()])
def test_installed_environment_is_what_its_lock_says(
    name: str, lock: Path, python: Path, installed: None
) -> None:
    """bootstrap.sh installed every package at its locked version, and nothing unlocked."""
    assert python.exists(), f"{name}: no virtualenv at {python} (run make setup)"
    want = pins(lock)
    have = frozen(python)
    assert {k: v for k, v in have.items() if want.get(k) != v and k not in BOOTSTRAP_TOOLS} == {}
