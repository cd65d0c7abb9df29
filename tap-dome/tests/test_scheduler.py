"""The concurrent scheduler in-process: order, completeness, no deadlock, and the tier's rate.

Every test runs the real scheduler, fetcher and limiter against a simulator on 127.0.0.1
and compares fill ids with the simulator's truth.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from typing import Any

import pytest

from dome_simulator import Dataset, DomeSimulator, WalletSpec
from tap_dome.budget import slice_pages
from tap_dome.client import ORDERS
from tap_dome.concurrency import (
    BASE_LATENCY_SAMPLES,
    HEADROOM,
    INITIAL_LATENCY_SECONDS,
    SPARE,
    ConcurrencyGate,
    ReadingSlots,
)
from tap_dome.errors import DomeAuthError
from tap_dome.events import WindowDone
from tap_dome.fetch import FetchStats, PageFetcher
from tap_dome.page import page_of
from tap_dome.ratelimit import RateLimiter, window_slack
from tap_dome.scheduler import PARK_MIN_LATENCY_SECONDS, FetchScheduler
from tap_dome.windows import Window

LOG = logging.getLogger("test-scheduler")
START = 1_577_836_800  # 2020-01-01


def _fetcher(
    sim: DomeSimulator,
    key: str = "k",
    stats: FetchStats | None = None,
    rates: tuple[float, int] = (10_000, 100_000),
) -> PageFetcher:
    return PageFetcher(
        base_url=sim.base_url,
        headers={"Authorization": f"Bearer {key}"},
        limiter=RateLimiter.for_rates(*rates),
        timeout=10,
        max_retries=2,
        stats=stats or FetchStats(),
        logger=LOG,
    )


def _consume(
    scheduler: FetchScheduler,
    wallets: list[str],
    timeout: float = 30,
    per_page: float = 0.0,
) -> dict[str, Any]:
    """Drain like the stream does; returns pages, completed windows, or the error.

    `per_page` seconds of work per page make the consumer slower than the fetching.
    """
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
                        ids.extend(f"{f['tx_hash']}:{f['log_index']}" for f in event.fills.dicts())
                        time.sleep(per_page)
                out["ids"][wallet] = ids
                out["windows"][wallet] = windows
        except Exception as exc:
            out["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    out["elapsed"] = time.monotonic() - started
    out["hung"] = thread.is_alive()
    scheduler.close()
    return out


def _assert_exact(sim: DomeSimulator, result: dict[str, Any], end: int) -> None:
    """Every wallet's fills exactly once, and its windows tiling [START, end] in order."""
    assert not result["hung"], "scheduler deadlocked"
    assert "error" not in result
    for wallet in sim.wallets:
        expected = {t["order_id"] for t in sim.truth(wallet)}
        ids = result["ids"][wallet]
        assert len(ids) == len(set(ids)), "a fill was emitted twice"
        assert set(ids) == expected
        windows = result["windows"][wallet]
        # Completed windows tile [START, end] in order: the bookmark only moves forward.
        assert windows[0].start == START
        assert windows[-1].end == end
        for left, right in itertools.pairwise(windows):
            assert right.start == left.end + 1


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
    _assert_exact(sim, result, end)


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


def _scheduler(
    sim: DomeSimulator, end: int, *, page_size: int, rates: tuple[float, int], **kwargs: Any
) -> FetchScheduler:
    options: dict[str, Any] = {"max_concurrency": 64, "max_window_fills": 10_000, **kwargs}
    return FetchScheduler(
        [(w, Window(START, end)) for w in sim.wallets],
        _fetcher(sim, rates=rates),
        page_size=page_size,
        logger=LOG,
        **options,
    ).start()


@pytest.mark.parametrize(
    ("rates", "latency", "min_rate"),
    [
        # The case: a fixed pool of 8 chains reached 10.7 requests/s here.
        pytest.param((20, 200), (0.15, 0.15), 15.0, id="20-per-s-150ms"),
        # The Free tier with a little more latency.
        pytest.param((10, 100), (0.15, 0.25), 7.0, id="free-200ms"),
    ],
)
def test_the_tier_is_used_under_latency_and_never_exceeded(
    rates: tuple[int, int], latency: tuple[float, float], min_rate: float
) -> None:
    per_second, per_10s = rates
    dataset = Dataset.custom([3000, *(5 + i for i in range(30))], seed=3, span=200 * 86400)
    with DomeSimulator(dataset=dataset, api_key="k", rate_limit=rates, latency=latency) as sim:
        end = int(time.time())
        scheduler = _scheduler(sim, end, page_size=100, rates=(per_second, per_10s))
        result = _consume(scheduler, sim.wallets, timeout=60)
        stats = sim.stats()
    _assert_exact(sim, result, end)
    assert stats["rate_limited"] == 0
    assert stats["max_in_1s"] <= per_second
    assert stats["max_in_10s"] <= per_10s
    # Loose enough for a loaded 2-core machine, far above what eight fixed chains reach.
    rate = stats["requests"] / result["elapsed"]
    assert rate >= min_rate, f"{rate:.1f} requests/s"
    counts = scheduler.counts
    assert counts.first_pages_dropped == 0
    # Slices cost a partly empty last page each, not a wasted first page.
    assert stats["requests"] <= 3000 / 100 * 1.25 + 30 + counts.windows_cut


class _CountingFetcher(PageFetcher):
    """The real fetcher, also counting the pages that came back empty."""

    empty_pages = 0

    def fetch_timed(self, endpoint: Any, params: Any, reading: Any = None) -> Any:
        response, seconds = super().fetch_timed(endpoint, params, reading)
        if not page_of(response).rows:
            self.empty_pages += 1
        return response, seconds


def _counting_scheduler(sim: DomeSimulator, end: int, page_size: int) -> FetchScheduler:
    fetcher = _fetcher(sim)
    counting = _CountingFetcher(
        base_url=sim.base_url,
        headers={"Authorization": "Bearer k"},
        limiter=fetcher.limiter,
        timeout=10,
        max_retries=2,
        stats=FetchStats(),
        logger=LOG,
    )
    return FetchScheduler(
        [(w, Window(START, end)) for w in sim.wallets],
        counting,
        page_size=page_size,
        max_concurrency=64,
        max_window_fills=10_000,
        logger=LOG,
    ).start()


def test_a_long_window_is_cut_where_its_fills_are() -> None:
    # The window starts years before the wallet's first fill. Cut evenly by time, most
    # slices would be empty and the last few would hold everything; cut where the first
    # page's density says the fills are, one slice holds the empty years.
    dataset = Dataset.custom([WalletSpec(6000, span=20 * 86400)], seed=5)
    with DomeSimulator(dataset=dataset, api_key="k") as sim:
        end = int(time.time())
        scheduler = _counting_scheduler(sim, end, page_size=50)
        result = _consume(scheduler, sim.wallets)
        stats = sim.stats()
    _assert_exact(sim, result, end)
    counts = scheduler.counts
    assert counts.windows_cut >= 1
    assert counts.first_pages_dropped == 0
    assert counts.first_pages_kept == counts.windows_cut
    fetcher = scheduler._fetcher
    assert isinstance(fetcher, _CountingFetcher)
    assert fetcher.empty_pages <= 2, "slices fell where the wallet had no fills"
    slices_of = slice_pages(50)
    # About one partly empty page per leaf slice, and one request per empty slice.
    assert stats["requests"] <= 6000 / 50 * (1 + 1 / slices_of) + counts.slices


def test_a_wrong_guess_of_where_the_fills_are_is_cut_again() -> None:
    # 2,000 fills in the last half hour and 3,000 over the two years before: the first page
    # is dense, so the guess puts the rest near the end; the slice of the years before
    # holds most fills, its first page shows it, and it is cut in turn.
    spec = WalletSpec(5000, span=700 * 86400, late=2000, late_delay=0)
    with DomeSimulator(dataset=Dataset.custom([spec], seed=8), api_key="k") as sim:
        end = int(time.time())
        scheduler = _counting_scheduler(sim, end, page_size=50)
        result = _consume(scheduler, sim.wallets)
    _assert_exact(sim, result, end)
    assert scheduler.counts.windows_cut >= 2
    assert scheduler.counts.first_pages_dropped == 0


@pytest.mark.parametrize("attempt", range(4))
def test_the_rest_of_a_chain_is_cut_to_use_free_slots(attempt: int) -> None:
    # One wallet, nothing else to send: a chain's rest is read as slices in parallel, its
    # pages so far kept as a part of their own; every fill once, windows in order.
    dataset = Dataset.custom([WalletSpec(1500 + 500 * attempt, span=50 * 86400), 3], seed=attempt)
    with DomeSimulator(dataset=dataset, api_key="k", latency=(0.02, 0.06)) as sim:
        end = int(time.time())
        scheduler = _scheduler(
            sim, end, page_size=50, rates=(10_000, 100_000), max_window_fills=20_000
        )
        result = _consume(scheduler, sim.wallets, per_page=0.001 * attempt)
    _assert_exact(sim, result, end)
    assert scheduler.counts.rests_cut >= 1


def test_an_api_serving_oldest_first_keeps_its_first_pages_too() -> None:
    dataset = Dataset.custom([WalletSpec(4000, span=300 * 86400), 40, 3], seed=9)
    with DomeSimulator(dataset=dataset, api_key="k") as sim:
        sim.set_faults(sort="asc")
        end = int(time.time())
        scheduler = _scheduler(sim, end, page_size=50, rates=(10_000, 100_000))
        result = _consume(scheduler, sim.wallets)
    _assert_exact(sim, result, end)
    assert scheduler.counts.windows_cut >= 1
    assert scheduler.counts.first_pages_dropped == 0


def test_a_first_page_inside_one_second_is_dropped_and_the_window_cut() -> None:
    # 400 fills in one second, then a few before: a slice's first page can show one
    # second only, which proves nothing about the rest of its window.
    burst = WalletSpec(460, span=2 * 86400, burst=400)
    dataset = Dataset.custom([burst], seed=2)
    with DomeSimulator(dataset=dataset, api_key="k") as sim:
        end = int(time.time())
        scheduler = _scheduler(
            sim, end, page_size=50, rates=(10_000, 100_000), max_window_fills=100
        )
        result = _consume(scheduler, sim.wallets)
    _assert_exact(sim, result, end)
    assert scheduler.counts.first_pages_dropped >= 1


def test_memory_is_bounded_by_the_budget_not_by_the_wallet() -> None:
    # The consumer is slower than the fetching, so pages pile up to the budget: the same
    # peak for a wallet four times bigger.
    peaks = []
    for fills in (5_000, 20_000):
        dataset = Dataset.custom([WalletSpec(fills, span=100 * 86400), 30, 2], seed=fills)
        with DomeSimulator(dataset=dataset, api_key="k") as sim:
            end = int(time.time())
            scheduler = _scheduler(
                sim,
                end,
                page_size=100,
                rates=(10_000, 100_000),
                max_buffered_fills=2_000,
                max_parked_fills=0,  # memory alone (parking: the tests below)
            )
            result = _consume(scheduler, sim.wallets, timeout=90, per_page=0.002)
        _assert_exact(sim, result, end)
        peaks.append(scheduler.counts.peak_fills_held)
    small, big = peaks
    assert big <= 2_000 + 2 * 100  # the budget, plus the page the head may always fetch
    assert big <= 1.15 * small


@pytest.fixture(scope="module")
def slow_chains() -> Any:
    # Under latency the consumer waits on its head slice's chain while the other chains run
    # ahead: their pages are parked on disk instead of stopping the fetching.
    dataset = Dataset.custom([WalletSpec(20_000, span=100 * 86400), 40, 3], seed=21)
    with DomeSimulator(dataset=dataset, api_key="k", latency=(0.06, 0.06)) as sim:
        yield sim


def test_pages_waiting_behind_the_head_chain_are_parked_on_disk(
    slow_chains: DomeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim = slow_chains
    end = int(time.time())
    scheduler = _scheduler(
        sim, end, page_size=100, rates=(10_000, 100_000), max_buffered_fills=2_000
    )
    with caplog.at_level(logging.INFO, logger=LOG.name):
        result = _consume(scheduler, sim.wallets, timeout=90)
    _assert_exact(sim, result, end)
    counts = scheduler.counts
    assert counts.peak_fills_parked > 2_000, "nothing ran ahead onto disk"
    # Memory stays within the budget, plus the page the head may always fetch...
    assert counts.peak_fills_held <= 2_000 + 2 * 100
    # ... while more requests are in flight than the memory budget holds pages: a page is
    # read from its socket only once a reading slot is free (READING_SLOTS).
    assert counts.peak_in_flight > 2_000 // 100
    closing = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Fetching:")]
    assert closing
    assert "pages parked on disk" in closing[-1]
    assert " 0 pages parked" not in closing[-1]


def test_without_latency_pages_wait_in_memory_not_on_disk() -> None:
    # A local server: the consumer, not the round trips, holds the run back. Parking would
    # only let the fetching run far ahead, with more big pages in flight at once.
    dataset = Dataset.custom([WalletSpec(20_000, span=100 * 86400), 40, 3], seed=21)
    with DomeSimulator(dataset=dataset, api_key="k") as sim:
        end = int(time.time())
        scheduler = _scheduler(
            sim, end, page_size=100, rates=(10_000, 100_000), max_buffered_fills=2_000
        )
        result = _consume(scheduler, sim.wallets, timeout=90, per_page=0.002)
    _assert_exact(sim, result, end)
    # A page or two at most, while the first round trips (the server warming up) are slow.
    assert scheduler.counts.peak_fills_parked <= 2 * 100
    assert scheduler.counts.peak_fills_held <= 2_000 + 2 * 100


def test_a_disk_that_cannot_hold_pages_keeps_them_in_memory(
    slow_chains: DomeSimulator, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sim = slow_chains
    end = int(time.time())
    scheduler = _scheduler(
        sim,
        end,
        page_size=100,
        rates=(10_000, 100_000),
        max_buffered_fills=2_000,
        spool_directory=str(tmp_path / "not-there"),
    )
    with caplog.at_level(logging.INFO, logger=LOG.name):
        result = _consume(scheduler, sim.wallets, timeout=90)
    _assert_exact(sim, result, end)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if w.startswith("Parking pages on disk failed")]) == 1
    # Within the budget, plus the page the head may always fetch, plus the pages that were
    # in flight when the disk first refused (they were sent to be parked; they are kept).
    counts = scheduler.counts
    assert counts.peak_fills_held <= 2_000 + 2 * 100 + counts.peak_in_flight * 100


def test_in_flight_follows_the_rate_and_the_observed_latency() -> None:
    dev = RateLimiter.for_rates(100, 500)
    gate = ConcurrencyGate(dev.burst_rate, cap=128)
    assert (
        75 < dev.burst_rate <= 100
    )  # the per-second budget (less its slack), not the 50/s average
    gate.observe(0.25)
    assert gate.limit == math.ceil(dev.burst_rate * 0.25 * HEADROOM) + SPARE
    for _ in range(50):  # the moving average follows a slower network
        gate.observe(2.0)
    assert gate.limit == 128  # the cap
    free = ConcurrencyGate(RateLimiter.for_rates(10, 100).burst_rate, cap=128)
    free.observe(0.2)
    assert free.limit <= 6


def test_base_latency_is_the_network_not_the_queueing() -> None:
    # Round trips to a local server on a busy machine average tens of milliseconds, but
    # some still come back at once: the base latency stays below the parking threshold.
    gate = ConcurrencyGate(100.0, cap=128)
    assert gate.base_latency == INITIAL_LATENCY_SECONDS  # nothing observed yet
    for seconds in [0.004] + [0.080] * (BASE_LATENCY_SAMPLES - 1):
        gate.observe(seconds)
    assert gate.latency >= PARK_MIN_LATENCY_SECONDS  # the moving average would park
    assert gate.base_latency == 0.004
    # A real network: every round trip is long, so the minimum is too (the fast one has
    # left the window).
    gate.observe(0.120)
    assert gate.base_latency == 0.080
    for _ in range(BASE_LATENCY_SAMPLES):
        gate.observe(0.120)
    assert gate.base_latency == 0.120


def test_base_latency_follows_full_pages_not_short_ones() -> None:
    # Empty slices and small wallets' only pages come back at once, while a long chain's
    # full pages take 120 ms: parking is for those, so short pages must not hide them.
    gate = ConcurrencyGate(100.0, cap=128)
    for _ in range(BASE_LATENCY_SAMPLES):
        gate.observe(0.003, full=False)
    assert gate.base_latency == 0.003  # no full page yet: every page counts
    gate.observe(0.120, full=True)
    for _ in range(10):
        gate.observe(0.003, full=False)
    assert gate.base_latency == 0.120
    assert gate.base_latency >= PARK_MIN_LATENCY_SECONDS


class _LateClock:
    """A fake clock whose sleeps overrun by `late` seconds once (a thread waking late)."""

    def __init__(self, late: float) -> None:
        self.now = 0.0
        self.late = late

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds + self.late
        self.late = 0.0


def test_a_caller_waking_late_pushes_the_next_window_back() -> None:
    clock = _LateClock(late=0.3)
    limiter = RateLimiter([(1.0, 2), (10.0, 100)], clock=clock.time, sleep=clock.sleep)
    sends = []
    for _ in range(6):
        limiter.acquire()
        sends.append(clock.now)
    # The second request's slot was spaced after the first, but it left 0.3 s late: the
    # server counts it then, so the fourth may not leave within a second of that moment.
    assert sends[1] > 0.3
    for i in range(len(sends) - 2):
        assert sends[i + 2] - sends[i] >= 1.0 + window_slack(1.0) - 1e-9


def test_the_limiter_says_when_callers_wait_for_the_budget() -> None:
    # Two requests a second: the third caller waits, and while it does the limiter is
    # saturated (the scheduler then cuts no chain's rest: more chains would not go faster).
    limiter = RateLimiter([(1.0, 2), (10.0, 100)])
    assert not limiter.saturated
    limiter.acquire()
    limiter.acquire()
    assert not limiter.saturated  # two sent, nobody waiting
    waiter = threading.Thread(target=limiter.acquire)
    waiter.start()
    deadline = time.monotonic() + 0.5
    while not limiter.saturated and time.monotonic() < deadline:
        time.sleep(0.005)
    assert limiter.saturated
    waiter.join(5)
    assert not waiter.is_alive()
    assert not limiter.saturated


def test_reading_slots_go_to_the_earliest_page_in_emission_order() -> None:
    # Pages wait for a reading slot in the order the consumer needs them, not in the order
    # they came back: the page of slice (0, 1) is read before those of (0, 5) and (3,).
    slots = ReadingSlots(1)
    first = slots.slot((9,))
    first.acquire()  # the one slot taken
    read: list[tuple[int, ...]] = []
    threads = []
    for queued, key in enumerate([(3,), (0, 5), (0, 1)]):  # they come back latest first
        claim = slots.slot(key)

        def wait(claim: Any = claim, key: tuple[int, ...] = key) -> None:
            claim.acquire()
            read.append(key)
            claim.release()

        thread = threading.Thread(target=wait)
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 10
        while slots.waiting <= queued and time.monotonic() < deadline:  # queued, in turn
            time.sleep(0.005)
    assert read == []
    first.release()
    for thread in threads:
        thread.join(10)
    assert read == [(0, 1), (0, 5), (3,)]
    # Every slot is free again: one more claim is served at once.
    again = slots.slot((0,))
    done = threading.Event()

    def take() -> None:
        again.acquire()
        done.set()

    threading.Thread(target=take).start()
    assert done.wait(5)


def test_the_closing_line_of_a_one_request_run_says_only_what_happened(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One small wallet: one request, nothing cut, nothing parked; the line says so in words.
    dataset = Dataset.custom([WalletSpec(7, span=10 * 86400)], seed=5)
    with DomeSimulator(dataset=dataset, api_key="k") as sim:
        end = int(time.time())
        scheduler = _scheduler(sim, end, page_size=100, rates=(10_000, 100_000))
        with caplog.at_level(logging.INFO, logger=LOG.name):
            result = _consume(scheduler, sim.wallets, timeout=30)
    _assert_exact(sim, result, end)
    closing = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Fetching:")]
    assert len(closing) == 1
    assert closing[0].startswith("Fetching: 1 request, up to 1 in flight (latency ~")
    assert "cut" not in closing[0]
    assert "parked" not in closing[0]
