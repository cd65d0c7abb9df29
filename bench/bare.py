"""The bare client: how fast a plain Python client reads a case on this machine.

It does only what no client can skip: one GET per page and a JSON parse of its body
(orjson), nothing written anywhere. And it knows what no real client knows: every fill's
timestamp, because the bench's datasets are seeded, so it cuts each wallet into time slices
of at most one page beforehand and sends every request at once, through the tap's own rate
limiter (the same slack and spacing), from as many threads as the tap may keep in flight.
No cursor chain, no first page to wait for, no cutting, no ordering, no records.

It runs in a process of its own, as the tap does (`python bench/bare.py SPEC_JSON`, one
JSON line out): the dataset it cuts from is big, and a process forked from one that holds it
would count those pages in its peak RSS.

Its ratio, measured beside the tap's in the same run (`bench/rate.py --bare`), is what a
client with no schedule to find and no record to write reaches here: where it falls short of
the tier, the machine is the bound, not the tap's schedule; where the tap falls short of it,
the tap's own work per fill is.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from dome_simulator import Dataset, WalletSpec
from tap_dome.fetch import connection_pool
from tap_dome.ratelimit import RateLimiter

THREADS = 128  # the tap's cap on requests in flight (concurrency.py)
ORDERS_PATH = "/polymarket/orders"


@dataclass(frozen=True)
class Slice:
    """One request's worth of a wallet: `[start, end]`, inclusive, at most a page of fills
    (a page more only where one second holds more than a page)."""

    wallet: str
    start: int
    end: int


def page_slices(spec: dict[str, Any], page: int) -> tuple[list[Slice], int]:
    """Every wallet of `spec` (rate.py's serve spec) cut into slices of at most `page`
    fills, from the same seeded dataset the simulator serves; and the fills in all."""
    specs = [WalletSpec(count, span=span) for count, span in spec["wallets"]]
    dataset = Dataset.custom(
        specs, seed=spec["seed"], markets=spec.get("markets", 0), now=spec["now"]
    )
    cuts: list[Slice] = []
    fills = 0
    for wallet in dataset.wallets:
        stamps = sorted(fill.timestamp for fill in dataset.fills(wallet))
        fills += len(stamps)
        cuts.extend(_cut(wallet, stamps, page))
    return cuts, fills


def _cut(wallet: str, stamps: Sequence[int], page: int) -> list[Slice]:
    """Slices of `stamps` (sorted) of at most `page` fills each (or two seconds, where
    those hold more), never splitting a second: each slice spans two distinct seconds or
    more, because `start_time` must be below `end_time` and both are inclusive."""
    seconds = sorted(Counter(stamps).items())
    cuts: list[Slice] = []
    first = 0
    while first < len(seconds):
        last, held = first + 1, seconds[first][1]
        while last < len(seconds) and held + seconds[last][1] <= page:
            held += seconds[last][1]
            last += 1
        last = max(last, first + 2)  # at least two seconds (one more page at worst)
        end = seconds[min(last, len(seconds)) - 1][0]
        cuts.append(Slice(wallet, seconds[first][0], max(end, seconds[first][0] + 1)))
        first = last
    return cuts


def read_all(
    base_url: str, api_key: str, cuts: list[Slice], budgets: tuple[int, int], page: int
) -> dict[str, Any]:
    """Read every slice as fast as the limiter lets it; fills read, requests, 429s, and the
    CPU seconds this process spent on it."""
    limiter = RateLimiter.for_rates(budgets[0], budgets[1])
    work: queue.Queue[Slice] = queue.Queue()
    for cut in cuts:
        work.put(cut)
    totals = {"fills": 0, "requests": 0, "429s": 0}
    lock = threading.Lock()
    failures: list[BaseException] = []
    headers = {"Authorization": f"Bearer {api_key}"}

    def worker() -> None:
        pool = connection_pool(base_url, headers)
        mine = {"fills": 0, "requests": 0, "429s": 0}
        try:
            while True:
                try:
                    cut = work.get_nowait()
                except queue.Empty:
                    break
                key = None
                while True:
                    params: dict[str, Any] = {
                        "user": cut.wallet,
                        "start_time": cut.start,
                        "end_time": cut.end,
                        "limit": page,
                    }
                    if key:
                        params["pagination_key"] = key
                    limiter.acquire()
                    mine["requests"] += 1
                    reply = pool.request(
                        "GET", f"{base_url}{ORDERS_PATH}?{urllib.parse.urlencode(params)}"
                    )
                    if reply.status == 429:
                        mine["429s"] += 1
                        limiter.pause(float(reply.headers.get("Retry-After") or 1))
                        continue
                    if reply.status != 200:
                        raise RuntimeError(f"HTTP {reply.status}: {reply.data[:200]!r}")
                    body = orjson.loads(reply.data)
                    mine["fills"] += len(body["orders"])
                    pagination = body.get("pagination") or {}
                    key = pagination.get("pagination_key") if pagination.get("has_more") else None
                    if not key:
                        break
        except BaseException as exc:  # raised below, in the caller's thread
            failures.append(exc)
        with lock:
            for name, value in mine.items():
                totals[name] += value

    started = time.process_time()
    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"the bare client failed: {failures[0]!r}")
    return {**totals, "cpu": time.process_time() - started}


def main() -> None:
    """`bare.py '{"spec": ..., "url": ..., "api_key": ..., "budgets": [...], "page": N}'`."""
    job = json.loads(sys.argv[1])
    cuts, fills = page_slices(job["spec"], job["page"])
    read = read_all(job["url"], job["api_key"], cuts, tuple(job["budgets"]), job["page"])
    print(json.dumps({**read, "expected": fills}), flush=True)


if __name__ == "__main__":
    main()
