"""Release checks: the distributions as PyPI would get them, and the Hub definition.

``dists`` (session) builds every distribution we publish once per test session with
``uv build`` (from the uv cache: no network after the first time), or, when
``RELEASE_DIST_DIR`` is set, takes the artifacts already built there: the release workflow
builds once and tests exactly the files it then uploads.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tap_dome.simulator import Dataset, DomeSimulator

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
UV = VENV_BIN / "uv"
API_KEY = "release-test-key-0123456789"
# Distribution name -> its source folder. Every one is built, checked and published together.
DISTRIBUTIONS = {"tap-dome": ROOT / "tap-dome"}


@dataclass(frozen=True)
class Dist:
    """The sdist and the wheel of one distribution."""

    name: str
    version: str
    sdist: Path
    wheel: Path


def _normalized(name: str) -> str:
    return name.replace("-", "_")


def _find(folder: Path, name: str) -> Dist:
    wheels = sorted(folder.glob(f"{_normalized(name)}-*-py3-none-any.whl"))
    sdists = sorted(folder.glob(f"{_normalized(name)}-*.tar.gz"))
    assert len(wheels) == 1, f"expected one wheel of {name} in {folder}, found {wheels}"
    assert len(sdists) == 1, f"expected one sdist of {name} in {folder}, found {sdists}"
    version = wheels[0].name.split("-")[1]
    return Dist(name, version, sdists[0], wheels[0])


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dist]:
    """name -> Dist of every distribution we publish."""
    given = os.environ.get("RELEASE_DIST_DIR")
    if given:
        folder = Path(given).resolve()
    else:
        folder = tmp_path_factory.mktemp("dist")
        for source in DISTRIBUTIONS.values():
            subprocess.run(
                [
                    str(UV),
                    "build",
                    "--quiet",
                    "--sdist",
                    "--wheel",
                    "--out-dir",
                    str(folder),
                ],
                cwd=source,
                check=True,
                timeout=300,
            )
    return {name: _find(folder, name) for name in DISTRIBUTIONS}


@pytest.fixture(scope="session")
def about() -> dict[str, Any]:
    """`tap-dome --about --format json` of the tap in the root environment."""
    out = subprocess.run(
        [str(VENV_BIN / "tap-dome"), "--about", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return dict(json.loads(out))


@pytest.fixture
def simulator() -> Iterator[DomeSimulator]:
    """A small simulator on 127.0.0.1: three wallets, a few pages each."""
    sim = DomeSimulator(dataset=Dataset.custom([120, 35, 0], seed=5), api_key=API_KEY)
    sim.start()
    yield sim
    sim.stop()


def clean_env() -> dict[str, str]:
    """The test's environment without anything that configures the tap or Meltano."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAP_DOME_", "MELTANO_", "VIRTUAL_ENV", "PYTHONPATH"))
    }


def records(stdout: str) -> list[dict[str, Any]]:
    """RECORD payloads of a Singer stream, in order."""
    found = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            message = json.loads(line)
            if message.get("type") == "RECORD":
                found.append(message["record"])
    return found
