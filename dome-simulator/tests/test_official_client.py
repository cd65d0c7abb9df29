"""The official Python client (PyPI ``dome-api-sdk`` 1.0.0) parses every simulator endpoint.

The client is installed from PyPI with uv into a virtualenv under ``.cache/`` at the
repository root (kept across runs: the first run takes a few seconds with a warm uv cache),
never into the test environment. ``official_client_probe.py`` runs there against a
simulator on 127.0.0.1 and reports what the client parsed; this test checks that every field
of every model the client fills was served (the client reads required fields as
``d["field"]`` and silently defaults optional ones) and parsed to the value the simulator
holds as ground truth.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from dome_simulator import DomeSimulator
from dome_simulator.testing import small_standard

pytestmark = pytest.mark.e2e

SDK = "dome-api-sdk==1.0.0"
ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".cache" / "dome-api-sdk-1.0.0"
PROBE = Path(__file__).with_name("official_client_probe.py")
KEY = "official-client-key"


def _uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".venv" / "bin" / "uv")
    if not Path(found).exists():
        pytest.fail("uv is needed to install the official client: run make setup")
    return found


def _ready(python: Path) -> bool:
    if not python.exists():
        return False
    check = "from importlib.metadata import version; assert version('dome-api-sdk') == '1.0.0'"
    return subprocess.run([str(python), "-c", check], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def sdk_python() -> Path:
    """The Python of a virtualenv with the official client, built once and cached."""
    python = VENV / "bin" / "python"
    if _ready(python):
        return python
    VENV.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="dome-api-sdk-", dir=VENV.parent))
    uv = _uv()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    steps = (
        [uv, "venv", "--quiet", "--python", sys.executable, str(building)],
        [uv, "pip", "install", "--quiet", "--python", str(building / "bin" / "python"), SDK],
    )
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, env=env, timeout=600)
        if done.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            pytest.fail(f"{' '.join(step[:3])} failed: {done.stderr[-2000:]}")
    shutil.rmtree(VENV, ignore_errors=True)
    building.rename(VENV)  # atomic: a run that dies half-way leaves no broken cache
    assert _ready(python), f"the official client did not install into {VENV}"
    return python


@pytest.fixture(scope="module")
def sim() -> Iterator[DomeSimulator]:
    with DomeSimulator(seed=7, api_key=KEY, dataset=small_standard()) as running:
        yield running


def _served(row: Mapping[str, Any], fields: list[str], model: str) -> None:
    missing = [f for f in fields if f not in row]
    assert not missing, f"{model}: the simulator does not serve {missing}"


def test_official_client_parses_every_endpoint(sdk_python: Path, sim: DomeSimulator) -> None:
    mixed = sim.roles["mixed"]
    markets = sim.markets_truth()
    mappings = {m["proxy"]: m for m in sim.wallet_mappings()}
    named = next(m for m in mappings.values() if m["handle"])
    request = {
        "api_key": KEY,
        "base_url": sim.base_url,
        "orders_wallet": sim.roles["page_plus_1"],
        "activity_wallet": mixed,
        "condition_ids": [m["condition_id"] for m in markets[:9]],
        "wallet_lookups": [
            {"handle": "@" + named["handle"]},
            {"eoa": mappings[mixed]["eoa"]},
            {"proxy": mixed, "with_metrics": True},
        ],
    }
    run = subprocess.run(
        [str(sdk_python), str(PROBE)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout)
    fields: dict[str, list[str]] = got["fields"]
    assert got["version"] == "1.0.0"

    # orders: every Order field, pagination with total (the client needs it)
    truth = sim.truth(sim.roles["page_plus_1"])
    assert len(got["orders"]["rows"]) == len(truth) > 50
    for parsed, row in zip(got["orders"]["rows"], truth, strict=True):
        _served(row, fields["Order"], "Order")
        assert parsed == {f: row[f] for f in fields["Order"]}
    for page in got["orders"]["pages"]:
        assert page["total"] == len(truth)
        assert page["limit"] == 50

    # activity: every Activity field; pagination counts with `count`
    truth = sim.activity_truth(mixed)
    assert len(got["activity"]["rows"]) == len(truth) > 7
    for parsed, row in zip(got["activity"]["rows"], truth, strict=True):
        _served(row, fields["Activity"], "Activity")
        assert parsed == {f: row[f] for f in fields["Activity"]}
    assert {p["count"] for p in got["activity"]["pages"]} == {len(truth)}

    # markets: every Market field (sides and winning side as MarketSide), paged by cursor
    want = markets[:9]
    assert len(got["markets"]["pages"]) == 3
    assert {p["total"] for p in got["markets"]["pages"]} == {9}
    for parsed, row in zip(got["markets"]["rows"], want, strict=True):
        _served(row, fields["Market"], "Market")
        for side in ("side_a", "side_b"):
            _served(row[side], fields["MarketSide"], "MarketSide")
        assert parsed == {f: row[f] for f in fields["Market"]}
    assert any(m["winning_side"] is not None for m in got["markets"]["rows"])

    # wallet: by handle (with the @), by EOA, by proxy with metrics; unknown handle -> 404
    by_handle, by_eoa, with_metrics = got["wallets"]
    for parsed, mapping in ((by_handle, named), (by_eoa, mappings[mixed])):
        _served(mapping, [f for f in fields["WalletResponse"] if f != "wallet_metrics"], "Wallet")
        assert parsed == {**mapping, "wallet_metrics": None}
    metrics = with_metrics["wallet_metrics"]
    assert set(metrics) == set(fields["WalletMetrics"])
    assert set(metrics["highest_volume_day"]) == set(fields["HighestVolumeDay"])
    assert metrics["total_trades"] == len(sim.truth(mixed))
    assert "404" in got["unknown_wallet"]
    assert "No wallet mapping found" in got["unknown_wallet"]
