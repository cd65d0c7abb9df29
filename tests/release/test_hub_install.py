"""What a Meltano user gets from the Hub definition: a fresh project adds, installs and runs it.

The definition's ``pip_url`` (``tap-dome``, from PyPI) is replaced by the wheel built in this
session, so the test installs exactly what would be uploaded, not ./tap-dome.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dome_simulator import DomeSimulator
from tests.release.artifacts import VENV_BIN, Dist, clean_env, hub_file

MELTANO = VENV_BIN / "meltano"
# A tiny loader from PyPI, defined inline (nothing comes from the Hub's servers).
TARGET_JSONL = {
    "name": "target-jsonl",
    "namespace": "target_jsonl",
    "pip_url": "target-jsonl==0.1.4",
    "executable": "target-jsonl",
    "settings": [
        {"name": "destination_path"},
        {"name": "do_timestamp_file", "kind": "boolean"},
    ],
    "config": {"destination_path": "out", "do_timestamp_file": False},
}


def _meltano(project: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(MELTANO), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"meltano {' '.join(args)}:\n{done.stdout}\n{done.stderr}"[-6000:]
    return done.stdout


def _keep_only_the_extractor(project: Path) -> dict[str, Any]:
    """Meltano 4.4.1 adds a --from-ref plugin twice (extractor and utility): drop the utility.

    Not with `meltano remove utility`, which removes the extractor of that name instead.
    """
    path = project / "meltano.yml"
    config = yaml.safe_load(path.read_text())
    plugins = config["plugins"]
    utilities = [p for p in plugins.get("utilities", []) if p["name"] != "tap-dome"]
    if utilities:
        plugins["utilities"] = utilities
    else:
        plugins.pop("utilities", None)
    for lock in (project / "plugins" / "utilities").glob("tap-dome*.lock"):
        lock.unlink()
    plugins["loaders"] = [TARGET_JSONL]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    extractors = [p for p in plugins["extractors"] if p["name"] == "tap-dome"]
    assert len(extractors) == 1, plugins
    return dict(extractors[0])


@pytest.mark.e2e
def test_a_fresh_meltano_project_runs_the_hub_definition(
    tmp_path: Path, dists: dict[str, Dist], simulator: DomeSimulator
) -> None:
    env = {**clean_env(), "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"}
    _meltano(tmp_path, env, "init", "project", "--no_usage_stats")
    project = tmp_path / "project"

    ref = yaml.safe_load(hub_file().read_text())
    ref["pip_url"] = str(dists["tap-dome"].wheel)
    ref_file = tmp_path / "tap-dome.yml"
    ref_file.write_text(yaml.safe_dump(ref))
    _meltano(
        project,
        env,
        "add",
        "extractor",
        "tap-dome",
        "--from-ref",
        str(ref_file),
        "--no-install",
    )
    extractor = _keep_only_the_extractor(project)
    assert extractor["pip_url"] == str(dists["tap-dome"].wheel)
    assert extractor["variant"] == ref["variant"]
    _meltano(project, env, "install")

    installed = project / ".meltano" / "extractors" / "tap-dome" / "venv"
    probe = (
        "import importlib.metadata as m; d = m.distribution('tap-dome'); "
        "print(d.version, d.read_text('direct_url.json'))"
    )
    version, origin = subprocess.run(
        [str(installed / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split(" ", 1)
    assert version == dists["tap-dome"].version
    assert dists["tap-dome"].wheel.name in origin  # the wheel, not ./tap-dome

    run_env = {
        **env,
        "TAP_DOME_API_KEY": simulator.api_key,
        "TAP_DOME_API_URL": simulator.base_url,
        "TAP_DOME_WALLETS": json.dumps(simulator.wallets),
        "TAP_DOME_START_DATE": "2020-01-01T00:00:00Z",
        "TAP_DOME_PAGE_SIZE": "25",
        "TAP_DOME_REQUESTS_PER_SECOND": "500",
        "TAP_DOME_REQUESTS_PER_10_SECONDS": "5000",
    }
    _meltano(project, run_env, "run", "tap-dome", "target-jsonl")

    lines = (project / "out" / "orders.jsonl").read_text().splitlines()
    ids = [json.loads(line)["order_id"] for line in lines]
    truth = {fill["order_id"] for fill in simulator.truth()}
    assert len(truth) == 155
    assert sorted(ids) == sorted(truth)

    state_out = _meltano(project, env, "state", "get", "dev:tap-dome-to-target-jsonl")
    state = json.loads(state_out[state_out.index("{") :])
    partitions = state["singer_state"]["bookmarks"]["orders"]["partitions"]
    with_fills = {w for w in simulator.wallets if simulator.truth(w)}
    assert {p["context"]["wallet"] for p in partitions if "replication_key_value" in p} >= (
        with_fills
    )
