"""Server capacity and budgets: many clients in flight under latency, tiers enforced exactly.

A tap keeps ~100 requests in flight against a 250 ms API; the simulator must serve them
side by side (latency sleeps in each handler thread, holding no lock), and enforce each
tier's two budgets as sliding windows, so benchmarks can trust its 429s and peak rates.
"""

from __future__ import annotations

import bisect
import http.client
import random
import threading
import time
from collections import Counter
from urllib.parse import urlencode, urlsplit

import pytest

from dome_simulator import TIER_LIMITS, Dataset, DomeSimulator
from dome_simulator.server_limits import SlidingWindowLimiter

KEY = "capacity-test-key"


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_tiers_are_the_published_budgets() -> None:
    assert TIER_LIMITS == {"free": (10, 100), "dev": (100, 500), "pro": (300, 3000)}


@pytest.mark.parametrize("tier", sorted(TIER_LIMITS))
def test_limiter_admits_exactly_what_both_sliding_windows_allow(tier: str) -> None:
    per_second, per_10s = TIER_LIMITS[tier]
    clock = FakeClock()
    limiter = SlidingWindowLimiter(per_second, per_10s, clock=clock)
    rng = random.Random(tier)
    # Bursty arrivals over 30 s, about three times what the tier allows.
    times = sorted(rng.uniform(0, 30) for _ in range(per_10s * 9))
    admitted: list[float] = []
    for t in times:
        clock.now = t
        in_1s = len(admitted) - bisect.bisect_right(admitted, t - 1.0)
        in_10s = len(admitted) - bisect.bisect_right(admitted, t - 10.0)
        wait = limiter.admit()
        if wait is None:
            assert in_1s < per_second, f"admitted over the 1 s budget at {t:.3f}"
            assert in_10s < per_10s, f"admitted over the 10 s budget at {t:.3f}"
            admitted.append(t)
        else:
            assert in_1s == per_second or in_10s == per_10s, f"refused with room at {t:.3f}"
            assert wait > 0
    assert len(admitted) >= per_10s * 2  # every budget was used: a limiter, not a wall


@pytest.mark.parametrize("tier", sorted(TIER_LIMITS))
def test_limiter_windows_slide_and_its_wait_is_exact(tier: str) -> None:
    per_second, per_10s = TIER_LIMITS[tier]
    clock = FakeClock()
    limiter = SlidingWindowLimiter(per_second, per_10s, clock=clock)
    half = per_second // 2
    assert all(limiter.admit() is None for _ in range(half))  # t = 0
    clock.now = 0.6
    assert all(limiter.admit() is None for _ in range(per_second - half))
    assert limiter.admit() == pytest.approx(0.4)  # the t = 0 requests leave at t = 1
    clock.now = 1.0  # a fixed window would now allow per_second; the sliding one allows half
    assert all(limiter.admit() is None for _ in range(half))
    assert limiter.admit() == pytest.approx(0.6)

    # The 10-second budget: fill the per-second budget at the start of every second.
    clock.now = 100.0
    limiter = SlidingWindowLimiter(per_second, per_10s, clock=clock)
    for second in range(20):
        clock.now = 100.0 + second
        taken = 0
        while (wait := limiter.admit()) is None:
            taken += 1
        if taken < per_second:
            break
        # The per-second window binds; once the 10 s one is full, it may bind longer.
        full = min(second + 1, 10) * per_second >= per_10s
        oldest = max(0, second - 9)
        assert wait == pytest.approx(max(1.0, oldest + 10 - second) if full else 1.0)
    if per_10s >= 10 * per_second:  # free and pro: ten full seconds fit the 10 s budget
        assert (second, taken) == (19, per_second)
    else:  # dev: 500 per 10 s binds after five full seconds
        assert (second, taken) == (per_10s // per_second, 0)
        assert wait is not None
        assert wait == pytest.approx(10.0 - second)  # when the first second's requests leave
        clock.now += wait
        assert limiter.admit() is None


def _connection(sim: DomeSimulator) -> http.client.HTTPConnection:
    parts = urlsplit(sim.base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    conn.connect()
    return conn


def _get(conn: http.client.HTTPConnection, wallet: str) -> int:
    query = urlencode({"user": wallet, "limit": 10})
    conn.request(
        "GET", f"/v1/polymarket/orders?{query}", headers={"Authorization": f"Bearer {KEY}"}
    )
    response = conn.getresponse()
    response.read()
    return response.status


def _run_clients(
    sim: DomeSimulator, clients: int, requests_each: int
) -> tuple[float, Counter[int]]:
    """``clients`` threads, each on its own keep-alive connection, released at once."""
    wallets = sim.wallets
    conns = [_connection(sim) for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def client(index: int) -> None:
        conn = conns[index]
        barrier.wait()
        for _ in range(requests_each):
            status = _get(conn, wallets[index % len(wallets)])
            with lock:
                statuses[status] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.monotonic() - started
    for conn in conns:
        conn.close()
    return elapsed, statuses


def test_hundred_clients_under_250ms_latency_are_served_side_by_side() -> None:
    dataset = Dataset.custom([30] * 20, seed=3)
    with DomeSimulator(api_key=KEY, dataset=dataset, latency=(0.25, 0.25)) as sim:
        elapsed, statuses = _run_clients(sim, clients=100, requests_each=3)
        stats = sim.stats()
    assert statuses == {200: 300}
    assert stats["requests"] == 300
    # One at a time this takes 300 x 0.25 s = 75 s; side by side, 3 x 0.25 s plus overhead.
    assert elapsed < 2.0, f"300 requests took {elapsed:.2f} s: {300 / elapsed:.0f} requests/s"
    assert 300 / elapsed >= 150
    assert stats["max_in_flight"] >= 90
    assert stats["max_in_1s"] >= 150


def test_concurrent_burst_gets_exactly_the_dev_budget_and_429s_for_the_rest() -> None:
    per_second, _ = TIER_LIMITS["dev"]
    dataset = Dataset.custom([5] * 10, seed=4)
    with DomeSimulator(api_key=KEY, dataset=dataset, rate_limit="dev") as sim:
        elapsed, statuses = _run_clients(sim, clients=per_second + 50, requests_each=1)
        stats = sim.stats()
    admitted, limited = statuses[200], statuses[429]
    assert admitted + limited == per_second + 50
    assert stats["by_status"] == {200: admitted, 429: limited}
    assert stats["rate_limited"] == limited
    assert stats["max_in_10s"] == per_second + 50
    if elapsed < 1.0:  # the whole burst arrived within one second (the usual case)
        assert (admitted, limited) == (per_second, 50)
        assert stats["max_in_1s"] == per_second + 50
    else:  # a very loaded machine spread it out: still never more than the budget allows
        assert per_second <= admitted <= per_second * (1 + int(elapsed))
