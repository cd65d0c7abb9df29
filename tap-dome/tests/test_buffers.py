"""The tap's pool of big buffers: reused only once nothing holds them, never overwritten in use."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from dome_simulator import API_FIELDS, Dataset, WalletSpec
from tap_dome.buffers import MIN_POOLED_BYTES, BufferPool
from tap_dome.rows import EncodedLines, Rows
from tap_dome.spool import Spool
from tap_harness import run_tap, tap_config

SIZE = MIN_POOLED_BYTES * 2


def test_a_released_buffer_is_handed_out_again_at_the_size_asked() -> None:
    pool = BufferPool()
    first = pool.take(SIZE)
    first_id = id(first)
    del first
    for size in (SIZE + 12_345, SIZE - 777, MIN_POOLED_BYTES, 5 * SIZE):
        again = pool.take(size)
        assert id(again) == first_id
        assert len(again) == size
        del again
    assert pool.reused == 4
    assert len(pool) == 1


def test_a_buffer_anyone_still_holds_is_never_handed_out() -> None:
    pool = BufferPool()
    held = pool.take(SIZE)
    held[:5] = b"kept!"
    viewed = pool.take(SIZE)
    viewed[:5] = b"view!"
    view = memoryview(viewed)[:5]
    del viewed  # only a slice's view of it is left
    raw_source = pool.take(SIZE)
    raw_source[:5] = b"raw!!"
    raw = msgspec.Raw(memoryview(raw_source)[:5])
    del raw_source  # only a msgspec.Raw of part of it is left (a parked page's rows)
    fresh = [pool.take(SIZE) for _ in range(3)]
    for buffer in fresh:
        buffer[:5] = b"xxxxx"
    assert bytes(held[:5]) == b"kept!"
    assert bytes(view) == b"view!"
    assert bytes(raw) == b"raw!!"
    assert pool.reused == 0
    assert len(pool) == 6


def test_small_buffers_are_not_pooled_and_the_pool_is_bounded() -> None:
    pool = BufferPool(max_buffers=2)
    assert len(pool.take(MIN_POOLED_BYTES - 1)) == MIN_POOLED_BYTES - 1
    assert len(pool) == 0
    held = [pool.take(SIZE) for _ in range(4)]  # two kept by the pool, two not
    assert len(pool) == 2
    assert len({id(b) for b in held}) == 4
    del held
    assert pool.take(SIZE) is not None
    assert pool.reused == 1


def test_threads_never_share_a_buffer() -> None:
    pool = BufferPool(max_buffers=8)
    failures: list[str] = []

    def work(mark: int) -> None:
        pattern = bytes([mark]) * 64
        for round_ in range(100):
            buffer = pool.take(SIZE + round_)
            buffer[:64] = pattern
            buffer[-64:] = pattern
            time.sleep(0.0002)  # the other threads take buffers while this one is held
            if buffer[:64] != pattern or buffer[-64:] != pattern:
                failures.append(f"thread {mark}, round {round_}")
            del buffer

    threads = [threading.Thread(target=work, args=(i,)) for i in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert pool.reused > 0


def test_pages_taken_from_the_spool_stay_whole_while_more_are_taken(tmp_path: Path) -> None:
    # Lines read back from disk land in pooled buffers: a page the tap still holds (waiting
    # in memory, or cut at a window's edge) must keep its lines while later pages are read.
    spool = Spool(str(tmp_path))
    pages = []
    for n in range(12):
        line = b'{"type":"RECORD","record":{"n":%d,"pad":"%s"}}\n' % (n, b"p" * 900)
        lines = line * (SIZE // len(line) + 1)
        pages.append(Rows.from_lines(EncodedLines(lines, [f"c{n}"]), list(range(len(lines)))))
    parked = [spool.park(page) for page in pages]
    kept = []
    for n, place in enumerate(parked):
        taken = spool.take(place)
        assert taken.encoded is not None
        assert taken.encoded.lines == pages[n].encoded.lines  # type: ignore[union-attr]
        if n % 3 == 0:
            kept.append((n, taken))  # held on; the others are dropped and their buffers reused
    for n, taken in kept:
        assert taken.encoded is not None
        assert taken.encoded.lines == pages[n].encoded.lines  # type: ignore[union-attr]
    spool.close()


def test_every_fill_exact_when_big_pages_are_parked_and_read_back(
    tmp_path: Path, simulator_factory: Any
) -> None:
    # Page 1000 under latency: pages of ~1 MB of lines come from the helpers and, behind the
    # head's chain, go to disk and back, all through pooled buffers. Every fill once, with
    # the API's values.
    sim = simulator_factory(
        Dataset.custom([WalletSpec(60_000, span=200 * 86400), 300], seed=12),
        latency=(0.06, 0.09),
    )
    run = run_tap(
        tmp_path, tap_config(sim, page_size=1000, max_window_fills=5000, max_concurrency=64)
    )
    assert run.returncode == 0, run.stderr[-3000:]
    parked = re.findall(r"(\d+) pages parked on disk", run.stderr)
    assert parked, run.stderr[-3000:]
    assert int(parked[0]) > 0, "nothing was parked: the test reads no page back"
    truth = {t["order_id"]: t for t in sim.truth()}
    ids = [r["order_id"] for r in run.records]
    assert len(ids) == len(set(ids)) == len(truth)
    for record in run.records:
        expected = truth[record["order_id"]]
        assert {k: record.get(k) for k in API_FIELDS if k in expected} == {
            k: expected[k] for k in API_FIELDS if k in expected
        }
