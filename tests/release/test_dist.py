"""The distributions as PyPI gets them: metadata, long description, and a clean install."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.release.artifacts import (
    API_KEY,
    DISTRIBUTIONS,
    ROOT,
    UV,
    VENV_BIN,
    Dist,
    clean_env,
    records,
)

CHANGELOG = ROOT / "CHANGELOG.md"
URL_LABELS = {"Homepage", "Documentation", "Issues", "Changelog"}


def metadata(dist: Dist) -> Message:
    with zipfile.ZipFile(dist.wheel) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(wheel.read(name).decode())


def pyproject(name: str) -> dict[str, Any]:
    import tomllib  # here: ruff sorts it differently for Python 3.10 and 3.11 targets

    with (DISTRIBUTIONS[name] / "pyproject.toml").open("rb") as f:
        return dict(tomllib.load(f)["project"])


def changelog_versions() -> list[str]:
    """Released versions in CHANGELOG.md, newest first (headings `## [X.Y.Z] - YYYY-MM-DD`)."""
    return re.findall(
        r"^## \[(\d+\.\d+\.\d+[^\]]*)\] - \d{4}-\d{2}-\d{2}$",
        CHANGELOG.read_text(),
        re.MULTILINE,
    )


def test_distributions_pass_twine_check_strict(dists: dict[str, Dist]) -> None:
    files = [str(p) for d in dists.values() for p in (d.sdist, d.wheel)]
    done = subprocess.run(
        [str(VENV_BIN / "twine"), "check", "--strict", *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == len(files)


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_wheel_metadata_is_complete(name: str, dists: dict[str, Dist]) -> None:
    dist = dists[name]
    meta = metadata(dist)
    project = pyproject(name)
    assert meta["Name"] == name
    assert meta["Version"] == dist.version == project["version"]
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    with zipfile.ZipFile(dist.wheel) as wheel:
        license_text = wheel.read(
            f"{name.replace('-', '_')}-{dist.version}.dist-info/licenses/LICENSE"
        )
    assert b"Apache License" in license_text
    assert b"Version 2.0" in license_text
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert set(urls) >= URL_LABELS
    assert all(u.startswith("https://") for u in urls.values())
    # The long description is the package README, rendered as Markdown on PyPI.
    assert meta["Description-Content-Type"] == "text/markdown"
    readme = (DISTRIBUTIONS[name] / "README.md").read_text()
    assert str(meta.get_payload()).strip() == readme.strip()


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_every_supported_python_has_a_classifier(
    name: str, dists: dict[str, Dist], about: dict[str, Any]
) -> None:
    meta = metadata(dists[name])
    classified = {
        c.rsplit(" :: ", 1)[1]
        for c in meta.get_all("Classifier") or []
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    # Requires-Python admits exactly the classified versions, the ones the tap says it supports.
    allowed = SpecifierSet(meta["Requires-Python"])
    assert {f"3.{m}" for m in range(6, 20) if f"3.{m}" in allowed} == classified
    assert classified == set(about["supported_python_versions"])
    assert classified == {"3.10", "3.11", "3.12", "3.13"}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_users_get_ranges_not_pins(name: str, dists: dict[str, Dist]) -> None:
    """The lock files pin our environments; the published package must not pin its users'."""
    requirements = [Requirement(r) for r in metadata(dists[name]).get_all("Requires-Dist") or []]
    runtime = [r for r in requirements if not (r.marker and "extra" in str(r.marker))]
    assert runtime, "no runtime dependencies?"
    for req in runtime:
        assert all(s.operator not in ("==", "===") for s in req.specifier), str(req)


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_sdist_carries_readme_license_and_sources(name: str, dists: dict[str, Dist]) -> None:
    dist = dists[name]
    root = f"{name.replace('-', '_')}-{dist.version}"
    with tarfile.open(dist.sdist) as sdist:
        members = set(sdist.getnames())
    assert {f"{root}/README.md", f"{root}/LICENSE", f"{root}/pyproject.toml"} <= members
    package = name.replace("-", "_")
    sources = {
        p.relative_to(DISTRIBUTIONS[name]).as_posix()
        for p in (DISTRIBUTIONS[name] / package).rglob("*.py")
    }
    assert {f"{root}/{s}" for s in sources} <= members


def test_one_version_everywhere(dists: dict[str, Dist], about: dict[str, Any]) -> None:
    """Each pyproject.toml is its package's version source; the tap reports it, the changelog
    releases it."""
    version = pyproject("tap-dome")["version"]
    assert about["version"] == version == dists["tap-dome"].version
    # One tag releases both distributions: one version.
    assert pyproject("dome-simulator")["version"] == version == dists["dome-simulator"].version
    assert changelog_versions()[0] == version
    assert "version" not in pyproject("tap-dome").get("dynamic", [])


def test_changelog_keeps_a_changelog_shape() -> None:
    text = CHANGELOG.read_text()
    assert text.startswith("# Changelog\n")
    assert "keepachangelog.com" in text
    assert re.search(r"^## \[Unreleased\]$", text, re.MULTILINE)
    versions = changelog_versions()
    assert versions, "no released version"
    assert versions == sorted(
        versions, key=lambda v: tuple(int(x) for x in v.split(".")[:3]), reverse=True
    )
    for version in [*versions, "Unreleased"]:
        assert re.search(rf"^\[{re.escape(version)}\]: https://", text, re.MULTILINE), version
    sections = re.findall(r"^### (.+)$", text, re.MULTILINE)
    assert set(sections) <= {
        "Added",
        "Changed",
        "Deprecated",
        "Removed",
        "Fixed",
        "Security",
    }


def test_readme_settings_table_is_in_step() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme_settings.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _install_wheels(venv: Path, dists: dict[str, Dist]) -> None:
    env = clean_env()
    subprocess.run(
        [str(UV), "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env
    )
    subprocess.run(
        [
            str(UV),
            "pip",
            "install",
            "-q",
            "--python",
            str(venv / "bin" / "python"),
            *(str(d.wheel) for d in dists.values()),
            # Dependencies at the versions CI tested (the Meltano test takes PyPI's newest).
            "--constraint",
            str(ROOT / "plugins" / "locks" / "tap-dome.txt"),
        ],
        check=True,
        env=env,
        timeout=300,
    )


def _start_simulator(venv: Path, workdir: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """The installed `dome-simulator` on a free port; its start-up line (url, wallets, key)."""
    proc = subprocess.Popen(
        [
            str(venv / "bin" / "dome-simulator"),
            "--port",
            "0",
            "--profile",
            "demo",
            "--api-key",
            API_KEY,
            "--rate-limit",
            "none",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(),
        cwd=workdir,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "dome-simulator printed nothing"
    return proc, dict(json.loads(line))


@pytest.mark.e2e
def test_the_wheels_work_in_a_clean_virtualenv(tmp_path: Path, dists: dict[str, Dist]) -> None:
    """Both wheels alone in a new virtualenv: the simulator serves, the tap syncs all of it."""
    venv = tmp_path / "venv"
    _install_wheels(venv, dists)
    env = clean_env()
    tap = venv / "bin" / "tap-dome"
    about = json.loads(
        subprocess.run(
            [str(tap), "--about", "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
    )
    assert about["version"] == dists["tap-dome"].version
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import tap_dome, dome_simulator; print(tap_dome.__file__, dome_simulator.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tmp_path,
    ).stdout.split()
    assert all(w.startswith(str(venv)) for w in where), where  # the wheels, not the tree

    server, started = _start_simulator(venv, tmp_path)
    try:
        base = started["url"].rsplit("/v1", 1)[0]
        with urllib.request.urlopen(f"{base}/_sim/truth", timeout=10) as response:
            truth = {fill["order_id"] for fill in json.load(response)}
        config = tmp_path / "config.json"
        config.write_text(
            json.dumps(
                {
                    "api_key": API_KEY,
                    "api_url": started["url"],
                    "wallets": started["wallets"],
                    "start_date": "2020-01-01T00:00:00Z",
                    "requests_per_second": 500,
                    "requests_per_10_seconds": 5000,
                }
            )
        )
        done = subprocess.run(
            [str(tap), "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
            check=False,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert done.returncode == 0, done.stderr[-4000:]
    ids = [r["order_id"] for r in records(done.stdout)]
    assert len(truth) > 100
    assert sorted(ids) == sorted(truth)
    assert API_KEY not in done.stdout + done.stderr


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_the_sdist_builds_the_same_wheel(name: str, dists: dict[str, Dist], tmp_path: Path) -> None:
    """A user or a distro building from the sdist gets the files of the published wheel."""
    subprocess.run(
        [
            str(UV),
            "build",
            "--quiet",
            "--wheel",
            "--out-dir",
            str(tmp_path),
            str(dists[name].sdist),
        ],
        check=True,
        timeout=300,
        env=clean_env(),
    )
    (rebuilt,) = tmp_path.glob("*.whl")
    assert rebuilt.name == dists[name].wheel.name
    with zipfile.ZipFile(rebuilt) as a, zipfile.ZipFile(dists[name].wheel) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        for member in a.namelist():
            if not member.endswith("/RECORD"):
                assert a.read(member) == b.read(member), member
