"""Run the real tap CLI against a simulator on 127.0.0.1 and read what it wrote.

The tap's tests import these helpers from here (never from conftest.py, which only holds
fixtures).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dome_simulator import DomeSimulator

API_KEY = "sim-secret-key-0123456789"
TAP = [sys.executable, "-m", "tap_dome.tap"]


@dataclass
class TapRun:
    """What one tap process wrote; `records` are the `orders` stream's (see `stream`)."""

    returncode: int
    records: list[dict[str, Any]] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""

    @property
    def ids(self) -> list[str]:
        return [r["order_id"] for r in self.records]

    @property
    def last_state(self) -> dict[str, Any] | None:
        return self.states[-1] if self.states else None

    def stream(self, name: str) -> list[dict[str, Any]]:
        """The RECORD payloads of stream `name`, in order."""
        return [
            m["record"]
            for m in self.messages
            if m.get("type") == "RECORD" and m.get("stream") == name
        ]


def parse_output(stdout: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
    """`orders` RECORD payloads, STATE values, all messages, in order (a cut line is ignored)."""
    records, states, messages = [], [], []
    for line in stdout.splitlines():
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        messages.append(message)
        if message.get("type") == "RECORD" and message.get("stream") == "orders":
            records.append(message["record"])
        elif message.get("type") == "STATE":
            states.append(message["value"])
    return records, states, messages


def tap_config(sim: DomeSimulator, **overrides: Any) -> dict[str, Any]:
    """A config for the simulator: its wallets, fast pacing, no real-world budgets."""
    config: dict[str, Any] = {
        "api_key": API_KEY,
        "api_url": sim.base_url,
        "wallets": sim.wallets,
        "start_date": "2020-01-01T00:00:00Z",
        "requests_per_second": 1000,
        "requests_per_10_seconds": 10000,
        "max_concurrency": 4,
        "progress_interval": 1,
        "max_retries": 6,
    }
    config.update(overrides)
    return config


@functools.cache
def _discovered() -> str:
    from tap_dome.tap import TapDome

    tap = TapDome(config={"api_key": "discovery"}, validate_config=False, setup_mapper=False)
    return json.dumps(tap.catalog_dict)


def catalog_selecting(streams: tuple[str, ...]) -> dict[str, Any]:
    """The tap's own catalog with exactly `streams` selected (as Meltano's `select` does)."""
    catalog: dict[str, Any] = json.loads(_discovered())
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def run_tap(
    tmp_path: Path,
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    timeout: float = 60,
    streams: tuple[str, ...] | None = ("orders",),
) -> TapRun:
    """Run `tap-dome --config ... [--state ...]` to the end; `streams` selected (None: all)."""
    args = write_args(tmp_path, config, state, streams)
    done = subprocess.run(
        [*TAP, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=tap_env(),
        check=False,
    )
    records, states, messages = parse_output(done.stdout)
    return TapRun(done.returncode, records, states, messages, done.stdout, done.stderr)


def start_tap(
    tmp_path: Path, config: dict[str, Any], state: dict[str, Any] | None = None
) -> subprocess.Popen[str]:
    """Start the tap without waiting (for kill tests), the `orders` stream selected."""
    args = write_args(tmp_path, config, state, ("orders",))
    return subprocess.Popen(
        [*TAP, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=tap_env(),
    )


def write_args(
    tmp_path: Path,
    config: dict[str, Any],
    state: dict[str, Any] | None,
    streams: tuple[str, ...] | None = None,
) -> list[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    args = ["--config", str(config_path)]
    if streams is not None:
        catalog_path = tmp_path / "catalog.json"
        catalog_path.write_text(json.dumps(catalog_selecting(streams)))
        args += ["--catalog", str(catalog_path)]
    if state is not None:
        state_path = tmp_path / "state.json"
        state_path.write_text(json.dumps(state))
        args += ["--state", str(state_path)]
    return args


def tap_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_DOME_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def truth_ids(sim: DomeSimulator, wallet: str | None = None) -> set[str]:
    return {fill["order_id"] for fill in sim.truth(wallet)}


def bookmarks(state: dict[str, Any]) -> dict[str, Any]:
    """wallet -> replication_key_value from a tap STATE value."""
    partitions = state["bookmarks"]["orders"].get("partitions", [])
    return {p["context"]["wallet"]: p.get("replication_key_value") for p in partitions}
