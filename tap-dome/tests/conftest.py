"""Fixtures of the tap's tests; their helpers live in tap_harness.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dome_simulator import Dataset, DomeSimulator
from tap_harness import API_KEY


@pytest.fixture
def simulator_factory() -> Iterator[Any]:
    """Start simulators on 127.0.0.1; every one is stopped after the test."""
    started: list[DomeSimulator] = []

    def make(dataset: Dataset, **kwargs: Any) -> DomeSimulator:
        kwargs.setdefault("api_key", API_KEY)
        sim = DomeSimulator(dataset=dataset, **kwargs)
        sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()
