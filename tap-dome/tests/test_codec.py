"""Pages written out by helper processes (codec.py): the same records, nothing lost when a
helper dies, nothing a helper does reaches the tap's stdout."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from dome_simulator import Dataset, WalletSpec
from tap_dome.codec import MIN_HELPER_BODY_BYTES, EncoderPool, EncodeSpec
from tap_dome.concurrency import limit_malloc_arenas
from tap_dome.records import RecordBuilder
from tap_dome.rows import split_rows
from tap_harness import run_tap, start_tap, tap_config, truth_ids

HEAD = b'{"type":"RECORD","stream":"orders","record":'
TAIL = b',"time_extracted":"2026-12-07T00:00:00+00:00"}'
WALLET = "0x" + "ab" * 20


def _known() -> frozenset[str]:
    from importlib import resources

    text = resources.files("tap_dome.schemas").joinpath("orders.json").read_text()
    return frozenset(json.loads(text)["properties"])


def _records(run: Any) -> dict[str, dict[str, Any]]:
    return {r["order_id"]: r for r in run.stream("orders")}


def test_helpers_write_the_records_the_tap_writes_itself(
    tmp_path: Path, simulator_factory: Any
) -> None:
    # The standard dataset's edge cases: fields outside the schema, odd types, no log_index.
    sim = simulator_factory(Dataset.standard(page=100, large=600))
    runs = {}
    for helpers in (0, 2):
        config = tap_config(sim, page_size=250, encode_processes=helpers)
        run = run_tap(tmp_path / str(helpers), config, streams=("orders",))
        assert run.returncode == 0, run.stderr[-3000:]
        assert len(run.ids) == len(set(run.ids))  # no record twice on stdout
        runs[helpers] = run
    assert set(_records(runs[2])) == truth_ids(sim)
    written = re.search(r"Helper processes wrote (\d+) of (\d+) pages", runs[2].stderr)
    assert written is not None
    assert int(written.group(1)) > 0  # the helpers did write pages
    assert "Helper processes" not in runs[0].stderr
    assert _records(runs[2]) == _records(runs[0])
    # Each bookmark covers its wallet's fills and never runs ahead of the API's data
    # (which value in between depends on when the other wallets' pages came back).
    newest = max(r["timestamp"] for r in runs[2].records)
    for partition in (runs[2].last_state or {})["bookmarks"]["orders"]["partitions"]:
        wallet, mark = partition["context"]["wallet"], partition.get("replication_key_value")
        own = [r["timestamp"] for r in runs[2].records if r["wallet"] == wallet]
        if own:
            assert mark is not None
            assert max(own) <= mark <= newest
    # Every line on stdout is one whole Singer message (helpers never write there).
    for line in runs[2].stdout.splitlines():
        assert json.loads(line)["type"] in {"SCHEMA", "RECORD", "STATE", "BATCH"}


def test_a_helper_that_dies_leaves_its_pages_to_the_tap(
    simulator_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sim = simulator_factory(Dataset.custom([WalletSpec(300)], seed=3))
    body = _first_page(sim)
    builder = RecordBuilder(_known())
    pool = EncoderPool.start(1, logging.getLogger("test-codec"), min_body_bytes=0)
    assert pool is not None
    try:
        pool.register(EncodeSpec("orders", builder.recipe(), "orders", HEAD))
        page = pool.encode("orders", WALLET, TAIL, body)
        assert page is not None  # written by the helper
        expected = builder.lines(
            split_rows(body, "orders", builder.typed_rows("orders"))[0],
            WALLET,
            set(),
            head=HEAD,
            tail=TAIL,
        )
        assert page.rows.encoded is not None
        assert _parsed(page.rows.encoded.lines) == _parsed(expected)
        assert page.rows.stamps == split_rows(body, "orders")[0].stamps
        (child,) = pool._children
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=10)
        with caplog.at_level(logging.WARNING, logger="test-codec"):
            assert pool.encode("orders", WALLET, TAIL, body) is None  # the tap's own, now
            assert pool.encode("orders", WALLET, TAIL, body) is None
        warnings = [r for r in caplog.records if "helper process failed" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        pool.close()


def test_a_page_that_is_not_typed_is_left_to_the_tap(simulator_factory: Any) -> None:
    sim = simulator_factory(Dataset.custom([WalletSpec(50)], seed=4))
    body = _first_page(sim).replace(b'"price":', b'"price":"', 1)  # not JSON any more
    builder = RecordBuilder(_known())
    pool = EncoderPool.start(1, logging.getLogger("test-codec"), min_body_bytes=0)
    assert pool is not None
    try:
        pool.register(EncodeSpec("orders", builder.recipe(), "orders", HEAD))
        assert pool.encode("orders", WALLET, TAIL, body) is None
        assert pool.encode("orders", WALLET, TAIL, _first_page(sim)) is not None  # still up
    finally:
        pool.close()


def test_a_window_edge_keeps_the_lines_of_its_rows(simulator_factory: Any) -> None:
    sim = simulator_factory(Dataset.custom([WalletSpec(40)], seed=5))
    body = _first_page(sim)
    builder = RecordBuilder(_known())
    pool = EncoderPool.start(1, logging.getLogger("test-codec"), min_body_bytes=0)
    assert pool is not None
    try:
        pool.register(EncodeSpec("orders", builder.recipe(), "orders", HEAD))
        page = pool.encode("orders", WALLET, TAIL, body)
        assert page is not None
        stamps = page.rows.stamps
        cut = sorted(s for s in stamps if s is not None)[len(stamps) // 2]
        kept = page.rows.where(lambda stamp: stamp >= cut)
        assert kept.encoded is not None
        records = [m["record"] for m in _parsed(kept.encoded.lines)]
        assert [r["timestamp"] for r in records] == [
            s for s in stamps if s is not None and s >= cut
        ]
        assert kept.stamps == [r["timestamp"] for r in records]
    finally:
        pool.close()


def test_the_first_rows_of_a_written_page_keep_their_lines_for_every_count(
    simulator_factory: Any,
) -> None:
    # A window's edge keeps a page's first rows: their lines are found from either end of
    # the text, whichever is nearer; every count must give exactly those rows' lines.
    sim = simulator_factory(Dataset.custom([WalletSpec(40)], seed=5))
    body = _first_page(sim)
    builder = RecordBuilder(_known())
    pool = EncoderPool.start(1, logging.getLogger("test-codec"), min_body_bytes=0)
    assert pool is not None
    try:
        pool.register(EncodeSpec("orders", builder.recipe(), "orders", HEAD))
        page = pool.encode("orders", WALLET, TAIL, body)
        assert page is not None
        assert page.rows.encoded is not None
        every = [m["record"]["order_id"] for m in _parsed(page.rows.encoded.lines)]
        assert len(every) == len(page.rows) > 4
        for count in range(len(every) + 1):
            kept = page.rows.first(count)
            assert kept.encoded is not None
            assert [m["record"]["order_id"] for m in _parsed(kept.encoded.lines)] == every[:count]
            assert list(kept.stamps) == list(page.rows.stamps)[:count]
            assert len(kept) == count
    finally:
        pool.close()


def test_encode_processes_is_checked(tmp_path: Path, simulator_factory: Any) -> None:
    sim = simulator_factory(Dataset.custom([WalletSpec(5)], seed=6))
    for value in (9, -1, 1.5, "two"):
        run = run_tap(tmp_path / str(value), tap_config(sim, encode_processes=value))
        assert run.returncode != 0
        assert "encode_processes" in run.stderr
        assert "Traceback" not in run.stderr
        assert run.records == []


def test_a_helper_reuses_its_memory_page_after_page(simulator_factory: Any) -> None:
    # Forked from the tap, a helper inherits its fixed mmap threshold (256 KiB): each
    # page's body, rows and lines were fresh mappings, faulted in 4 KiB at a time and
    # unmapped again (~65,000 faults per helper on a million fills; a fourth of its CPU).
    sim = simulator_factory(Dataset.custom([WalletSpec(1000)], seed=8))
    body = _first_page(sim, limit=1000)
    assert len(body) > 4 * MIN_HELPER_BODY_BYTES
    limit_malloc_arenas()  # as the tap's fetch workers set it, before the helpers fork
    builder = RecordBuilder(_known())
    pool = EncoderPool.start(1, logging.getLogger("test-codec"))
    assert pool is not None
    try:
        pool.register(EncodeSpec("orders", builder.recipe(), "orders", HEAD))
        first = pool.encode("orders", WALLET, TAIL, body)
        assert first is not None
        assert first.rows.encoded is not None
        assert len(_parsed(first.rows.encoded.lines)) == 1000
        (pid,) = pool.pids
        before = _minor_faults(pid)
        for _ in range(20):
            page = pool.encode("orders", WALLET, TAIL, body)
            assert page is not None
            assert page.rows.encoded is not None
            assert page.rows.encoded.lines == first.rows.encoded.lines
        # A fresh mapping of the body alone is a fault per 4 KiB of it; the heap kept, a
        # page costs a few (measured: ~25 per page, ~1,000 before).
        per_page = (_minor_faults(pid) - before) / 20
        assert per_page < len(body) / 4096 / 2, f"{per_page:.0f} page faults per page"
    finally:
        pool.close()


def _minor_faults(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[7])


def _first_page(sim: Any, limit: int = 100) -> bytes:
    import requests

    from tap_harness import API_KEY

    response = requests.get(
        f"{sim.base_url}/polymarket/orders",
        params={"user": sim.wallets[0], "limit": limit},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.content


def _parsed(lines: bytes | bytearray) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in bytes(lines).splitlines()]


def test_helpers_end_on_their_own_when_the_pool_closes() -> None:
    # Each helper must see the tap close its socket, even with several helpers forked
    # one after another (each must not keep the others' sockets open).
    pool = EncoderPool.start(4, logging.getLogger("test-codec"))
    assert pool is not None
    children = list(pool._children)
    pool.close()
    assert [child.exitcode for child in children] == [0, 0, 0, 0]  # none had to be killed


def test_helpers_end_when_the_tap_is_killed(tmp_path: Path, simulator_factory: Any) -> None:
    # kill -9 gives the tap no time to stop them: each sees its socket close, and ends.
    sim = simulator_factory(Dataset.custom([WalletSpec(20_000)], seed=7), latency=(0.02, 0.05))
    tap = start_tap(tmp_path, tap_config(sim, page_size=100, encode_processes=3))
    assert tap.stdout is not None
    while '"type":"RECORD"' not in tap.stdout.readline():
        pass
    children = Path(f"/proc/{tap.pid}/task/{tap.pid}/children").read_text().split()
    assert len(children) == 3
    tap.kill()
    tap.wait()
    tap.stdout.close()
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in children):
        assert time.monotonic() < deadline, "a helper outlived the tap"
        time.sleep(0.05)


def test_a_small_page_is_written_by_the_tap(simulator_factory: Any) -> None:
    # A few fills cost more to send to a helper and back than to write in place.
    sim = simulator_factory(Dataset.custom([WalletSpec(20)], seed=8))
    body = _first_page(sim)
    assert len(body) < MIN_HELPER_BODY_BYTES
    builder = RecordBuilder(_known())
    pool = EncoderPool.start(1, logging.getLogger("test-codec"))
    assert pool is not None
    try:
        pool.register(EncodeSpec("orders", builder.recipe(), "orders", HEAD))
        assert pool.encode("orders", WALLET, TAIL, body) is None
        assert pool.counts["small"] == 1
        assert pool.counts["written"] == 0
    finally:
        pool.close()
