"""Fixtures of the release checks (helpers are in tests/release/artifacts.py).

``dists`` (session) builds every distribution we publish once per test session with
``uv build``, or, when ``RELEASE_DIST_DIR`` is set, takes the artifacts already built there:
the release workflow builds once and tests exactly the files it then uploads.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dome_simulator import Dataset, DomeSimulator
from tests.release.artifacts import API_KEY, DISTRIBUTIONS, VENV_BIN, Dist, build_all, find


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dist]:
    """name -> Dist of every distribution we publish."""
    given = os.environ.get("RELEASE_DIST_DIR")
    if given:
        folder = Path(given).resolve()
        return {name: find(folder, name) for name in DISTRIBUTIONS}
    return build_all(tmp_path_factory.mktemp("dist"))


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
    """A small simulator on 127.0.0.1: three wallets, a few pages each, one of them empty."""
    sim = DomeSimulator(dataset=Dataset.custom([120, 35, 0], seed=5), api_key=API_KEY)
    sim.start()
    yield sim
    sim.stop()
