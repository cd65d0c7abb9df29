"""Fixtures of the end-to-end suites: a set-up check and isolated pipelines (tests/pipeline.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dome_simulator import Dataset, DomeSimulator
from tests.pipeline import MELTANO, PLUGIN_KINDS, ROOT, MakePipeline, Pipeline


@pytest.fixture(scope="session")
def installed() -> None:
    """The project must be set up (make test does it)."""
    missing = [
        str(p)
        for p in (MELTANO, *(ROOT / ".meltano" / kind for kind in PLUGIN_KINDS))
        if not p.exists()
    ]
    if missing:
        pytest.fail(f"not set up ({', '.join(missing)} missing): run scripts/bootstrap.sh")


@pytest.fixture
def make_pipeline(installed: None, tmp_path: Path) -> Iterator[MakePipeline]:
    """``make_pipeline(dataset, wallets=None) -> Pipeline``, with a running simulator."""
    sims: list[DomeSimulator] = []

    def factory(dataset: Dataset, wallets: list[str] | None = None, **sim_kwargs: Any) -> Pipeline:
        sim = DomeSimulator(seed=7, api_key="sim-key-e2e", dataset=dataset, **sim_kwargs)
        sim.start()
        sims.append(sim)
        workdir = tmp_path / f"p{len(sims)}"
        workdir.mkdir()
        return Pipeline(workdir, sim, wallets if wallets is not None else sim.wallets)

    yield factory
    for sim in sims:
        sim.stop()
