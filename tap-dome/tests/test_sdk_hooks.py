"""Guards of every singer-sdk internal that tap_dome/sdk_hooks.py relies on.

When a new SDK version changes one of these, a test here fails and names it, instead of
the tap silently emitting the wrong thing.
"""

from __future__ import annotations

import inspect
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk.helpers._state import StateWriter, get_writeable_state_dict
from singer_sdk.streams._state import StreamStateManager

from dome_simulator import Dataset
from tap_dome.sdk_hooks import (
    SDK_SYNC_ERROR_MESSAGE,
    SDK_VERSION_FOLLOWED,
    EncodedStateWriter,
    IndexedStateManager,
)
from tap_harness import TAP, run_tap, tap_config, tap_env


def test_the_sdk_internals_we_use_still_exist() -> None:
    from importlib import metadata

    assert metadata.version("singer-sdk") == SDK_VERSION_FOLLOWED
    assert callable(Stream._increment_stream_state)
    assert callable(Stream._write_state_message)
    assert hasattr(Stream, "ABORT_AT_RECORD_COUNT")
    assert callable(Tap._validate_config)
    # The SDK still sends SIGTERM and SIGINT to the handler TapHooks replaces.
    handlers = inspect.getsource(Tap._setup_signal_handlers)
    assert "self._handle_termination" in handlers
    assert "SIGTERM" in handlers
    # The per-record loop still calls the bookmark hook we silence, and writes RECORDs
    # through the method the bulk path replaces.
    loop = inspect.getsource(Stream._sync_records)
    assert "_increment_stream_state" in loop
    assert "_write_record_message" in loop
    # The flush flag `write_state_now` clears is what gates a STATE message.
    assert "is_flushed" in inspect.getsource(Stream._write_state_message)
    assert callable(StateWriter.write_state)
    # The generic line our log filter drops is still the SDK's.
    assert SDK_SYNC_ERROR_MESSAGE in inspect.getsource(Stream.sync)
    # The state manager is built as StreamHooks.state_manager builds its subclass, and is
    # the only way the SDK reaches a partition's state.
    built = inspect.getsource(Stream.state_manager.fget)  # type: ignore[attr-defined]
    for argument in ("tap_name=", "stream_name=", "tap_state=", "state_partitioning_keys="):
        assert argument in built
    assert "self.state_manager.get_context_state" in inspect.getsource(Stream.get_context_state)
    assert "self.get_context_state(" in inspect.getsource(
        StreamStateManager.finalize_progress_markers
    )
    # The per-partition hook we silence is still where the starting marker is written.
    assert "_write_starting_replication_value" in loop


def test_indexed_state_manager_hands_out_the_sdks_own_dicts() -> None:
    state: dict[str, Any] = {
        "bookmarks": {
            "orders": {
                "partitions": [
                    {"context": {"wallet": f"0x{i:040x}"}, "replication_key_value": i}
                    for i in range(50)
                ]
            }
        }
    }
    manager = IndexedStateManager(
        tap_name="tap-dome",
        stream_name="orders",
        tap_state=state,
        state_partitioning_keys=None,
        is_sorted=False,
        check_sorted=False,
    )
    for i in (0, 17, 49, 17):
        context = {"wallet": f"0x{i:040x}"}
        found = manager.get_context_state(context)
        assert found is get_writeable_state_dict(state, "orders", context)  # type: ignore[arg-type]
        assert found["replication_key_value"] == i
    new = manager.get_context_state({"wallet": "0x" + "f" * 40})
    assert new is state["bookmarks"]["orders"]["partitions"][-1]
    assert len(state["bookmarks"]["orders"]["partitions"]) == 51


def test_peeking_at_a_state_never_creates_one() -> None:
    # A stream that reads ahead of its turn looks at its stored bookmarks without adding
    # entries to the tap's state (which the stream before it is writing out).
    stored = {"context": {"wallet": "0x" + "1" * 40}, "replication_key_value": 7}
    state: dict[str, Any] = {"bookmarks": {"activity": {"partitions": [stored]}}}
    manager = IndexedStateManager(
        tap_name="tap-dome",
        stream_name="activity",
        tap_state=state,
        state_partitioning_keys=None,
        is_sorted=False,
        check_sorted=False,
    )
    assert manager.peek({"wallet": "0x" + "1" * 40}) is stored
    assert manager.peek({"wallet": "0x" + "2" * 40}) is None
    assert state == {"bookmarks": {"activity": {"partitions": [stored]}}}
    empty: dict[str, Any] = {}
    fresh = IndexedStateManager(
        tap_name="tap-dome",
        stream_name="activity",
        tap_state=empty,
        state_partitioning_keys=None,
        is_sorted=False,
        check_sorted=False,
    )
    assert fresh.peek({"wallet": "0x" + "2" * 40}) is None
    assert not empty.get("bookmarks", {}).get("activity", {}).get("partitions")
    made = fresh.get_context_state({"wallet": "0x" + "2" * 40})
    assert fresh.peek({"wallet": "0x" + "2" * 40}) is made


def test_bulk_output_equals_the_sdk_path(tmp_path: Path, simulator_factory: Any) -> None:
    """A stream map forces the SDK's own per-record path: same records, plus the map."""
    sim = simulator_factory(Dataset.custom([300, 40, 0], seed=9))
    fast = run_tap(tmp_path / "fast", tap_config(sim, page_size=50))
    mapped = run_tap(
        tmp_path / "sdk",
        tap_config(sim, page_size=50, stream_maps={"orders": {"id_copy": "order_id"}}),
    )
    assert fast.returncode == 0, fast.stderr[-2000:]
    assert mapped.returncode == 0, mapped.stderr[-2000:]
    assert all(r["id_copy"] == r["order_id"] for r in mapped.records)
    stripped = [{k: v for k, v in r.items() if k != "id_copy"} for r in mapped.records]
    assert sorted(fast.records, key=lambda r: r["order_id"]) == sorted(
        stripped, key=lambda r: r["order_id"]
    )
    assert len(fast.records) == 340
    # The message envelope is the SDK's: same keys, an aware ISO 8601 time_extracted.
    fast_lines = [m for m in fast.messages if m["type"] == "RECORD"]
    sdk_lines = [m for m in mapped.messages if m["type"] == "RECORD"]
    assert (
        set(fast_lines[0])
        == set(sdk_lines[0])
        == {
            "type",
            "stream",
            "record",
            "time_extracted",
        }
    )
    assert datetime.fromisoformat(fast_lines[0]["time_extracted"]).tzinfo is not None
    # The record counter still counts what the bulk path wrote.
    counts = [
        json.loads(line.split("METRIC: ", 1)[1])
        for line in fast.stderr.splitlines()
        if "METRIC: " in line and '"record_count"' in line
    ]
    assert sum(c["value"] for c in counts) == 340


def test_test_mode_still_stops_after_one_record(tmp_path: Path, simulator_factory: Any) -> None:
    import subprocess

    sim = simulator_factory(Dataset.custom([120], seed=4))
    (tmp_path / "config.json").write_text(json.dumps(tap_config(sim, page_size=50)))
    done = subprocess.run(
        [*TAP, "--config", str(tmp_path / "config.json"), "--test"],
        capture_output=True,
        text=True,
        env=tap_env(),
        check=False,
        timeout=60,
    )
    records = [line for line in done.stdout.splitlines() if '"type":"RECORD"' in line]
    assert done.returncode == 0, done.stderr[-2000:]
    # One record per stream at most, and the orders stream gave exactly one.
    assert len([r for r in records if '"stream":"orders"' in r]) == 1
    assert len(records) <= 4


def test_encoded_state_writer_writes_each_change_once() -> None:
    """In-place changes count (the SDK mutates its state dict), repeats are not written."""

    class Sink:
        def __init__(self) -> None:
            self.values: list[str] = []

        def write_message(self, message: Any) -> None:
            self.values.append(json.dumps(message.value, sort_keys=True))

    sink = Sink()
    writer = EncodedStateWriter(sink)
    assert "_message_writer" in inspect.getsource(StateWriter.__init__)
    state: dict[str, Any] = {"bookmarks": {"orders": {"partitions": [{"v": 1}]}}}
    writer.write_state(state)
    writer.write_state(state)
    state["bookmarks"]["orders"]["partitions"][0]["v"] = 2  # mutated in place
    writer.write_state(state)
    writer.write_state(state)
    assert [json.loads(v)["bookmarks"]["orders"]["partitions"][0]["v"] for v in sink.values] == [
        1,
        2,
    ]
