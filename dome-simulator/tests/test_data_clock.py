"""The data clock: the API serves data up to a lagging or frozen "now", apart from the wall.

Every check compares what a real client walk over HTTP returns with ``truth()``, and both
with the fills' own timestamps, so a fill served too early or never is caught by id.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import requests

from dome_simulator import Dataset, DomeSimulator, WalletSpec
from dome_simulator.testing import session_for, walk

KEY = "clock-test-key"
HOUR = 3600
DAY = 24 * HOUR

ClientFactory = Callable[[DomeSimulator], requests.Session]


def served_ids(sim: DomeSimulator, client: requests.Session) -> set[str]:
    """Every fill a client can read, by order_id, over all wallets (cursor walks)."""
    out: set[str] = set()
    for wallet in sim.wallets:
        for row in walk(client, sim, wallet, limit=1000):
            out.add(f"{row['tx_hash'].lower()}:{row['log_index']}")
    return out


def truth_ids(sim: DomeSimulator) -> set[str]:
    return {row["order_id"] for row in sim.truth()}


def expected_ids(dataset: Dataset, data_now: float) -> set[str]:
    """The fills whose timestamp and indexing time the data clock has reached."""
    return {
        f"{fill.tx_hash.lower()}:{fill.log_index}"
        for wallet in dataset.wallets
        for fill in dataset.fills(wallet)
        if fill.visible_from <= data_now
    }


@pytest.fixture
def built_at() -> int:
    """The dataset's "now": histories end a few minutes before it."""
    return int(time.time())


def dense(now: int, span: float) -> Dataset:
    """Three wallets with fills spread evenly up to a few minutes before ``now``."""
    specs = [WalletSpec(n, f"w{i}", span=span, end_gap=120) for i, n in enumerate((900, 400, 5))]
    return Dataset(specs, seed=21, now=now)


@pytest.fixture
def client_factory() -> Iterator[ClientFactory]:
    """Keep-alive API sessions for simulators, closed after the test."""
    sessions: list[requests.Session] = []

    def make(sim: DomeSimulator) -> requests.Session:
        session = session_for(sim)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


def test_default_clock_is_the_wall_clock(built_at: int) -> None:
    with DomeSimulator(api_key=KEY, dataset=dense(built_at, 2 * DAY)) as sim:
        clock = sim.clock.describe()
        assert clock["mode"] == "live"
        assert clock["lag"] == 0.0
        assert abs(clock["behind_wall"]) < 1.0
        assert truth_ids(sim) == expected_ids(sim.dataset, built_at)
        assert sim.health()["pending_fills"] == 0


@pytest.mark.parametrize("lag", [10 * 60, 2 * DAY], ids=["minutes", "days"])
def test_frozen_clock_behind_the_data_moves_only_when_told(
    built_at: int, lag: int, client_factory: ClientFactory
) -> None:
    dataset = dense(built_at, 10 * DAY)
    frozen = built_at - lag
    with DomeSimulator(api_key=KEY, dataset=dataset, frozen_now=frozen) as sim:
        client = client_factory(sim)
        first = expected_ids(dataset, frozen)
        assert 0 < len(first) < len(expected_ids(dataset, built_at))
        assert served_ids(sim, client) == truth_ids(sim) == first
        assert max(row["timestamp"] for row in sim.truth()) <= frozen
        assert sim.health()["pending_fills"] == len(expected_ids(dataset, built_at)) - len(first)

        time.sleep(1.1)  # the wall clock moves; the frozen data clock does not
        assert sim.clock.now() == frozen
        assert truth_ids(sim) == first

        # Time moves on by a third of the lag: the history it passes is indexed, a new head
        # appears at the data clock and late fills appear in the past, below the old head.
        step = lag // 3
        moved = sim.advance(
            seconds=step, new_fills_per_wallet=2, late_fills_per_wallet=3, late_age=[600, 900]
        )
        now = frozen + step
        assert moved["now"] == now
        assert moved["clock"]["mode"] == "frozen"
        assert (moved["new_fills"], moved["late_fills"]) == (6, 9)
        passed = expected_ids(dataset, now) - first
        assert moved["became_visible"] == len(passed)

        rows = sim.truth()
        added = {row["order_id"] for row in rows} - first - passed
        assert len(added) == 15
        heads = [r for r in rows if r["order_id"] in added and r["timestamp"] >= now - 3]
        lates = [r for r in rows if r["order_id"] in added and r["timestamp"] < now - 3]
        assert len(heads) == 6
        assert len(lates) == 9
        assert all(now - 900 <= r["timestamp"] <= now - 600 for r in lates)
        assert max(r["timestamp"] for r in rows) <= now
        assert served_ids(sim, client) == truth_ids(sim) == first | passed | added


def test_live_lag_serves_nothing_newer_than_wall_minus_lag(
    built_at: int, client_factory: ClientFactory
) -> None:
    lag = 2 * DAY
    dataset = dense(built_at, 10 * DAY)
    with DomeSimulator(api_key=KEY, dataset=dataset, data_lag=lag) as sim:
        client = client_factory(sim)
        before = time.time()
        served = served_ids(sim, client)
        after = time.time()
        assert expected_ids(dataset, before - lag) <= served <= expected_ids(dataset, after - lag)
        assert max(row["timestamp"] for row in sim.truth()) <= time.time() - lag

        moved = sim.advance(seconds=HOUR, new_fills_per_wallet=1, late_fills_per_wallet=1)
        data_now = moved["now"]
        assert abs(data_now - (time.time() - lag + HOUR)) < 2.0
        before_walk = truth_ids(sim)
        newest = max(row["timestamp"] for row in sim.truth())
        assert data_now - 5 <= newest <= time.time() - lag + HOUR  # the head is at the clock
        # The live clock keeps moving: what a walk serves lies between two truths around it.
        assert before_walk <= served_ids(sim, client) <= truth_ids(sim)


def test_a_fill_is_served_only_once_indexed_and_never_before_its_timestamp(
    built_at: int,
) -> None:
    base = Dataset.custom([3], seed=5, now=built_at).fills
    wallet = Dataset.custom([3], seed=5, now=built_at).wallets[0]
    old, indexed_late, early = sorted(base(wallet), key=lambda f: f.timestamp)
    t = old.timestamp
    fills = [
        replace(old, timestamp=t),
        replace(indexed_late, timestamp=t + 10, indexed_at=t + 600),  # indexed 10 minutes late
        replace(early, timestamp=t + 300, indexed_at=t + 20),  # "indexed" before it happened
    ]
    ids = [f"{f.tx_hash.lower()}:{f.log_index}" for f in fills]
    with DomeSimulator(api_key=KEY, dataset=Dataset.from_fills(fills), frozen_now=t + 100) as sim:
        assert truth_ids(sim) == {ids[0]}
        sim.advance(seconds=200)  # t + 300: the early one's own timestamp
        assert truth_ids(sim) == {ids[0], ids[2]}
        sim.advance(seconds=299)  # t + 599
        assert ids[1] not in truth_ids(sim)
        assert sim.advance(seconds=1)["became_visible"] == 1
        assert truth_ids(sim) == set(ids)


def test_clock_changes_never_move_it_back(built_at: int) -> None:
    with DomeSimulator(api_key=KEY, dataset=dense(built_at, DAY), data_lag=HOUR) as sim:
        with pytest.raises(ValueError, match="never goes back"):
            sim.set_clock(lag=2 * HOUR)
        shown = len(sim.truth())
        got = sim.set_clock(lag=0)  # the indexer catches up: the last hour appears
        assert got["mode"] == "live"
        assert got["became_visible"] == len(sim.truth()) - shown > 0
        frozen = sim.set_clock(freeze=True)
        assert frozen["mode"] == "frozen"
        with pytest.raises(ValueError, match="never goes back"):
            sim.set_clock(frozen_now=frozen["data_now"] - 1)
        assert sim.set_clock(frozen_now=frozen["data_now"] + 60)["data_now"] == pytest.approx(
            frozen["data_now"] + 60
        )
        with pytest.raises(ValueError, match="exactly one"):
            sim.set_clock(lag=1, freeze=True)
        with pytest.raises(ValueError, match="never goes back"):
            sim.advance(seconds=-1)
    with pytest.raises(ValueError, match="not both"):
        DomeSimulator(dataset=Dataset.custom([1]), data_lag=5, frozen_now=built_at)
    with pytest.raises(ValueError, match="data_lag"):
        DomeSimulator(dataset=Dataset.custom([1]), data_lag=-1)


def test_clock_over_the_control_plane(built_at: int) -> None:
    dataset = dense(built_at, 5 * DAY)
    with DomeSimulator(api_key=KEY, dataset=dataset) as sim:
        control = sim.control_url
        clock = requests.get(f"{control}/clock", timeout=10).json()
        assert clock["mode"] == "live"
        assert set(clock) >= {"data_now", "wall_now", "lag", "offset", "behind_wall"}
        assert requests.post(f"{control}/clock", json={"lag": DAY}, timeout=10).status_code == 400

        frozen = built_at + 60
        got = requests.post(f"{control}/clock", json={"frozen_now": frozen}, timeout=10).json()
        assert (got["mode"], got["data_now"]) == ("frozen", frozen)
        moved = requests.post(
            f"{control}/advance",
            json={"seconds": 40, "new_fills_per_wallet": 1, "late_fills_per_wallet": 2,
                  "late_age": [60, 120]},
            timeout=10,
        ).json()  # fmt: skip
        assert moved["now"] == frozen + 40
        truth = requests.get(f"{control}/truth", timeout=10).json()
        assert {r["order_id"] for r in truth} == truth_ids(sim)
        assert len(truth) == len(expected_ids(dataset, frozen)) + 3 * 3
        assert max(r["timestamp"] for r in truth) <= frozen + 40
        assert requests.get(f"{control}/health", timeout=10).json()["clock"]["mode"] == "frozen"

        for body in ({"lag": "soon"}, {"frozen_now": True}, {}, {"lag": 1, "frozen_now": 2}):
            bad = requests.post(f"{control}/clock", json=body, timeout=10)
            assert bad.status_code == 400, body
            assert bad.json()["error"] == "Bad Request"
        late_age = {"late_fills_per_wallet": 1, "late_age": [5, 1]}
        assert requests.post(f"{control}/advance", json=late_age, timeout=10).status_code == 400
        assert sim.stats()["requests"] == 0


def test_cli_data_clock_options(built_at: int) -> None:
    frozen = built_at - DAY
    command = [
        sys.executable, "-m", "dome_simulator", "--port", "0", "--profile", "demo",
        "--frozen-now", str(frozen), "--api-key", KEY,
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        banner = json.loads(proc.stdout.readline())
        assert banner["clock"]["mode"] == "frozen"
        assert banner["clock"]["data_now"] == frozen
        truth = requests.get(banner["control_url"] + "/truth", timeout=10).json()
        assert truth
        assert max(row["timestamp"] for row in truth) <= frozen
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0
    both = subprocess.run(
        [*command[:-4], "--data-lag", "60", "--frozen-now", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert both.returncode == 2
    assert "not allowed with" in both.stderr
