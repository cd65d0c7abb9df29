"""No fill lost when the API's data lags the clock: bookmarks follow the data, not the clock.

Dome's indexer can be minutes or days behind the wall clock, and a machine's clock can run
ahead. Each test runs the tap, lets time move on with new fills at the head and fills
indexed late in the past, runs again from the first run's state, and compares by id.
"""

from __future__ import annotations

import io
import json
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from dome_simulator import Dataset
from tap_dome.tap import TapDome
from tap_harness import bookmarks, parse_output, run_tap, tap_config, truth_ids

MINUTE = 60
DAY = 86_400


def _data_clock(sim: Any) -> int:
    return int(sim.clock.describe()["data_now"])


@pytest.mark.parametrize(
    ("lag", "lookback", "late_age"),
    [
        # Minutes behind, with a lookback shorter than the lag: only the data clock saves it.
        (10 * MINUTE, 5 * MINUTE, [60, 240]),
        # Days behind (an indexer outage), the default lookback of two hours.
        (2 * DAY, 7200, [300, 1800]),
    ],
    ids=["minutes", "days"],
)
def test_lagging_api_loses_nothing(
    tmp_path: Path, simulator_factory: Any, lag: int, lookback: int, late_age: list[int]
) -> None:
    now = int(time.time())
    dataset = Dataset.custom([1200, 150, 0], seed=31, now=now, span=5 * DAY)
    sim = simulator_factory(dataset, frozen_now=now - lag)
    config = tap_config(sim, page_size=100, max_window_fills=400, lookback=lookback)

    first = run_tap(tmp_path / "1", config)
    assert first.returncode == 0, first.stderr[-3000:]
    assert set(first.ids) == truth_ids(sim)
    marks = bookmarks(first.last_state or {})
    data_now = _data_clock(sim)
    assert all(mark is None or mark <= data_now for mark in marks.values()), (marks, data_now)

    moved = sim.advance(
        seconds=2 * MINUTE,
        new_fills_per_wallet=4,
        late_fills_per_wallet=3,
        late_age=late_age,
    )
    assert moved["new_fills"]
    assert moved["late_fills"]
    second = run_tap(tmp_path / "2", config, state=first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    assert set(first.ids) | set(second.ids) == truth_ids(sim)
    # The second run re-read the lookback, not the history.
    assert len(second.ids) < len(first.ids) / 2


def _run_in_process(tap_class: type[TapDome], config: dict[str, Any], state: Any) -> Any:
    """Run a TapDome subclass in this process, its Singer output captured."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with redirect_stdout(out):
        tap_class(config=config, state=state, validate_config=True).sync_all()
        out.flush()
    out.seek(0)
    return parse_output(out.read())


def test_machine_clock_ahead_of_the_api(tmp_path: Path, simulator_factory: Any) -> None:
    """With the tap's clock a day ahead, the bookmark still stops at the API's newest fill."""

    class ClockAhead(TapDome):
        clock = staticmethod(lambda: time.time() + DAY)

    now = int(time.time())
    sim = simulator_factory(Dataset.custom([600, 80], seed=32, now=now, span=3 * DAY))
    config = tap_config(sim, page_size=100, max_window_fills=300)
    records, states, _ = _run_in_process(ClockAhead, config, None)
    assert {r["order_id"] for r in records} == truth_ids(sim)
    newest = max(r["timestamp"] for r in records)
    marks = bookmarks(states[-1])
    assert all(mark is not None and mark <= newest for mark in marks.values()), marks

    sim.advance(seconds=10 * MINUTE, new_fills_per_wallet=5, late_fills_per_wallet=2)
    again, _, _ = _run_in_process(ClockAhead, config, states[-1])
    got = {r["order_id"] for r in records} | {r["order_id"] for r in again}
    assert got == truth_ids(sim)


def test_wallets_with_no_fills_never_get_a_clock_bookmark(
    tmp_path: Path, simulator_factory: Any
) -> None:
    now = int(time.time())
    sim = simulator_factory(Dataset.custom([0, 0], seed=33, now=now), frozen_now=now - DAY)
    config = tap_config(sim, page_size=100)
    first = run_tap(tmp_path / "1", config)
    assert first.returncode == 0, first.stderr[-3000:]
    assert not first.records
    # A run that saw no fill at all moves no bookmark: the wall clock proves nothing.
    assert all(mark is None for mark in bookmarks(first.last_state or {}).values())
    moved = sim.advance(seconds=5 * MINUTE, new_fills_per_wallet=3, late_fills_per_wallet=2)
    assert moved["new_fills"]
    second = run_tap(tmp_path / "2", config, state=first.last_state)
    assert second.returncode == 0, second.stderr[-3000:]
    assert set(second.ids) == truth_ids(sim)
    assert len(second.ids) == 10
    # Now that fills were seen, bookmarks stop at the newest of them.
    newest = max(r["timestamp"] for r in second.records)
    assert all(
        mark is not None and mark <= newest for mark in bookmarks(second.last_state or {}).values()
    )
    assert json.dumps(second.last_state)  # plain JSON, as Meltano stores it
