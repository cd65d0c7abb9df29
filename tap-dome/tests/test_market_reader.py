"""MarketReader: chunks read ahead of the stream's turn, the rest in it, each chunk once."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tap_dome.markets import AHEAD_IN_FLIGHT, IDS_PER_REQUEST, QUIET_PAGES, MarketReader


class FakeApi:
    """Answers a chunk with its ids (as the reader's `read` would return its pages),
    noting every chunk asked for and how many were in flight at once."""

    def __init__(self, seconds: float = 0.0, fail_first: set[str] | None = None) -> None:
        self.seconds = seconds
        self.fail_first = set(fail_first or ())
        self.asked: list[list[str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def read(self, ids: list[str]) -> list[list[str]]:
        with self._lock:
            self.asked.append(list(ids))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            failing = bool(self.fail_first & set(ids))
            self.fail_first -= set(ids)
        try:
            time.sleep(self.seconds)
            if failing:
                raise ConnectionError("the API is away")
            return [list(ids)]
        finally:
            with self._lock:
                self.in_flight -= 1


def ids(start: int, count: int) -> list[str]:
    return [f"0x{i:04x}" for i in range(start, start + count)]


def wait_for(condition: Any) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def offer_until(reader: MarketReader[Any], api: FakeApi, asked: int) -> None:
    """Offer nothing new, page after page, until `asked` chunks were sent (a chunk counts
    as done a moment after its answer: the next page sends the next one)."""

    def more() -> bool:
        reader.offer([])
        return len(api.asked) >= asked

    wait_for(more)


def test_full_chunks_go_ahead_and_the_rest_in_the_turn_each_id_once() -> None:
    api = FakeApi()
    reader: MarketReader[list[list[str]]] = MarketReader(api.read, lambda: 8)
    reader.offer(ids(0, 150))  # one full chunk goes, 50 wait
    reader.offer(ids(100, 100))  # 50 seen again, 50 new: a second full chunk
    reader.offer([])
    wait_for(lambda: len(api.asked) == 2)
    assert api.asked == [ids(0, 100), ids(100, 100)]
    assert reader.read_ahead == 200
    wanted = sorted(ids(0, 200) + ids(500, 130))  # the stream's turn: 130 new ones
    got = [chunk for pages in reader.read(wanted) for chunk in pages]
    assert got == [ids(0, 100), ids(100, 100), ids(500, 100), ids(600, 30)]
    assert len(api.asked) == 4


def test_ahead_stops_at_its_limit_and_the_turn_reads_the_rest() -> None:
    api = FakeApi()
    reader: MarketReader[list[list[str]]] = MarketReader(
        api.read, lambda: 8, limit=3 * IDS_PER_REQUEST, ahead_width=8
    )
    reader.offer(ids(0, 1000))
    wait_for(lambda: len(api.asked) == 3)
    time.sleep(0.05)
    assert len(api.asked) == 3
    assert reader.read_ahead == 300
    got = [i for pages in reader.read(ids(0, 1000)) for chunk in pages for i in chunk]
    assert got == ids(0, 1000)
    assert len(api.asked) == 10


def test_at_most_width_chunks_in_flight_ahead_and_in_the_turn() -> None:
    api = FakeApi(seconds=0.05)
    reader: MarketReader[list[list[str]]] = MarketReader(api.read, lambda: 3, ahead_width=8)
    reader.offer(ids(0, 1000))  # ten full chunks: three go now
    assert len(api.asked) <= 3
    offer_until(reader, api, 6)  # later pages, as those come back: three more
    got = [i for pages in reader.read(ids(0, 2000)) for chunk in pages for i in chunk]
    assert got == ids(0, 1000) + ids(1000, 1000)
    assert api.max_in_flight <= 3
    assert len(api.asked) == 20


def test_a_chunk_that_failed_ahead_is_read_again_in_the_turn() -> None:
    api = FakeApi(fail_first=set(ids(5, 1)))  # in the first chunk
    reader: MarketReader[list[list[str]]] = MarketReader(api.read, lambda: 4)
    reader.offer(ids(0, 200))
    wait_for(lambda: len(api.asked) == 2)
    got = [chunk for pages in reader.read(ids(0, 200)) for chunk in pages]
    assert got == [ids(0, 100), ids(100, 100)]
    assert api.asked.count(ids(0, 100)) == 2  # once ahead (failed), once in the turn


def test_a_chunk_that_fails_in_the_turn_is_the_streams_error() -> None:
    api = FakeApi(fail_first=set(ids(150, 1)))  # in the second chunk
    reader: MarketReader[list[list[str]]] = MarketReader(api.read, lambda: 4)
    chunks = reader.read(ids(0, 300))
    assert next(chunks) == [ids(0, 100)]
    with pytest.raises(ConnectionError, match="away"):
        next(chunks)


def test_ids_short_of_a_chunk_go_ahead_once_the_pages_bring_no_new_ones() -> None:
    api = FakeApi()
    reader: MarketReader[list[list[str]]] = MarketReader(api.read, lambda: 8)
    reader.offer(ids(0, 150))
    for _ in range(QUIET_PAGES - 1):
        reader.offer(ids(0, 10))  # pages with markets seen already
    wait_for(lambda: len(api.asked) == 1)
    time.sleep(0.05)
    assert api.asked == [ids(0, 100)]
    reader.offer([])  # the QUIET_PAGES-th page with nothing new: the 50 go too
    wait_for(lambda: len(api.asked) == 2)
    assert api.asked[1] == ids(100, 50)
    # Short chunks at most once per full one, and once more: then they wait for the turn.
    for start in (150, 160):
        reader.offer(ids(start, 10))
        for _ in range(QUIET_PAGES):
            reader.offer([])
    wait_for(lambda: len(api.asked) == 3)
    time.sleep(0.05)
    assert api.asked[2] == ids(150, 10)
    assert len(api.asked) == 3
    got = [i for pages in reader.read(ids(0, 170)) for chunk in pages for i in chunk]
    assert got == ids(0, 170)
    assert api.asked[3:] == [ids(160, 10)]  # the only request of the turn


def test_nothing_goes_ahead_while_requests_wait_at_the_limiter() -> None:
    # Ahead reads use the budget the fills leave unused, never add load at full rate.
    api = FakeApi(seconds=0.02)
    busy = [True]
    reader: MarketReader[list[list[str]]] = MarketReader(api.read, lambda: 8, lambda: busy[0])
    reader.offer(ids(0, 500))
    reader.offer([])
    time.sleep(0.05)
    assert api.asked == []
    busy[0] = False
    reader.offer([])  # the next page, with the limiter idle: AHEAD_IN_FLIGHT chunks go
    wait_for(lambda: len(api.asked) >= AHEAD_IN_FLIGHT)
    offer_until(reader, api, 2 * AHEAD_IN_FLIGHT)  # later pages, as those come back
    busy[0] = True
    time.sleep(0.05)
    reader.offer([])
    assert len(api.asked) == 2 * AHEAD_IN_FLIGHT  # busy again: none more
    assert api.max_in_flight <= AHEAD_IN_FLIGHT
    got = [i for pages in reader.read(ids(0, 500)) for chunk in pages for i in chunk]
    assert got == ids(0, 500)
    assert len(api.asked) == 5
