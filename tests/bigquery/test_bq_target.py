"""target-bigquery (tap-dome's loader: staged files in GCS, BigQuery load jobs) on hand-written
Singer streams, against the emulators: files are staged in the bucket, loaded by load jobs, and
every STATE the target emits is already covered by rows in the raw table.

The target reads its input from a pipe that the test feeds chunk by chunk, so the raw table can
be inspected at the moment a STATE appears on the target's stdout (and the target killed then,
also between an upload and its load, and between a load and its STATE).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import select
import signal
import subprocess
import time
import uuid
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
    """Messages as singer-sdk taps write them (compact JSON): the loader's fast path."""
    return b"".join(json.dumps(m, separators=(",", ":")).encode() + b"\n" for m in messages)


def schema_msg() -> dict[str, Any]:
    return {
        "type": "SCHEMA",
        "stream": "orders",
        "schema": SCHEMA,
        "key_properties": ["order_id"],
    }


def records(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"type": "RECORD", "stream": "orders", "record": record(i)} for i in range(start, stop)]


class Target:
    """A target process fed through a pipe, its stdout (STATE lines) read as they come."""

    def __init__(
        self,
        bq: bq_harness.Stack,
        workdir: Path,
        dataset: str,
        env: dict[str, str] | None = None,
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
            "batch_size": 100,
            "load_interval_seconds": 0,
            **config,
        }
        cfg_path = workdir / f"{dataset}.json"
        cfg_path.write_text(json.dumps(cfg))
        cmd = [str(LOADER_VENV / "bin" / "target-bigquery-dome")]
        self.log = workdir / f"{dataset}.log"
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(
            [*cmd, "--config", str(cfg_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, **bq.env(), **(env or {})},
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

    # Staged objects are deleted once loaded: what is left is at most the two files after the
    # last STATE (430-529, 530-629) if their loads had not finished; 630-699 were never sealed.
    staged = bq.list_objects(BUCKET, "target_bigquery/tgt_kill/orders/")
    assert len(staged) <= 2, staged
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
    assert "upload of a staged file to GCS failed" in target.stderr()


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


def test_kill_after_upload_before_load_loses_nothing(bq: bq_harness.Stack, workdir: Path) -> None:
    """Files uploaded, their load job not started: no STATE; a rerun from the old state loads
    what the tap sends again. The dead run's files stay until they are `leftover_hours` old
    (test_a_later_run_removes_what_a_killed_run_left); the rerun's own are deleted once loaded."""
    pause = {"TARGET_BIGQUERY_DOME_TEST_PAUSE": "before_load=60"}
    target = Target(bq, workdir, "tgt_upkill", env=pause)
    prefix = "target_bigquery/tgt_upkill/orders/"
    try:
        target.send(lines(schema_msg(), *records(0, 250), state_msg(249)))
        # Every file of the checkpoint is uploaded; the load job is held back.
        assert wait_until(lambda: len(bq.list_objects(BUCKET, prefix)) == 3), target.stderr()
        assert wait_until(lambda: "test pause before_load" in target.stderr())
    finally:
        target.kill()
    assert target.states == []
    assert target.raw_ids() == set()
    staged = bq.list_objects(BUCKET, prefix)
    assert len(staged) == 3

    # The rerun: the tap starts from the last stored STATE (none), so it sends it all again.
    rerun = Target(bq, workdir, "tgt_upkill")
    rerun.send(lines(schema_msg(), *records(0, 300), state_msg(299)))
    assert rerun.finish() == 0, rerun.stderr()
    assert bookmark(rerun.states[-1]) == record(299)["timestamp"]
    raw = bq.query(f"select order_id from `{bq.project}.tgt_upkill.orders`")
    assert sorted(r["order_id"] for r in raw) == sorted(ids(0, 300))
    assert sorted(bq.list_objects(BUCKET, prefix)) == sorted(staged)


def test_kill_after_load_before_state_double_loads_harmlessly(
    bq: bq_harness.Stack, workdir: Path
) -> None:
    """The load job finished, the STATE after it was never written: the rerun sends and loads
    the same rows again. The raw table then holds them twice (dbt keeps one)."""
    pause = {"TARGET_BIGQUERY_DOME_TEST_PAUSE": "after_load=60"}
    target = Target(bq, workdir, "tgt_loadkill", env=pause)
    try:
        target.send(lines(schema_msg(), *records(0, 150), state_msg(149)))
        assert wait_until(lambda: "test pause after_load" in target.stderr()), target.stderr()
    finally:
        target.kill()
    assert target.states == []
    assert target.raw_ids() == ids(0, 150)

    rerun = Target(bq, workdir, "tgt_loadkill")
    rerun.send(lines(schema_msg(), *records(0, 200), state_msg(199)))
    assert rerun.finish() == 0, rerun.stderr()
    raw = [
        r["order_id"] for r in bq.query(f"select order_id from `{bq.project}.tgt_loadkill.orders`")
    ]
    assert sorted(raw) == sorted([*ids(0, 150), *ids(0, 200)])
    assert bookmark(rerun.states[-1]) == record(199)["timestamp"]


def write_batch_file(path: Path, start: int, stop: int) -> str:
    """A gzip JSONL file as singer-sdk's batch writer makes it (stdlib json, one record a line)."""
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for i in range(start, stop):
            fh.write(json.dumps(record(i)) + "\n")
    return path.as_uri()


def batch_msg(*uris: str) -> dict[str, Any]:
    return {
        "type": "BATCH",
        "stream": "orders",
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "manifest": list(uris),
    }


def test_batch_messages_are_loaded_from_the_taps_files(bq: bq_harness.Stack, workdir: Path) -> None:
    files = workdir / "tap-batches"
    files.mkdir()
    first = write_batch_file(files / "b1.json.gz", 0, 120)
    second = write_batch_file(files / "b2.json.gz", 120, 300)
    target = Target(bq, workdir, "tgt_batch")
    try:
        target.send(lines(schema_msg(), batch_msg(first), state_msg(119)))
        target.wait_state(1)
        assert target.raw_ids() == ids(0, 120)
        target.send(lines(batch_msg(second), state_msg(299)))
        rc = target.finish()
    finally:
        if target.proc.poll() is None:
            target.kill()
    assert rc == 0, target.stderr()
    assert bookmark(target.states[-1]) == record(299)["timestamp"]
    rows = bq.query(
        "select order_id, shares, filled_at, _sdc_batched_at, _sdc_extracted_at "
        f"from `{bq.project}.tgt_batch.orders`"
    )
    assert sorted(r["order_id"] for r in rows) == sorted(ids(0, 300))
    assert all(r["_sdc_batched_at"] and r["_sdc_extracted_at"] for r in rows)
    by_id = {r["order_id"]: r for r in rows}
    assert by_id[record(200)["order_id"]]["shares"] == record(200)["shares"]
    # Each loaded tap file is removed, and so is its staged copy in GCS.
    assert list(files.iterdir()) == []
    assert bq.list_objects(BUCKET, "target_bigquery/tgt_batch/orders/") == []


def test_workload_identity_without_a_key_file(bq: bq_harness.Stack, workdir: Path) -> None:
    """No key file and no GOOGLE_APPLICATION_CREDENTIALS: the loader takes application default
    credentials from the metadata server (a VM's account, GKE workload identity) and loads."""
    tokens = bq.metadata_tokens()
    target = Target(bq, workdir, "tgt_adc", env=bq.workload_identity_env(), credentials_path=None)
    target.send(lines(schema_msg(), *records(0, 150), state_msg(149)))
    assert target.finish() == 0, target.stderr()
    assert bookmark(target.states[-1]) == record(149)["timestamp"]
    assert target.raw_ids() == ids(0, 150)
    assert "credentials application default credentials" in target.stderr()
    assert bq.metadata_tokens() > tokens


def test_workload_identity_credentials_refresh_more_than_once(bq: bq_harness.Stack) -> None:
    """google-auth reads the account by its email once it knows it: a second refresh of the
    same credentials (two of the loader's threads that found no token at once) must work
    as on a real metadata server, or the loader dies at random under load."""
    code = (
        "import google.auth.transport.requests as t, google.auth.compute_engine as ce\n"
        "c = ce.Credentials()\n"
        "r = t.Request()\n"
        "c.refresh(r)\n"
        "c.refresh(r)\n"
        "print(c.service_account_email, bool(c.token))\n"
    )
    done = subprocess.run(
        [str(LOADER_VENV / "bin" / "python"), "-c", code],
        env={**os.environ, **bq.workload_identity_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [bq_harness.METADATA_EMAIL, "True"]


def tap_file(folder: Path, index: int) -> Path:
    """A path named as the tap's batch writer names the files of stream `orders`."""
    return folder / f"orders-tap-dome--orders-{uuid.uuid4()}-{index}.json"


def test_a_later_run_removes_what_a_killed_run_left(bq: bq_harness.Stack, workdir: Path) -> None:
    """A run killed with files in all three places (its temp folder, the tap's batch folder,
    the bucket); the next run removes them, keeps what is not a dead run's (a fresh tap file,
    a file of another name), and loads exactly what it was sent."""
    temp, batches = workdir / "tmp", workdir / "tap-batches"
    temp.mkdir()
    batches.mkdir()
    prefix = "target_bigquery/tgt_left/orders/"
    dead = Target(
        bq,
        workdir,
        "tgt_left",
        env={"TARGET_BIGQUERY_DOME_TEST_PAUSE": "before_load=60"},
        temp_dir=str(temp),
    )
    try:
        dead.send(lines(schema_msg(), *records(0, 250), state_msg(249), *records(250, 270)))
        assert wait_until(lambda: len(bq.list_objects(BUCKET, prefix)) == 3), dead.stderr()
        assert wait_until(lambda: "test pause before_load" in dead.stderr())
    finally:
        dead.kill()
    dead_temp = [
        p for p in temp.iterdir() if p.name.startswith(f"target-bigquery-{dead.proc.pid}-")
    ]
    assert len(dead_temp) == 1, list(temp.iterdir())
    assert any(dead_temp[0].iterdir())  # the open file of rows 250-269
    dead_objects = bq.list_objects(BUCKET, prefix)

    old_file, fresh_file = tap_file(batches, 1), tap_file(batches, 2)
    other = batches / "notes.json"
    for path in (old_file, fresh_file, other):
        path.write_text(json.dumps(record(0)) + "\n")
    seven_hours_ago = time.time() - 7 * 3600
    for path in (old_file, other):
        os.utime(path, (seven_hours_ago, seven_hours_ago))
    os.utime(fresh_file, (time.time() + 3600, time.time() + 3600))  # a live run's, in effect
    loaded = tap_file(batches, 3)
    write_batch_file(loaded, 0, 300)
    time.sleep(2)  # the dead run's objects are older than leftover_hours (2 s)

    rerun = Target(bq, workdir, "tgt_left", temp_dir=str(temp), leftover_hours=0.5 / 3600)
    rerun.send(lines(schema_msg(), batch_msg(loaded.as_uri()), state_msg(299)))
    assert rerun.finish() == 0, rerun.stderr()
    assert bookmark(rerun.states[-1]) == record(299)["timestamp"]
    assert sorted(rerun.raw_ids()) == sorted(ids(0, 300))
    # The dead run's staged objects are gone, and so are the rerun's (loaded).
    assert dead_objects
    assert bq.list_objects(BUCKET, prefix) == []
    assert list(temp.iterdir()) == [], list(temp.iterdir())
    assert sorted(p.name for p in batches.iterdir()) == sorted([fresh_file.name, other.name])
    assert "Removed 1 batch file(s) of stream orders" in rerun.stderr()


def test_parsed_lines_new_columns_and_metadata(bq: bq_harness.Stack, workdir: Path) -> None:
    """Lines the fast slice does not take (spaced JSON, extra keys) load the same values; a new
    property in a later SCHEMA becomes a new column."""
    target = Target(bq, workdir, "tgt_shapes")
    spaced = {
        "type": "RECORD",
        "stream": "orders",
        "record": record(1),
        "time_extracted": "2026-01-02T03:04:05.000006+00:00",
    }
    odd = {"type": "RECORD", "stream": "orders", "record": record(2), "extra": {"a": 1}}
    wider = json.loads(json.dumps(SCHEMA))
    wider["properties"]["venue"] = {"type": ["string", "null"]}
    new_schema = {**schema_msg(), "schema": wider}
    with_venue = {**record(3), "venue": "clob"}
    target.send(
        json.dumps(schema_msg()).encode()
        + b"\n"
        + lines(records(0, 1)[0])
        + json.dumps(spaced).encode()  # json.dumps' default ", " / ": " separators
        + b"\n"
        + lines(odd, new_schema)
        + lines({"type": "RECORD", "stream": "orders", "record": with_venue})
        + lines(state_msg(3))
    )
    assert target.finish() == 0, target.stderr()
    assert "venue" in bq.table_columns("tgt_shapes", "orders")
    rows = {
        r["order_id"]: r
        for r in bq.query(
            "select order_id, price, shares, venue, _sdc_extracted_at "
            f"from `{bq.project}.tgt_shapes.orders`"
        )
    }
    assert set(rows) == ids(0, 4)
    for i in range(4):
        assert rows[record(i)["order_id"]]["price"] == record(i)["price"]
        assert rows[record(i)["order_id"]]["shares"] == record(i)["shares"]
    assert rows[record(1)["order_id"]]["_sdc_extracted_at"] == 1767323045.000006
    assert rows[record(3)["order_id"]]["venue"] == "clob"
    assert rows[record(0)["order_id"]]["venue"] is None


def wait_until(check: Any, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False
