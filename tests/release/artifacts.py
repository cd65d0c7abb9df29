"""What the release checks share: the distributions we publish, where tools are, small parsers."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
UV = VENV_BIN / "uv"
API_KEY = "release-test-key-0123456789"
# Distribution name -> its source folder. A release tag builds, checks and publishes them all,
# at one version (scripts/release_notes.py checks the tag against each).
DISTRIBUTIONS = {"tap-dome": ROOT / "tap-dome", "dome-simulator": ROOT / "dome-simulator"}
HUB_FOLDER = ROOT / "hub" / "_data" / "meltano" / "extractors" / "tap-dome"


@dataclass(frozen=True)
class Dist:
    """The sdist and the wheel of one distribution."""

    name: str
    version: str
    sdist: Path
    wheel: Path


def find(folder: Path, name: str) -> Dist:
    """The one sdist and the one wheel of ``name`` in ``folder``."""
    stem = name.replace("-", "_")
    wheels = sorted(folder.glob(f"{stem}-*-py3-none-any.whl"))
    sdists = sorted(folder.glob(f"{stem}-*.tar.gz"))
    assert len(wheels) == 1, f"expected one wheel of {name} in {folder}, found {wheels}"
    assert len(sdists) == 1, f"expected one sdist of {name} in {folder}, found {sdists}"
    return Dist(name, wheels[0].name.split("-")[1], sdists[0], wheels[0])


def build_all(folder: Path) -> dict[str, Dist]:
    """sdist and wheel of every distribution into ``folder`` (uv build, from the uv cache)."""
    for source in DISTRIBUTIONS.values():
        subprocess.run(
            [str(UV), "build", "--quiet", "--sdist", "--wheel", "--out-dir", str(folder)],
            cwd=source,
            check=True,
            timeout=300,
        )
    return {name: find(folder, name) for name in DISTRIBUTIONS}


def hub_file() -> Path:
    """The Hub definition of tap-dome (one variant)."""
    files = sorted(HUB_FOLDER.glob("*.yml"))
    assert len(files) == 1, f"expected one variant of tap-dome under hub/, found {files}"
    return files[0]


def clean_env() -> dict[str, str]:
    """The test's environment without anything that configures the tap, Meltano or a venv."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAP_DOME_", "MELTANO_", "VIRTUAL_ENV", "PYTHONPATH"))
    }


def records(stdout: str, stream: str = "orders") -> list[dict[str, Any]]:
    """RECORD payloads of one stream of a tap's Singer output, in order."""
    found = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            message = json.loads(line)
            if message.get("type") == "RECORD" and message.get("stream") == stream:
                found.append(message["record"])
    return found
