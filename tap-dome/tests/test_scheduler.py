"""The concurrent scheduler in-process: order, completeness and no deadlock under splits."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

import pytest

from dome_simulator import Dataset, DomeSimulator
from tap_dome.client import ORDERS
from tap_dome.errors import DomeAuthError
from tap_dome.events import WindowDone
from tap_dome.fetch import FetchStats, PageFetcher
from tap_dome.ratelimit import RateLimiter
from tap_dome.scheduler import FetchScheduler
from tap_dome.windows import Window

LOG = logging.getLogger("test-scheduler")
START = 1_577_836_800  # 2020-01-01


def _fetcher(sim: DomeSimulator, key: str = "k", stats: FetchStats | None = None) -> PageFetcher:
    return PageFetcher(
        base_url=sim.base_url,
        headers={"Authorization": f"Bearer {key}"},
        limiter=RateLimiter.for_rates(10_000, 100_000),
        timeout=10,
        max_retries=2,
        stats=stats or FetchStats(),
        logger=LOG,
    )


def _consume(scheduler: FetchScheduler, wallets: list[str]) -> dict[str, Any]:
    """Drain like the stream does; returns pages, completed windows, or the error."""
    out: dict[str, Any] = {"ids": {}, "windows": {}}

    def run() -> None:
        try:
            for wallet in wallets:
                ids: list[str] = []
                windows: list[Window] = []
                for event in scheduler.iter_wallet(wallet):
                    if isinstance(event, WindowDone):
                        windows.append(event.window)
                    else:
                        ids.extend(f"{f['tx_hash']}:{f['log_index']}" for f in event.fills)
                out["ids"][wallet] = ids
                out["windows"][wallet] = windows
        except Exception as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    out["hung"] = thread.is_alive()
    scheduler.close()
    return out


@pytest.fixture(scope="module")
def split_heavy() -> Any:
    dataset = Dataset.standard(seed=11, page=50, large=3000)
    with DomeSimulator(dataset=dataset, api_key="k") as sim:
        yield sim


@pytest.mark.parametrize("attempt", range(8))
def test_windows_complete_in_order_without_deadlock(
    split_heavy: DomeSimulator, attempt: int
) -> None:
    sim = split_heavy
    end = int(time.time())
    scheduler = FetchScheduler(
        [(w, Window(START, end)) for w in sim.wallets],
        _fetcher(sim),
        page_size=50,
        max_concurrency=2 + attempt % 4,
        max_window_fills=150 + 50 * attempt,
        logger=LOG,
    ).start()
    result = _consume(scheduler, sim.wallets)
    assert not result["hung"], "scheduler deadlocked"
    assert "error" not in result
    for wallet in sim.wallets:
        expected = {t["order_id"] for t in sim.truth(wallet)}
        ids = result["ids"][wallet]
        assert len(ids) == len(set(ids))
        assert set(ids) == expected
        windows = result["windows"][wallet]
        # Completed windows tile [START, end] in order: the bookmark only moves forward.
        assert windows[0].start == START
        assert windows[-1].end == end
        for left, right in itertools.pairwise(windows):
            assert right.start == left.end + 1


def test_fatal_error_reaches_the_consumer(split_heavy: DomeSimulator) -> None:
    scheduler = FetchScheduler(
        [(w, Window(START, int(time.time()))) for w in split_heavy.wallets],
        _fetcher(split_heavy, key="wrong"),
        page_size=50,
        max_concurrency=3,
        max_window_fills=500,
        logger=LOG,
    ).start()
    result = _consume(scheduler, split_heavy.wallets)
    assert not result["hung"]
    assert isinstance(result.get("error"), DomeAuthError)


def test_retry_after_is_honoured_and_pauses_every_request(split_heavy: DomeSimulator) -> None:
    split_heavy.set_faults(fail_next={"429": 1}, retry_after=2)
    try:
        stats = FetchStats()
        fetcher = _fetcher(split_heavy, stats=stats)
        params = {"user": split_heavy.wallets[1], "start_time": START, "end_time": int(time.time())}
        started = time.monotonic()
        fetcher.fetch(ORDERS, params)
        first = time.monotonic() - started
        fetcher.fetch(ORDERS, params)
    finally:
        split_heavy.clear_faults()
    assert first >= 2.0, "the retry came before Retry-After"
    assert stats.rate_limited == 1
    assert stats.retries == 1
