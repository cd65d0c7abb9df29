"""target-bigquery (tap-dome's wrapper of z3-target-bigquery 0.7.2, gcs_stage) on hand-written
Singer streams, against the emulators: files are staged in the bucket, loaded by load jobs, and
every STATE the target emits is already covered by rows in the raw table.

The target reads its input from a pipe that the test feeds chunk by chunk, so the raw table can
be inspected at the moment a STATE appears on the target's stdout (and the target killed then).
A control runs upstream's target the same way and shows the loss this wrapper prevents.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.bigquery import bq_harness
from tests.bigquery.bq_pipeline import BUCKET, LOADER_VENV

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SCHEMA = json.loads((bq_harness.REPO / "tap-dome/tap_dome/schemas/orders.json").read_text())
WALLET = "0x" + "ab" * 20


def record(i: int) -> dict[str, Any]:
    ts = 1_700_000_000 + i
    return {
        "order_id": f"0x{i:064x}:{i % 7}",
        "wallet": WALLET,
        "user": WALLET,
        "taker": "0x" + "cd" * 20,
        "side": "BUY" if i % 2 else "SELL",
        "token_id": str(10**30 + i),
        "token_label": "Yes",
        "market_slug": f"market-{i % 5}",
        "condition_id": f"0x{i % 5:064x}",
        "title": f"Market {i % 5}?",
        "shares": 1_000_000 * (i + 1),
        "shares_normalized": float(i + 1),
        "price": round(0.01 + (i % 97) / 100, 2),
        "tx_hash": f"0x{i:064x}",
        "log_index": i % 7,
        "block_number": 50_000_000 + i,
        "order_hash": f"0x{i // 3:064x}",
        "timestamp": ts,
        "filled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)),
    }


def state_msg(i: int) -> dict[str, Any]:
    partition = {
        "context": {"wallet": WALLET},
        "replication_key": "timestamp",
        "replication_key_value": record(i)["timestamp"],
    }
    return {
        "type": "STATE",
        "value": {"bookmarks": {"orders": {"partitions": [partition]}}},
    }


def lines(*messages: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(m).encode() + b"\n" for m in messages)


def schema_msg() -> dict[str, Any]:
    return {
        "type": "SCHEMA",
        "stream": "orders",
        "schema": SCHEMA,
        "key_properties": ["order_id"],
    }


def records(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"type": "RECORD", "stream": "orders", "record": record(i)} for i in range(start, stop)]


# Upstream's target (not our wrapper), made to drain and emit STATE on every STATE message and to
# let idle upload threads go after 0.5 s instead of 30 s: otherwise exactly as shipped.
UPSTREAM = """
import queue
from target_bigquery.target import TargetBigQuery

class FastQueue(queue.Queue):
    def get(self, block=True, timeout=None):
        return super().get(block, 0.5)

class Upstream(TargetBigQuery):
    _MAX_RECORD_AGE_IN_MINUTES = 0.0
    def get_parallelization_components(self, default=None):
        proc, pipe, _queue, typ = super().get_parallelization_components()
        return proc, pipe, FastQueue, typ

Upstream.cli()
"""


class Target:
    """A target process fed through a pipe, its stdout (STATE lines) read as they come."""

    def __init__(
        self,
        bq: bq_harness.Stack,
        workdir: Path,
        dataset: str,
        upstream: bool = False,
        **config: Any,
    ) -> None:
        self.bq = bq
        self.dataset = dataset
        cfg = {
            "project": bq.project,
            "dataset": dataset,
            "location": bq.location,
            "bucket": BUCKET,
            "credentials_path": str(bq.credentials),
            "method": "gcs_stage",
            "denormalized": True,
            "batch_size": 100,
            "load_interval_seconds": 0,
            **config,
        }
        cfg_path = workdir / f"{dataset}.json"
        cfg_path.write_text(json.dumps(cfg))
        py = str(LOADER_VENV / "bin" / "python")
        cmd = (
            [py, "-c", UPSTREAM]
            if upstream
            else [str(LOADER_VENV / "bin" / "target-bigquery-dome")]
        )
        self.log = workdir / f"{dataset}.log"
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(
            [*cmd, "--config", str(cfg_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, **bq.env()},
            start_new_session=True,
        )
        self.states: list[dict[str, Any]] = []
        self._buf = b""

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def wait_state(self, count: int, timeout: float = 60) -> dict[str, Any]:
        """Wait until the target has written `count` STATE lines in all; return the last."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while len(self.states) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"no STATE #{count} from the target:\n{self.stderr()}"
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not ready:
                assert self.proc.poll() is None, f"target exited:\n{self.stderr()}"
                continue
            chunk = os.read(fd, 65536)
            assert chunk, f"target closed stdout:\n{self.stderr()}"
            self._buf += chunk
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                if line.strip():
                    self.states.append(json.loads(line))
        return self.states[count - 1]

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log.close()

    def finish(self, timeout: float = 120) -> int:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        out = self.proc.stdout.read() if self.proc.stdout else b""
        rc = self.proc.wait(timeout=timeout)
        self._log.close()
        self.states.extend(json.loads(x) for x in out.splitlines() if x.strip())
        return rc

    def stderr(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log.read_text(errors="replace")[-5000:]

    def raw_ids(self) -> set[str]:
        if not self.bq.table_exists(self.dataset, "orders"):
            return set()
        rows = self.bq.query(f"select order_id from `{self.bq.project}.{self.dataset}.orders`")
        return {r["order_id"] for r in rows}


def ids(start: int, stop: int) -> set[str]:
    return {record(i)["order_id"] for i in range(start, stop)}


def bookmark(state: dict[str, Any]) -> int:
    return int(state["bookmarks"]["orders"]["partitions"][0]["replication_key_value"])


@pytest.fixture
def workdir(tmp_path: Path, bq_installed: None) -> Path:
    return tmp_path


def test_loads_before_each_state_and_survives_a_kill(bq: bq_harness.Stack, workdir: Path) -> None:
    target = Target(bq, workdir, "tgt_kill")
    try:
        target.send(lines(schema_msg(), *records(0, 250), state_msg(249)))
        first = target.wait_state(1)
        # The moment STATE is out, every fill it covers is in the raw table (not only in GCS).
        assert bookmark(first) == record(249)["timestamp"]
        assert target.raw_ids() == ids(0, 250)

        target.send(lines(*records(250, 430), state_msg(429)))
        second = target.wait_state(2)
        assert bookmark(second) == record(429)["timestamp"]
        assert target.raw_ids() == ids(0, 430)

        # Records after the last STATE, batches full and uploaded, then the process dies.
        target.send(lines(*records(430, 700)))
        time.sleep(1.5)
    finally:
        target.kill()
    assert len(target.states) == 2
    raw = target.raw_ids()
    # Loaded ⊇ everything the last emitted bookmark covers; nothing beyond what was sent.
    assert ids(0, 430) <= raw <= ids(0, 700)

    # The batches were staged as files in the bucket first.
    staged = bq.list_objects(BUCKET, "target_bigquery/tgt_kill/orders/")
    assert len(staged) >= 5
    assert all(name.endswith(".jsonl.gz") for name in staged)

    # Typed columns, one per field of the stream, plus the loader's metadata.
    columns = bq.table_columns("tgt_kill", "orders")
    for name, typ in {
        "order_id": "STRING",
        "shares": "INTEGER",
        "price": "FLOAT",
        "timestamp": "INTEGER",
        "filled_at": "TIMESTAMP",
        "_sdc_batched_at": "TIMESTAMP",
        "_sdc_extracted_at": "TIMESTAMP",
    }.items():
        assert columns.get(name) == typ, (name, columns)
    assert set(SCHEMA["properties"]) <= set(columns)
    row = bq.query(
        "select order_id, shares, price, timestamp, filled_at, side, token_id "
        f"from `{bq.project}.tgt_kill.orders` where order_id = '{record(123)['order_id']}'"
    )
    want = record(123)
    assert row == [
        {
            "order_id": want["order_id"],
            "shares": want["shares"],
            "price": want["price"],
            "timestamp": want["timestamp"],
            "filled_at": float(want["timestamp"]),
            "side": want["side"],
            "token_id": want["token_id"],
        }
    ]


def test_upstream_target_emits_state_before_loading(bq: bq_harness.Stack, workdir: Path) -> None:
    """Control: z3-target-bigquery 0.7.2 as shipped. Its STATE runs ahead of the raw table, so
    the kill above would lose fills with it: this is what the wrapper exists for."""
    target = Target(bq, workdir, "tgt_upstream", upstream=True, batch_size=100)
    try:
        target.send(lines(schema_msg(), *records(0, 250), state_msg(249)))
        target.wait_state(1)
        loaded_at_state = target.raw_ids()
    finally:
        target.kill()
    assert loaded_at_state == set(), "upstream now loads before STATE: the wrapper may be moot"
    assert bq.list_objects(BUCKET, "target_bigquery/tgt_upstream/orders/"), "nothing was staged"
    assert target.raw_ids() == set()


def test_failed_upload_never_emits_state(bq: bq_harness.Stack, workdir: Path) -> None:
    bucket = "tap-dome-doomed"
    bq.create_bucket(bucket)
    target = Target(bq, workdir, "tgt_doomed", bucket=bucket)
    try:
        target.send(lines(schema_msg(), *records(0, 150), state_msg(149)))
        target.wait_state(1)
        bq.delete_bucket(bucket)  # the next uploads fail
        target.send(lines(*records(150, 320), state_msg(319)))
        rc = target.finish()
    finally:
        if target.proc.poll() is None:
            target.kill()
    assert rc != 0, target.stderr()
    assert len(target.states) == 1, f"STATE after a failed upload: {target.states}"
    assert target.raw_ids() == ids(0, 150)
    assert "upload of a staged batch to GCS failed" in target.stderr()


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({"bucket": "tap-dome-no-such-bucket"}, "TARGET_BIGQUERY_BUCKET"),
        ({"bucket": None}, "TARGET_BIGQUERY_BUCKET"),
        ({"location": "EU"}, "TARGET_BIGQUERY_LOCATION"),
        (
            {"credentials_path": "/nonexistent/key.json"},
            "TARGET_BIGQUERY_CREDENTIALS_PATH",
        ),
    ],
    ids=["missing-bucket", "no-bucket-setting", "wrong-location", "no-key-file"],
)
def test_bad_config_fails_before_reading_input(
    bq: bq_harness.Stack, workdir: Path, config: dict[str, Any], setting: str
) -> None:
    target = Target(bq, workdir, "tgt_bad", **config)
    with contextlib.suppress(BrokenPipeError):
        target.send(lines(schema_msg(), *records(0, 150), state_msg(149)))
    rc = target.finish()
    assert rc != 0
    assert target.states == []
    err = target.stderr()
    assert "configuration error" in err, err
    assert setting in err, err
    assert not bq.table_exists("tgt_bad", "orders")
