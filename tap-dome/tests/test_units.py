"""Unit tests of the pure parts: identity, settings, limiter, windows, pagination."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
import requests
from singer_sdk.exceptions import ConfigValidationError

from tap_dome.concurrency import ordered_map
from tap_dome.errors import DomeDataError, DomePaginationError
from tap_dome.fetch import FetchStats, describe_params, retry_after_seconds
from tap_dome.page import attach_page, parse_page
from tap_dome.pagination import MAX_EMPTY_PAGES, DomePaginator, PageToken
from tap_dome.progress import Progress
from tap_dome.ratelimit import (
    MAX_SLACK_SHARE,
    SLACK_GROWTH,
    SPACING_SHARE,
    RateLimiter,
    window_slack,
)
from tap_dome.records import RecordBuilder, market_record, order_id
from tap_dome.settings import load_wallets, parse_time, resolve

SCHEMAS = Path(__file__).parents[1] / "tap_dome" / "schemas"
W1 = "0x" + "ab" * 20
W2 = "0x" + "cd" * 20


def test_order_id_uses_tx_hash_and_log_index() -> None:
    assert order_id({"tx_hash": "0xABC", "log_index": 7}) == "0xabc:7"


def test_order_id_fallback_separates_fills_of_one_transaction() -> None:
    base = {"tx_hash": "0xabc", "order_hash": "0x1", "token_id": "5", "side": "BUY"}
    first = order_id({**base, "shares": 10, "price": 0.5})
    second = order_id({**base, "shares": 11, "price": 0.5})
    assert first != second
    assert first.startswith("0xabc:h")
    assert first == order_id({**base, "shares": 10, "price": 0.50})


def test_record_builder_types_and_time() -> None:
    fill = {
        "tx_hash": "0xAA",
        "log_index": "3",
        "timestamp": "1700000000",
        "token_id": 10**70,
        "shares": "5000000",
        "price": "0.25",
        "fee_rate_bps": 1,
    }
    known = frozenset(json.loads((SCHEMAS / "orders.json").read_text())["properties"])
    record = RecordBuilder(known).build(fill, W1)
    assert record["order_id"] == "0xaa:3"
    assert record["timestamp"] == 1700000000
    assert record["filled_at"] == "2023-11-14T22:13:20Z"
    assert record["token_id"] == str(10**70)
    assert record["shares"] == 5000000
    assert record["price"] == 0.25
    assert record["wallet"] == W1
    assert record["extra_fields"] == {"fee_rate_bps": 1}


def test_wallets_validated_normalised_and_deduplicated(tmp_path: Path) -> None:
    listing = tmp_path / "w.txt"
    listing.write_text(f"# tracked\n{W2.upper().replace('0X', '0x')}\n\n{W1}  # dup\n")
    wallets = load_wallets({"wallets": [W1.upper().replace("0X", "0x")], "wallets_file": listing})
    assert wallets == (W1, W2)


def test_every_invalid_wallet_is_named(tmp_path: Path) -> None:
    listing = tmp_path / "w.txt"
    listing.write_text("0x123\nnot-a-wallet\n")
    with pytest.raises(ConfigValidationError) as caught:
        load_wallets({"wallets": [W1, "0xzz"], "wallets_file": str(listing)})
    message = str(caught.value)
    assert "3 invalid" in message
    for bad in ("wallets[1]", "'0xzz'", "w.txt:1", "'0x123'", "w.txt:2", "'not-a-wallet'"):
        assert bad in message


def test_missing_wallets_file_names_the_setting() -> None:
    with pytest.raises(ConfigValidationError, match="wallets_file"):
        load_wallets({"wallets_file": "/nonexistent/wallets.txt"})


def test_wallets_as_plain_string_is_refused() -> None:
    with pytest.raises(ConfigValidationError, match="JSON array"):
        load_wallets({"wallets": W1})


def test_resolve_tiers_and_bad_values() -> None:
    settings = resolve({"wallets": [W1], "api_tier": "dev"}, now=2_000_000_000)
    assert (settings.requests_per_second, settings.requests_per_10_seconds) == (100, 500)
    assert settings.end_time == 2_000_000_000
    assert not settings.end_is_fixed
    explicit = resolve(
        {"wallets": [W1], "api_tier": "pro", "requests_per_second": 5}, now=2_000_000_000
    )
    assert explicit.requests_per_second == 5
    assert explicit.requests_per_10_seconds == 3000
    bad: list[tuple[dict[str, object], str]] = [
        ({"api_tier": "gold"}, "api_tier"),
        ({"page_size": 5000}, "page_size"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"start_date": "2030-01-01", "end_date": "2029-01-01"}, "start_date"),
        ({"api_url": "not a url"}, "api_url"),
        ({"api_url": "ftp://example.com/v1"}, "api_url"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"request_timeout": "soon"}, "request_timeout"),
    ]
    for config, setting in bad:
        with pytest.raises(ConfigValidationError, match=setting):
            resolve({"wallets": [W1], **config}, now=2_000_000_000)
    with pytest.raises(ConfigValidationError, match="No wallets"):
        resolve({}, now=2_000_000_000)
    # Zero is a valid number of retries and of lookback seconds.
    zero = resolve({"wallets": [W1], "max_retries": 0, "lookback": 0}, now=2_000_000_000)
    assert (zero.max_retries, zero.lookback) == (0, 0)
    assert resolve({"wallets": [W1]}, now=2_000_000_000).api_url == "https://api.domeapi.io/v1"


def test_parse_time_forms() -> None:
    assert parse_time("2024-01-01T00:00:00Z", "x") == 1704067200
    assert parse_time("2024-01-01", "x") == 1704067200
    assert parse_time("2024-01-01T01:00:00+01:00", "x") == 1704067200


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_limiter_never_exceeds_either_budget() -> None:
    clock = FakeClock()
    limiter = RateLimiter([(1.0, 10), (10.0, 50)], clock=clock.time, sleep=clock.sleep)
    sends = []
    for _ in range(200):
        limiter.acquire()
        sends.append(clock.now)
    for i, start in enumerate(sends):
        in_1s = sum(1 for t in sends[i:] if t < start + 1.0)
        in_10s = sum(1 for t in sends[i:] if t < start + 10.0)
        assert in_1s <= 10
        assert in_10s <= 50
    # Four 10-second periods of five 1-second bursts: the last request leaves at about
    # 3 * 10 + 4 * 1 seconds plus the slack, and the last burst's ten requests are spaced
    # at half the 10-second budget's average gap; the limiter throttles no more than that.
    spacing = SPACING_SHARE * 10.0 / 50
    expected = 3 * (10 + window_slack(10)) + 4 * (1 + window_slack(1)) + 9 * spacing
    assert 34.0 < sends[-1] < expected + 0.1


def test_limiter_pause_holds_everyone() -> None:
    clock = FakeClock()
    limiter = RateLimiter([(1.0, 100), (10.0, 1000)], clock=clock.time, sleep=clock.sleep)
    limiter.pause(5.0)
    limiter.acquire()
    assert clock.now >= 5.0


def test_a_429_the_limiter_did_not_foresee_widens_its_slack_once_per_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter([(1.0, 10), (10.0, 1000)], clock=clock.time, sleep=clock.sleep)
    assert limiter.slack == window_slack(1.0)
    assert limiter.widen() == pytest.approx(window_slack(1.0) * SLACK_GROWTH)
    assert limiter.widen() is None  # the same clash: several 429s, one widening
    slacks = []
    for _ in range(10):
        clock.now += 2.0
        slacks.append(limiter.widen())
    assert slacks[0] == pytest.approx(window_slack(1.0) * SLACK_GROWTH**2)
    assert max(s for s in slacks if s is not None) == pytest.approx(MAX_SLACK_SHARE)
    assert slacks[-1] is None  # every window at its cap
    # Eleven requests now span the 1 s window plus the wider slack.
    sends = []
    for _ in range(11):
        limiter.acquire()
        sends.append(clock.now)
    assert sends[-1] - sends[0] >= 1.0 + MAX_SLACK_SHARE


def _late_counting_server(widen: bool) -> list[int]:
    """Indexes of the requests a server refuses when it counts each request up to 0.4 s
    after it left (more than the default slack), for a client that widens on 429 or not."""
    clock = FakeClock()
    limiter = RateLimiter([(1.0, 10), (10.0, 1000)], clock=clock.time, sleep=clock.sleep)
    delays = [0.4 * ((i * 7919) % 101) / 100 for i in range(400)]  # spread over [0, 0.4]
    counted: list[float] = []
    refused = []
    for index, delay in enumerate(delays):
        limiter.acquire()
        arrival = clock.now + delay
        if sum(1 for t in counted if arrival - 1.0 < t <= arrival) >= 10:
            refused.append(index)
            if widen:
                limiter.widen()
        else:
            counted.append(arrival)
    return refused


def test_widening_stops_the_429s_of_a_server_that_counts_late() -> None:
    without, with_widening = _late_counting_server(False), _late_counting_server(True)
    assert sum(i >= 200 for i in without) >= 3  # the default slack alone keeps failing
    assert with_widening
    assert all(i < 200 for i in with_widening)
    assert len(with_widening) < len(without) / 3


def test_limiter_fractional_rate() -> None:
    limiter = RateLimiter.for_rates(0.5, 100)
    assert limiter._budgets[0][1] == 1
    assert limiter._budgets[0][0] > 2.0


def _response(body: Mapping[str, object]) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps(body).encode()
    return attach_page(response, parse_page(response._content))


def test_paginator_prefers_key_and_falls_back_to_offset() -> None:
    paginator = DomePaginator()
    rows = [{"timestamp": 1}] * 3
    paginator.advance(
        _response({"orders": rows, "pagination": {"has_more": True, "pagination_key": "a"}})
    )
    assert paginator.current_value == PageToken("a", 3)
    assert paginator.current_value.as_params() == {"pagination_key": "a"}
    paginator.advance(_response({"orders": rows, "pagination": {"has_more": True}}))
    assert paginator.current_value.as_params() == {"offset": 6}
    paginator.advance(_response({"orders": rows, "pagination": {"has_more": False}}))
    assert paginator.finished


def test_paginator_refuses_loops() -> None:
    paginator = DomePaginator()
    page = {"orders": [{"timestamp": 1}], "pagination": {"has_more": True, "pagination_key": "a"}}
    paginator.advance(_response(page))
    with pytest.raises(DomePaginationError, match="repeated"):
        paginator.advance(_response(page))
    empty = DomePaginator()
    with pytest.raises(DomePaginationError, match="empty page"):
        empty.advance(_response({"orders": [], "pagination": {"has_more": True}}))


def test_has_more_is_read_as_the_api_meant_it() -> None:
    rows = [{"timestamp": 1}]

    def more(pagination: dict[str, object]) -> bool:
        return parse_page(json.dumps({"orders": rows, "pagination": pagination}).encode()).has_more

    assert more({"has_more": True})
    assert not more({"has_more": False})
    # Absent: a cursor for the next page means more (read as false, the walk would end
    # early and the bookmark cover fills never read).
    assert more({"pagination_key": "abc"})
    assert not more({})
    assert not more({"pagination_key": None})
    assert not more({"has_more": "false", "pagination_key": "abc"})
    assert more({"has_more": "True"})


def test_an_empty_list_may_come_as_null_or_absent_beside_its_pagination() -> None:
    for body in (b'{"orders": null, "pagination": {"has_more": false}}', b'{"pagination": {}}'):
        page = parse_page(body)
        assert len(page.rows) == 0
        assert not page.has_more
        assert page.rows.raw == []
    with pytest.raises(ValueError, match="orders"):
        parse_page(b'{"orders": null}')  # no pagination either: not a page


def test_paginator_follows_empty_pages_with_new_keys_but_not_forever() -> None:
    paginator = DomePaginator()
    rows = [{"timestamp": 1}]
    for n in range(MAX_EMPTY_PAGES):
        empty = {"orders": [], "pagination": {"has_more": True, "pagination_key": f"e{n}"}}
        paginator.advance(_response(empty))
    assert paginator.current_value == PageToken(f"e{MAX_EMPTY_PAGES - 1}", 0)
    paginator.advance(_response({"orders": rows, "pagination": {"pagination_key": "r"}}))
    assert paginator.empty_pages == 0  # a page with rows starts the count again
    for n in range(MAX_EMPTY_PAGES):
        empty = {"orders": [], "pagination": {"has_more": True, "pagination_key": f"f{n}"}}
        paginator.advance(_response(empty))
    with pytest.raises(DomePaginationError, match="empty pages in a row"):
        paginator.advance(
            _response({"orders": [], "pagination": {"has_more": True, "pagination_key": "g"}})
        )


def test_values_of_the_wrong_type_are_named_not_a_traceback() -> None:
    page = parse_page(b'{"orders": [{"timestamp": "2025-01-01T00:00:00Z"}], "pagination": {}}')
    with pytest.raises(DomeDataError, match="2025-01-01T00:00:00Z"):
        _ = page.rows.stamps
    fill = {"timestamp": 1, "tx_hash": "0xAB", "log_index": "10.5", "order_hash": "0x1"}
    with pytest.raises(DomeDataError, match=r"wrong type.*order_hash='0x1'"):
        RecordBuilder().build(fill, "0x" + "1" * 40)
    market = {"condition_id": "0xC", "start_time": "2025-01-01", "market_slug": "m"}
    with pytest.raises(DomeDataError, match="market 0xc with a value of the wrong type"):
        market_record(market, frozenset(market))


def test_parse_page_rejects_incomplete_bodies() -> None:
    with pytest.raises(ValueError, match="truncated"):
        parse_page(b'{"orders": [{"a": 1}')
    with pytest.raises(ValueError, match="orders"):
        parse_page(b'{"error": "x"}')


def test_retry_after_and_params_description() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("garbage") is None
    assert describe_params({"user": W1, "pagination_key": "secret-cursor"}).endswith("<cursor>")


def test_activity_id_matches_the_contract_with_and_without_log_index() -> None:
    from dome_simulator import activity_id as oracle
    from tap_dome.records import activity_id

    row = {
        "tx_hash": "0xABC",
        "log_index": 7,
        "side": "SPLIT",
        "condition_id": "0xc0",
        "token_id": "42",
        "shares": 2_000_000,
        "user": "0xUSER",
    }
    assert activity_id(row) == oracle(row) == "0xabc:7"
    legacy = {**row, "log_index": None}
    assert activity_id(legacy) == oracle(legacy)
    assert activity_id(legacy).startswith("0xabc:h")
    assert activity_id({**legacy, "side": "MERGE"}) != activity_id(legacy)


def test_ordered_map_keeps_the_order_runs_at_once_and_holds_at_most_its_width() -> None:
    started: list[int] = []
    lock = threading.Lock()
    gate = threading.Barrier(4, timeout=10)  # four tasks must run at once to pass it

    def task(item: int) -> int:
        with lock:
            started.append(item)
        if item < 4:
            gate.wait()
        time.sleep(0.02 * (item % 3))  # later items often finish first
        return item * 10

    results = ordered_map(task, range(20), 4, "test-map")
    assert next(results) == 0
    with lock:
        assert len(started) <= 5  # the width, and the one submitted as 0 was taken
    assert list(results) == [i * 10 for i in range(1, 20)]
    assert sorted(started) == list(range(20))


def test_ordered_map_raises_a_task_error_at_its_place() -> None:
    def task(item: int) -> int:
        if item == 3:
            raise ValueError("item 3 failed")
        return item

    results = ordered_map(task, range(10), 4, "test-map")
    got = [next(results) for _ in range(3)]
    assert got == [0, 1, 2]
    with pytest.raises(ValueError, match="item 3"):
        next(results)
    assert list(ordered_map(task, range(3), 1, "test-map")) == [0, 1, 2]  # one at a time


def test_a_stream_read_ahead_says_how_much_of_its_time_was_before_its_turn() -> None:
    # activity's first requests go out while orders still syncs (run.py): its elapsed time
    # runs from them, and its line says how much of that was before its own turn.
    def line(read_ahead: float) -> str:
        stats = FetchStats(started=time.monotonic() - read_ahead)
        stats.add(requests=3)
        progress = Progress(
            label="activity",
            noun="events",
            wallets_total=1,
            stats=stats,
            logger=logging.getLogger("test"),
            interval=3600,
        )
        return progress.line(final=True)

    assert "elapsed 7s (7s of it read ahead, before its turn)" in line(7.2)
    assert line(0).endswith("retries 0, elapsed 0s")
