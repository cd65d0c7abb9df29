"""The committed catalog (extract/tap-dome.catalog.json) must be what Meltano would discover.

Meltano passes that file to the tap instead of running discovery before every run
(meltano/tap-dome.meltano.yml, `catalog` extra) and then applies no `select` rules, so a
field the tap adds, or a stream `select` adds, would otherwise never reach the loader.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.pipeline import PLUGIN_KINDS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "tap_catalog.py"
CATALOG = ROOT / "extract" / "tap-dome.catalog.json"


def _extractor() -> dict[str, Any]:
    definition = yaml.safe_load((ROOT / "meltano/tap-dome.meltano.yml").read_text())
    return dict(definition["plugins"]["extractors"][0])


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--path", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_committed_catalog_matches_discovery() -> None:
    done = _check(CATALOG)
    assert done.returncode == 0, done.stderr
    # Every stream `select` names is there and selected whole (each pattern is `<stream>.*`).
    selected = {rule.split(".")[0] for rule in _extractor()["select"]}
    streams = {s["tap_stream_id"]: s for s in json.loads(CATALOG.read_text())["streams"]}
    assert "orders" in selected
    assert selected <= set(streams)
    for name in selected:
        metadata = streams[name]["metadata"]
        fields = {tuple(m["breadcrumb"]) for m in metadata} - {()}
        assert fields == {("properties", p) for p in streams[name]["schema"]["properties"]}
        assert all(m["metadata"]["selected"] is True for m in metadata), name


def test_a_stale_catalog_is_caught(tmp_path: Path) -> None:
    catalog = json.loads(CATALOG.read_text())
    del catalog["streams"][0]["schema"]["properties"]["log_index"]
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(catalog, indent=2, sort_keys=True) + "\n")
    done = _check(stale)
    assert done.returncode == 1
    assert str(stale) in done.stderr
    assert "scripts/tap_catalog.py" in done.stderr


def test_meltano_hands_the_tap_this_file(tmp_path: Path) -> None:
    assert _extractor()["catalog"] == "extract/tap-dome.catalog.json"
    # An isolated system directory whose plugin virtualenvs are the project's (tests/pipeline.py).
    for kind in PLUGIN_KINDS:
        (tmp_path / kind).symlink_to(ROOT / ".meltano" / kind, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TAP_DOME_"))}
    env.update(MELTANO_SYS_DIR_ROOT=str(tmp_path), TAP_DOME_API_KEY="unused")
    done = subprocess.run(
        [str(ROOT / ".venv/bin/meltano"), "invoke", "--no-install", "--dump=catalog", "tap-dome"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == json.loads(CATALOG.read_text())
