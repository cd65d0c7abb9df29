"""Lock every virtualenv of the project with `uv pip compile`, or check the locks are current.

Environments (each gets one lock file of exact pins, used as ``--constraint`` when installing):

- the root ``.venv``: ``requirements-dev.txt`` (its ``-e ./pkg[extra]`` lines included) ->
  ``requirements-dev.lock``;
- every Meltano plugin with a ``pip_url`` in meltano.yml and the files its ``include_paths``
  name -> ``plugins/locks/<plugin>.txt``; the ``pip_url`` must end with
  ``--constraint ${MELTANO_PROJECT_ROOT}/plugins/locks/<plugin>.txt`` (Meltano expands the
  variable and passes the words to ``uv pip install``);
- the BigQuery test harness: ``tests/bigquery/requirements-emulators.in`` -> ``.txt``.

Local packages (``./tap-dome``, ``./plugins/...``) are installed from the tree, so a lock holds
their dependencies, read from their pyproject.toml, not the packages themselves.

Each lock starts with ``# input-sha256: <hash>`` of what it was compiled from (the requirement
lines after local packages are expanded, and the Python version). ``--check`` recomputes the
hashes without the network: a lock whose inputs changed, a missing or orphan lock, or a
``pip_url`` without its constraint is an error naming the file and the fix (``make lock``).

Usage: ``python scripts/lock.py [--check] [--upgrade]``.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
UV = ROOT / ".venv" / "bin" / "uv"
ROOT_REQUIREMENTS = ROOT / "requirements-dev.txt"
ROOT_LOCK = ROOT / "requirements-dev.lock"
PLUGIN_LOCKS = ROOT / "plugins" / "locks"
HARNESS_INPUT = ROOT / "tests" / "bigquery" / "requirements-emulators.in"
HARNESS_LOCK = ROOT / "tests" / "bigquery" / "requirements-emulators.txt"
DEFAULT_PYTHON = "3.11"
CONSTRAINT = "--constraint ${{MELTANO_PROJECT_ROOT}}/plugins/locks/{name}.txt"
PLUGIN_TYPES = (
    "extractors",
    "loaders",
    "transformers",
    "utilities",
    "mappers",
    "orchestrators",
)
SKIP = {"node_modules", "build", "dist", "output", "logs", "__pycache__"}
HASH_LINE = re.compile(r"^# input-sha256: ([0-9a-f]{64})$", re.MULTILINE)


class LockError(Exception):
    """An input the locks cannot be made from (named in the message)."""


@dataclass(frozen=True)
class Environment:
    """One virtualenv: what goes into it and where its lock is."""

    name: str
    lock: Path
    requirements: tuple[str, ...]
    python: str
    source: str  # where the inputs come from, for the lock's header

    def input_hash(self) -> str:
        blob = json.dumps({"python": self.python, "requirements": self.requirements})
        return hashlib.sha256(blob.encode()).hexdigest()


# ------------------------------------------------------------------------- local packages


def _pyproject(folder: Path) -> dict[str, Any]:
    import tomllib  # here: ruff sorts it differently for Python 3.10 and 3.11 targets

    path = folder / "pyproject.toml"
    if not path.exists():
        raise LockError(f"{folder.relative_to(ROOT)}: a local package needs a pyproject.toml")
    with path.open("rb") as f:
        return dict(tomllib.load(f)["project"])


def local_packages() -> dict[str, Path]:
    """Name (normalised) -> folder of every package in the tree (hidden folders skipped)."""
    found = {}
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in SKIP]
        if "pyproject.toml" in files:
            import tomllib  # here: ruff sorts it differently for Python 3.10 and 3.11 targets

            with (Path(folder) / "pyproject.toml").open("rb") as f:
                project = tomllib.load(f).get("project")
            if project:  # the root pyproject.toml holds tool settings only
                found[_normal(str(project["name"]))] = Path(folder)
    return found


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(line: str) -> str:
    found = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    if not found:
        raise LockError(f"cannot read a package name from requirement {line!r}")
    return _normal(found.group(1))


def _split_extras(spec: str) -> tuple[str, list[str]]:
    found = re.fullmatch(r"(.*?)(?:\[([^\]]*)\])?", spec)
    assert found is not None
    extras = [e.strip() for e in (found.group(2) or "").split(",") if e.strip()]
    return found.group(1), extras


def expand_local(folder: Path, extras: list[str], seen: set[str] | None = None) -> list[str]:
    """The PyPI requirements of a local package (with extras), local dependencies expanded."""
    seen = set() if seen is None else seen
    project = _pyproject(folder)
    name = _normal(str(project["name"]))
    if name in seen:
        return []
    seen.add(name)
    lines = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            where = folder.relative_to(ROOT)
            raise LockError(f"{where}: no optional dependency group [{extra}]")
        lines += optional[extra]
    locals_ = local_packages()
    out: list[str] = []
    for line in lines:
        dep = _requirement_name(line)
        if dep == name:  # a self-reference such as tap-dome[dev] -> tap-dome[other]
            continue
        if dep in locals_:
            _, dep_extras = _split_extras(line.split(";")[0].strip())
            out += expand_local(locals_[dep], dep_extras, seen)
        else:
            out.append(line)
    return out


# --------------------------------------------------------------------------- environments


def _words_to_requirements(words: list[str], where: str) -> list[str]:
    """pip_url / requirements-file words -> requirement lines (constraints dropped)."""
    out: list[str] = []
    items = iter(words)
    for word in items:
        if word in ("-c", "--constraint"):
            next(items, None)
            continue
        if word in ("-e", "--editable"):
            word = next(items, "")
        if word.startswith(("./", "../", "/")):
            path, extras = _split_extras(word)
            out += expand_local((ROOT / path).resolve(), extras)
        elif word.startswith("-"):
            raise LockError(f"{where}: option {word!r} is not supported in a locked install")
        else:
            out.append(word)
    return out


def root_environment() -> Environment:
    words: list[str] = []
    for raw in ROOT_REQUIREMENTS.read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if line and not line.startswith("#"):
            words += shlex.split(line)
    requirements = _words_to_requirements(words, ROOT_REQUIREMENTS.name)
    return Environment(
        "root .venv",
        ROOT_LOCK,
        tuple(requirements),
        DEFAULT_PYTHON,
        "requirements-dev.txt",
    )


def meltano_files() -> list[Path]:
    """meltano.yml and the files its include_paths name."""
    main = ROOT / "meltano.yml"
    config = yaml.safe_load(main.read_text()) or {}
    files = [main]
    for pattern in config.get("include_paths", []):
        files += sorted(Path(p) for p in glob.glob(str(ROOT / pattern)))
    return files


def plugins() -> Iterator[tuple[Path, dict[str, Any]]]:
    """(file, plugin) for every plugin with a pip_url."""
    for path in meltano_files():
        config = yaml.safe_load(path.read_text()) or {}
        for kind in PLUGIN_TYPES:
            for plugin in (config.get("plugins") or {}).get(kind, []) or []:
                if plugin.get("pip_url"):
                    yield path, plugin


def plugin_environment(path: Path, plugin: dict[str, Any]) -> Environment:
    name = str(plugin["name"])
    where = f"{path.relative_to(ROOT)}: {name}"
    requirements = _words_to_requirements(shlex.split(str(plugin["pip_url"])), where)
    python = str(plugin.get("python") or "").removeprefix("python") or DEFAULT_PYTHON
    return Environment(
        f"Meltano plugin {name}",
        PLUGIN_LOCKS / f"{name}.txt",
        tuple(requirements),
        python,
        f"the pip_url of {name} in {path.relative_to(ROOT)}",
    )


def harness_environment() -> Environment:
    words = [
        line.split(" #")[0].strip()
        for line in HARNESS_INPUT.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return Environment(
        "BigQuery test harness",
        HARNESS_LOCK,
        tuple(_words_to_requirements(words, HARNESS_INPUT.name)),
        DEFAULT_PYTHON,
        str(HARNESS_INPUT.relative_to(ROOT)),
    )


def environments() -> list[Environment]:
    found = [root_environment()]
    found += [plugin_environment(path, plugin) for path, plugin in plugins()]
    found.append(harness_environment())
    names = [e.lock for e in found]
    duplicates = {str(n.relative_to(ROOT)) for n in names if names.count(n) > 1}
    if duplicates:
        raise LockError(f"two plugins would share a lock file: {sorted(duplicates)}")
    return found


# ------------------------------------------------------------------------------ lock, check


def header(env: Environment) -> str:
    return (
        f"# Lock of the {env.name}, from {env.source}.\n"
        f"# Generated by `make lock` (scripts/lock.py: uv pip compile --universal "
        f"--python-version {env.python}); do not edit.\n"
        f"# input-sha256: {env.input_hash()}\n"
    )


def compile_lock(env: Environment, upgrade: bool) -> str:
    """The lock file's text: header, then uv's pins (network: PyPI, through the uv cache)."""
    with tempfile.TemporaryDirectory() as tmp:
        stem = env.lock.stem
        source = Path(tmp) / f"{stem}.in"
        source.write_text("\n".join(env.requirements) + "\n")
        command = [
            str(UV),
            "pip",
            "compile",
            "--quiet",
            "--universal",
            "--python-version",
            env.python,
            "--no-header",
            source.name,
        ]
        if upgrade:
            command.append("--upgrade")
        if env.lock.exists() and not upgrade:
            # Keep the pins already chosen where they still fit (uv reads -o as preferences).
            (Path(tmp) / "previous.txt").write_text(env.lock.read_text())
            command += ["--output-file", "previous.txt"]
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LockError(f"uv pip compile for the {env.name} failed:\n{done.stderr}")
        body = (
            (Path(tmp) / "previous.txt").read_text() if "--output-file" in command else done.stdout
        )
    return header(env) + body


def recorded_hash(lock: Path) -> str | None:
    found = HASH_LINE.search(lock.read_text()) if lock.exists() else None
    return found.group(1) if found else None


def problems() -> list[str]:
    """Why the committed locks do not fit their inputs (empty: they do)."""
    found: list[str] = []
    envs = environments()
    for env in envs:
        where = env.lock.relative_to(ROOT)
        recorded = recorded_hash(env.lock)
        if recorded is None:
            found.append(f"{where}: missing (or has no input-sha256 line)")
        elif recorded != env.input_hash():
            found.append(f"{where}: stale, its inputs ({env.source}) changed")
    for path, plugin in plugins():
        wanted = CONSTRAINT.format(name=plugin["name"])
        if not str(plugin["pip_url"]).rstrip().endswith(wanted):
            found.append(
                f"{path.relative_to(ROOT)}: the pip_url of {plugin['name']} must end with {wanted}"
            )
    expected = {e.lock for e in envs}
    found += [
        f"{orphan.relative_to(ROOT)}: no plugin uses this lock any more (remove it)"
        for orphan in sorted(PLUGIN_LOCKS.glob("*.txt"))
        if orphan not in expected
    ]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="offline: are the locks current?")
    parser.add_argument("--upgrade", action="store_true", help="newest versions, not the locked")
    args = parser.parse_args(argv)
    try:
        if args.check:
            found = problems()
            for problem in found:
                print(problem, file=sys.stderr)
            if found:
                print("run `make lock`", file=sys.stderr)
            return 1 if found else 0
        envs = environments()
        PLUGIN_LOCKS.mkdir(parents=True, exist_ok=True)
        for orphan in PLUGIN_LOCKS.glob("*.txt"):
            if orphan not in {e.lock for e in envs}:
                orphan.unlink()
        for env in envs:
            env.lock.write_text(compile_lock(env, args.upgrade))
            print(f"{env.lock.relative_to(ROOT)}: {env.name}")
    except LockError as e:
        print(f"lock: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
