"""The BigQuery path, offline: emulators, credentials, and Meltano pointed at them.

- ``bq`` (session): bqemulator + gcp-storage-emulator + a token endpoint on free 127.0.0.1
  ports, a throwaway service-account key, and one staging bucket; torn down at the end.
  The emulators' virtualenv is installed once under ``.cache/bq-harness/`` (see bq_harness.py).
- ``make_bq_pipeline``: like the DuckDB suite's ``make_pipeline`` (tests/conftest.py), for a
  ``BqPipeline`` (tests/bigquery/bq_pipeline.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dome_simulator import Dataset, DomeSimulator
from tests.bigquery import bq_harness
from tests.bigquery.bq_pipeline import BUCKET, LOADER_VENV, BqPipeline
from tests.pipeline import ROOT


@pytest.fixture(scope="session")
def bq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[bq_harness.Stack]:
    t0 = time.monotonic()
    stack = bq_harness.start_stack(tmp_path_factory.mktemp("bq-stack"))
    bq_harness.log(f"emulators up in {time.monotonic() - t0:.1f}s at {stack.bq_url}")
    try:
        stack.create_bucket(BUCKET)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def bq_installed(installed: None) -> None:
    """The BigQuery plugins must be installed too (bootstrap's `meltano install` does it)."""
    missing = [
        str(p)
        for p in (
            LOADER_VENV / "bin" / "target-bigquery-dome",
            ROOT / ".meltano" / "utilities" / "dbt-bigquery" / "venv" / "bin" / "dbt",
        )
        if not p.exists()
    ]
    if missing:
        pytest.fail(
            f"BigQuery plugins not installed ({', '.join(missing)}): run scripts/bootstrap.sh"
        )


@pytest.fixture
def make_bq_pipeline(bq_installed: None, bq: bq_harness.Stack, tmp_path: Path) -> Iterator[Any]:
    """``make_bq_pipeline(dataset, wallets=None, **sim_kwargs) -> BqPipeline``."""
    sims: list[DomeSimulator] = []
    pipes: list[BqPipeline] = []

    def factory(
        dataset: Dataset, wallets: list[str] | None = None, **sim_kwargs: Any
    ) -> BqPipeline:
        sim = DomeSimulator(seed=7, api_key="sim-key-bq", dataset=dataset, **sim_kwargs)
        sim.start()
        sims.append(sim)
        workdir = tmp_path / f"bq{len(sims)}"
        workdir.mkdir()
        pipe = BqPipeline(workdir, sim, wallets if wallets is not None else sim.wallets, bq)
        pipes.append(pipe)
        return pipe

    yield factory
    for sim in sims:
        sim.stop()
    for pipe in pipes:  # keep the emulator small across the session
        bq.drop_dataset(pipe.raw_dataset)
        bq.drop_dataset(pipe.dbt_dataset)
