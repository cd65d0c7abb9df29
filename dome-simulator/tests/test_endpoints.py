"""Markets, activity and wallet endpoints over real HTTP, checked against the orders they serve.

Every check compares a client's reads with the fills (``truth()``) and the simulator's ground
truth (``markets_truth()``, ``activity_truth()``, ``wallet_mappings()``), so a market missing
for a fill, a redemption before its resolution or a wrong count is caught by id.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from dome_simulator import (
    ACTIVITY_FIELDS,
    MARKET_FIELDS,
    Dataset,
    DomeSimulator,
    Fill,
    activity_id,
)
from dome_simulator.testing import get_api, small_standard, walk_api

KEY = "endpoints-test-key"
HOUR = 3600


@pytest.fixture(scope="module")
def shared() -> Iterator[DomeSimulator]:
    """A read-only simulator for tests that change neither faults nor time."""
    with DomeSimulator(seed=7, api_key=KEY, dataset=small_standard()) as sim:
        yield sim


@pytest.fixture
def sim() -> Iterator[DomeSimulator]:
    """A private simulator for tests that set faults, resolve markets or move time."""
    with DomeSimulator(seed=7, api_key=KEY, dataset=small_standard()) as fresh:
        yield fresh


@pytest.fixture
def client() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {KEY}"
        yield session


def error_of(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) >= {"error", "message"}
    return body


def markets_by_id(sim: DomeSimulator, client: requests.Session) -> dict[str, dict[str, Any]]:
    rows, _ = walk_api(client, sim, "markets", "markets", limit=100)
    return {m["condition_id"]: m for m in rows}


# ----------------------------------------------------------------------- markets


def test_every_fill_has_its_market_with_matching_tokens(
    shared: DomeSimulator, client: requests.Session
) -> None:
    markets = markets_by_id(shared, client)
    fills = shared.truth()
    assert {f["condition_id"] for f in fills} <= set(markets)
    for fill in fills:
        market = markets[fill["condition_id"]]
        sides = {s["id"]: s["label"] for s in (market["side_a"], market["side_b"])}
        assert sides[fill["token_id"]] == fill["token_label"]
        assert (market["market_slug"], market["title"]) == (fill["market_slug"], fill["title"])
        # no trading on a closed market
        if market["close_time"] is not None:
            assert fill["timestamp"] < market["close_time"]
    for market in markets.values():
        assert list(market) == list(MARKET_FIELDS)
        assert market["status"] in ("open", "closed")
        assert market["start_time"] <= market["end_time"]
        assert market["side_a"]["id"] != market["side_b"]["id"]


def test_market_volumes_are_the_served_fills_notional(
    shared: DomeSimulator, client: requests.Session
) -> None:
    markets = markets_by_id(shared, client)
    now = shared.clock.now()
    total: dict[str, float] = defaultdict(float)
    week: dict[str, float] = defaultdict(float)
    for fill in shared.truth():
        notional = fill["shares_normalized"] * fill["price"]
        total[fill["condition_id"]] += notional
        if fill["timestamp"] > now - 7 * 86_400:
            week[fill["condition_id"]] += notional
    for cid, market in markets.items():
        assert market["volume_total"] == pytest.approx(total[cid], abs=1e-5)
        assert market["volume_1_week"] == pytest.approx(week[cid], abs=1e-5)
        assert market["volume_1_week"] <= market["volume_1_month"] <= market["volume_1_year"]


def test_resolved_markets_have_a_winner_and_times(shared: DomeSimulator) -> None:
    states: Counter[tuple[str, bool]] = Counter()
    for market in shared.markets_truth():
        resolved = market["winning_side"] is not None
        states[(market["status"], resolved)] += 1
        if resolved:
            assert market["status"] == "closed"
            assert market["winning_side"] in (market["side_a"], market["side_b"])
            assert market["close_time"] <= market["completed_time"] <= shared.clock.now()
        else:
            assert market["completed_time"] is None
        if market["status"] == "open":
            assert market["close_time"] is None
    # the standard data has open, resolved, and closed-but-not-yet-resolved markets
    assert states[("open", False)]
    assert states[("closed", True)]
    assert states[("closed", False)]


def test_markets_paging_and_limits(shared: DomeSimulator, client: requests.Session) -> None:
    truth = shared.markets_truth()
    first = get_api(client, shared, "markets").json()
    assert first["pagination"]["limit"] == 10
    assert first["markets"] == truth[:10]
    rows, pages = walk_api(client, shared, "markets", "markets", limit=3)
    assert rows == truth
    assert {p["total"] for p in pages} == {len(truth)}
    assert set(pages[0]) == {"limit", "offset", "total", "has_more", "pagination_key"}
    offset_page = get_api(client, shared, "markets", limit=3, offset=3).json()
    assert offset_page["markets"] == truth[3:6]
    for bad in (0, 101, "x"):
        body = error_of(get_api(client, shared, "markets", limit=bad), 400)
        assert body["message"] == "limit must be a number between 1 and 100"
    key = pages[0]["pagination_key"]
    error_of(get_api(client, shared, "markets", limit=4, pagination_key=key), 400)


def test_markets_filters(shared: DomeSimulator, client: requests.Session) -> None:
    truth = shared.markets_truth()
    wanted = [truth[1]["condition_id"], truth[4]["condition_id"]]
    # up to 100 repeated condition_id keys (unknown ones match nothing)
    padding = [f"0x{n:064x}" for n in range(98)]
    rows, _ = walk_api(client, shared, "markets", "markets", condition_id=wanted + padding)
    assert [m["condition_id"] for m in rows] == wanted
    body = error_of(
        get_api(client, shared, "markets", condition_id=[*wanted, *padding, "0x1"]), 400
    )
    assert "at most 100" in body["message"]

    def ids(**params: Any) -> list[str]:
        found, _ = walk_api(client, shared, "markets", "markets", limit=100, **params)
        return [m["condition_id"] for m in found]

    assert ids(market_slug=[truth[2]["market_slug"]]) == [truth[2]["condition_id"]]
    assert ids(token_id=[truth[3]["side_b"]["id"]]) == [truth[3]["condition_id"]]
    assert ids(event_slug=[truth[5]["event_slug"]]) == [truth[5]["condition_id"]]
    for status in ("open", "closed"):
        assert ids(status=status) == [m["condition_id"] for m in truth if m["status"] == status]
    weather = [m["condition_id"] for m in truth if "Weather" in m["tags"]]
    assert weather
    assert ids(tags=["weather"]) == weather
    rain = [m["condition_id"] for m in truth if "rain" in m["title"].lower()]
    assert rain
    assert ids(search="RAIN") == rain
    middle = sorted(m["volume_total"] for m in truth)[len(truth) // 2]
    assert ids(min_volume=middle) == [
        m["condition_id"] for m in truth if m["volume_total"] >= middle
    ]
    assert ids(status="open", tags=["Crypto"]) == [
        m["condition_id"] for m in truth if m["status"] == "open" and "Crypto" in m["tags"]
    ]
    error_of(get_api(client, shared, "markets", search="rain", status="open"), 400)
    error_of(get_api(client, shared, "markets", status="resolved"), 400)
    error_of(get_api(client, shared, "markets", min_volume="lots"), 400)


def test_markets_resolve_as_the_data_clock_advances(
    sim: DomeSimulator, client: requests.Session
) -> None:
    before = markets_by_id(sim, client)
    pending = {cid for cid, m in before.items() if m["winning_side"] is None}
    result = sim.advance(seconds=2 * HOUR)
    after = markets_by_id(sim, client)
    resolved = {cid for cid in pending if after[cid]["winning_side"] is not None}
    assert resolved
    assert set(result["markets_resolved"]) == resolved
    for cid in resolved:
        market = after[cid]
        assert market["status"] == "closed"
        assert market["close_time"] <= market["completed_time"] <= sim.clock.now()
    # new fills never land on a closed market
    sim.advance(new_fills_per_wallet=20)
    for fill in sim.truth():
        close = after[fill["condition_id"]]["close_time"]
        assert close is None or fill["timestamp"] < close


def test_resolve_market_over_the_control_plane(
    sim: DomeSimulator, client: requests.Session
) -> None:
    market = next(m for m in sim.markets_truth() if m["status"] == "open")
    cid = market["condition_id"]
    started = int(sim.clock.now())
    answer = requests.post(
        f"{sim.control_url}/resolve_market",
        json={"condition_id": cid, "winner": market["side_b"]["label"]},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    served = get_api(client, sim, "markets", condition_id=cid).json()["markets"][0]
    assert served["winning_side"] == market["side_b"]
    assert served["status"] == "closed"
    assert started <= served["completed_time"] == served["close_time"] <= sim.clock.now()
    again = requests.post(
        f"{sim.control_url}/resolve_market", json={"condition_id": cid}, timeout=10
    )
    assert again.status_code == 400
    assert "already resolved" in again.json()["message"]
    truth = requests.get(f"{sim.control_url}/markets_truth", timeout=10).json()
    assert truth == sim.markets_truth()


def test_markets_derived_from_hand_made_fills() -> None:
    now = int(time.time())
    fill = Fill(
        token_id="123", token_label="Yes", side="BUY", market_slug="hand-made",
        condition_id="0x" + "ab" * 32, shares=2_000_000, price=0.25, block_number=1,
        log_index=3, tx_hash="0x" + "cd" * 32, title="Hand made?", timestamp=now - 600,
        order_hash="0x" + "ef" * 32, user="0x" + "11" * 20, taker=None,
    )  # fmt: skip
    with DomeSimulator(dataset=Dataset.from_fills([fill], now=now), api_key=KEY) as sim:
        market = next(m for m in sim.markets_truth() if m["condition_id"] == fill.condition_id)
    assert market["side_a"] == {"id": "123", "label": "Yes"}
    assert market["side_b"]["label"] == "No"
    assert market["volume_total"] == pytest.approx(0.5)
    assert market["status"] == "open"


# ---------------------------------------------------------------------- activity


def test_activity_walk_is_the_truth_for_every_wallet(
    shared: DomeSimulator, client: requests.Session
) -> None:
    with_activity = 0
    for wallet in shared.wallets:
        rows, pages = walk_api(client, shared, "activity", "activities", user=wallet, limit=5)
        truth = shared.activity_truth(wallet)
        assert rows == [{k: v for k, v in t.items() if k != "activity_id"} for t in truth]
        assert {p["count"] for p in pages} == {len(truth)}
        assert all("total" not in p for p in pages)
        assert set(pages[0]) <= {"limit", "count", "has_more", "pagination_key"}
        with_activity += bool(truth)
    assert 0 < with_activity < len(shared.wallets)  # some wallets have activity, some none
    everyone, _ = walk_api(client, shared, "activity", "activities", limit=1000)
    assert Counter(activity_id(r) for r in everyone) == Counter(
        t["activity_id"] for t in shared.activity_truth()
    )


def test_activity_rows_agree_with_markets(shared: DomeSimulator) -> None:
    markets = {m["condition_id"]: m for m in shared.markets_truth()}
    sides: Counter[str] = Counter()
    for row in shared.activity_truth():
        assert list(row)[:-1] == list(ACTIVITY_FIELDS)
        assert row["activity_id"] == f"{row['tx_hash']}:{row['log_index']}"
        assert row["order_hash"] == ""
        market = markets[row["condition_id"]]
        assert row["token_id"] in (market["side_a"]["id"], market["side_b"]["id"])
        sides[row["side"]] += 1
        if row["side"] == "REDEEM":
            assert market["winning_side"] is not None
            assert row["token_id"] == market["winning_side"]["id"]
            assert row["timestamp"] >= market["completed_time"]
        elif market["close_time"] is not None:
            assert row["timestamp"] < market["close_time"]
    assert sides["SPLIT"]
    assert sides["MERGE"]
    assert sides["REDEEM"]


def test_activity_parameters_and_windows(shared: DomeSimulator, client: requests.Session) -> None:
    wallet = shared.roles["mixed"]
    truth = shared.activity_truth(wallet)
    t = truth[len(truth) // 2]["timestamp"]
    rows, _ = walk_api(
        client, shared, "activity", "activities", user=wallet, start_time=t, end_time=t + HOUR
    )
    assert {activity_id(r) for r in rows} == {
        a["activity_id"] for a in truth if t <= a["timestamp"] <= t + HOUR
    }
    cid = truth[0]["condition_id"]
    rows, _ = walk_api(client, shared, "activity", "activities", user=wallet, condition_id=cid)
    assert rows
    assert all(r["condition_id"] == cid for r in rows)
    for bad in (0, 1001):
        error_of(get_api(client, shared, "activity", user=wallet, limit=bad), 400)
    body = error_of(
        get_api(client, shared, "activity", user=wallet, condition_id=cid, market_slug="x"), 400
    )
    assert "Only one of market_slug or condition_id" in body["message"]
    error_of(get_api(client, shared, "activity", user=wallet, start_time=5, end_time=5), 400)
    assert get_api(client, shared, "activity", user=wallet).json()["pagination"]["limit"] == 100


def test_redemptions_appear_when_the_data_clock_passes_them(
    sim: DomeSimulator, client: requests.Session
) -> None:
    before = {a["activity_id"] for a in sim.activity_truth()}
    sim.advance(seconds=30 * 86_400, new_activity_per_wallet=1)
    after = sim.activity_truth()
    markets = {m["condition_id"]: m for m in sim.markets_truth()}
    new = [a for a in after if a["activity_id"] not in before]
    assert any(a["side"] == "REDEEM" for a in new)
    assert sum(a["side"] == "SPLIT" for a in new) == len(sim.wallets)
    for row in new:
        if row["side"] == "REDEEM":
            assert row["timestamp"] >= markets[row["condition_id"]]["completed_time"]
    rows, _ = walk_api(client, sim, "activity", "activities", limit=1000)
    assert {activity_id(r) for r in rows} == {a["activity_id"] for a in after}


def test_activity_without_log_index(sim: DomeSimulator, client: requests.Session) -> None:
    sim.set_faults(no_log_index=True)
    wallet = sim.roles["mixed"]
    rows, _ = walk_api(client, sim, "activity", "activities", user=wallet)
    assert rows
    assert all("log_index" not in r and "block_number" not in r for r in rows)
    ids = [activity_id(r) for r in rows]
    assert all(":h" in i for i in ids)
    assert len(set(ids)) == len(ids)
    assert ids == [a["activity_id"] for a in sim.activity_truth(wallet)]


def test_fill_count_is_the_first_pages_total(
    shared: DomeSimulator, client: requests.Session
) -> None:
    wallet = shared.roles["large"]
    truth = shared.truth(wallet)
    start, end = truth[-100]["timestamp"], truth[10]["timestamp"]
    expected = sum(start <= f["timestamp"] <= end for f in truth)
    assert shared.fill_count(wallet, start, end) == expected
    page = get_api(client, shared, "orders", user=wallet, start_time=start, end_time=end, limit=1)
    assert page.json()["pagination"]["total"] == expected
    assert shared.fill_count(wallet) == len(truth)
    assert shared.fill_count("0x" + "00" * 20) == 0
    over_http = requests.get(
        f"{shared.control_url}/fill_count",
        params={"wallet": wallet, "start_time": start, "end_time": end},
        timeout=10,
    )
    assert over_http.json() == {"count": expected}


# ------------------------------------------------------------------------ wallet


def test_wallet_mappings_by_proxy_eoa_and_handle(
    shared: DomeSimulator, client: requests.Session
) -> None:
    mappings = shared.wallet_mappings()
    assert [m["proxy"] for m in mappings] == shared.wallets
    assert all(m["eoa"] and m["eoa"] != m["proxy"] for m in mappings)
    handles = [m["handle"] for m in mappings if m["handle"]]
    assert len(handles) > len(mappings) // 2
    assert len(handles) < len(mappings)
    for mapping in mappings:
        assert set(mapping) == {"eoa", "proxy", "wallet_type", "handle", "pseudonym", "image"}
        assert get_api(client, shared, "wallet", proxy=mapping["proxy"].upper()).json() == mapping
        assert get_api(client, shared, "wallet", eoa=mapping["eoa"]).json() == mapping
        if mapping["handle"]:
            for handle in (mapping["handle"], "@" + mapping["handle"].upper()):
                assert get_api(client, shared, "wallet", handle=handle).json() == mapping
    body = error_of(get_api(client, shared, "wallet", handle="@nobody-here"), 404)
    assert body["message"].startswith("No wallet mapping found")
    error_of(get_api(client, shared, "wallet", eoa="0x" + "99" * 20), 404)
    for params in ({}, {"eoa": mappings[0]["eoa"], "proxy": mappings[0]["proxy"]}):
        body = error_of(get_api(client, shared, "wallet", **params), 400)
        assert body["message"] == "Exactly one of eoa, proxy, or handle must be provided"
    over_http = requests.get(f"{shared.control_url}/wallet_mappings", timeout=10).json()
    assert over_http == mappings


def test_wallet_metrics_count_what_is_served(
    shared: DomeSimulator, client: requests.Session
) -> None:
    wallet = shared.roles["mixed"]
    answer = get_api(client, shared, "wallet", proxy=wallet, with_metrics="true").json()
    metrics = answer["wallet_metrics"]
    fills = shared.truth(wallet)
    activity = Counter(a["side"] for a in shared.activity_truth(wallet))
    assert metrics["total_trades"] == len(fills)
    assert metrics["total_markets"] == len({f["condition_id"] for f in fills})
    notional = sum(f["shares_normalized"] * f["price"] for f in fills)
    assert metrics["total_volume"] == pytest.approx(notional, abs=1e-5)
    assert (metrics["splits"], metrics["merges"], metrics["redemptions"]) == (
        activity["SPLIT"], activity["MERGE"], activity["REDEEM"],
    )  # fmt: skip
    day = metrics["highest_volume_day"]
    assert day["trades"] == sum(
        time.strftime("%Y-%m-%d", time.gmtime(f["timestamp"])) == day["date"] for f in fills
    )
    assert "wallet_metrics" not in get_api(client, shared, "wallet", proxy=wallet).json()


# ------------------------------------------------------------- faults and budget


def test_one_rate_limit_budget_for_every_endpoint(
    sim: DomeSimulator, client: requests.Session
) -> None:
    sim.set_faults(rate_limit=[3, 100])
    wallet = sim.roles["mixed"]
    statuses = [
        get_api(client, sim, "orders", user=wallet).status_code,
        get_api(client, sim, "activity", user=wallet).status_code,
        get_api(client, sim, "markets").status_code,
        get_api(client, sim, "wallet", proxy=wallet).status_code,
    ]
    assert statuses == [200, 200, 200, 429]
    assert sim.stats()["requests_by_route"] == {
        "orders": 1,
        "activity": 1,
        "markets": 1,
        "wallet": 1,
    }


def test_each_endpoints_first_and_last_arrival_is_kept(
    sim: DomeSimulator, client: requests.Session
) -> None:
    sim.reset_stats()
    wallet = sim.roles["mixed"]
    get_api(client, sim, "orders", user=wallet)
    get_api(client, sim, "markets")
    get_api(client, sim, "orders", user=wallet)
    spans = sim.stats()["arrivals_by_route"]
    assert set(spans) == {"orders", "markets"}
    (orders_first, orders_last), (markets_first, markets_last) = spans["orders"], spans["markets"]
    assert 0 <= orders_first < markets_first == markets_last < orders_last
    sim.reset_stats()
    assert sim.stats()["arrivals_by_route"] == {}


def test_injected_failures_hit_every_endpoint_or_the_named_ones(
    sim: DomeSimulator, client: requests.Session
) -> None:
    wallet = sim.roles["mixed"]
    sim.set_faults(fail_next={"503": 2, "truncated": 1})
    assert get_api(client, sim, "markets").status_code == 503
    assert get_api(client, sim, "wallet", proxy=wallet).status_code == 503
    cut = get_api(client, sim, "activity", user=wallet)
    assert cut.status_code == 200
    with pytest.raises(ValueError, match=r"Expecting|Unterminated|Extra|Invalid"):
        cut.json()
    sim.set_faults(fail_every={"500_json": 1}, fail_routes=["activity"])
    assert get_api(client, sim, "markets").status_code == 200
    assert get_api(client, sim, "orders", user=wallet).status_code == 200
    assert get_api(client, sim, "activity", user=wallet).status_code == 500
    bad = requests.post(f"{sim.control_url}/faults", json={"fail_routes": ["trades"]}, timeout=10)
    assert bad.status_code == 400
    assert "unknown endpoint" in bad.json()["message"]


def test_new_endpoints_need_the_key(shared: DomeSimulator) -> None:
    for path in ("activity", "markets", "wallet"):
        response = requests.get(f"{shared.base_url}/polymarket/{path}", timeout=10)
        assert error_of(response, 401)["error"] == "Unauthorized"
