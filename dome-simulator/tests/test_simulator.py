"""The Dome API simulator over real HTTP on 127.0.0.1, against the API docs (see README.md)."""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from dome_simulator import (
    CTF_EXCHANGE,
    FAIL_KINDS,
    Dataset,
    DomeSimulator,
    Fill,
    WalletSpec,
    order_id,
)
from dome_simulator.testing import SMALL_PAGE, small_standard, walk
from dome_simulator.testing import get_orders as get

PAGE = SMALL_PAGE
KEY = "sim-test-key-4242"
ORDER_FIELDS = {
    "token_id", "token_label", "side", "market_slug", "condition_id", "shares",
    "shares_normalized", "price", "block_number", "log_index", "tx_hash", "title",
    "timestamp", "order_hash", "user", "taker",
}  # fmt: skip


@pytest.fixture(scope="module")
def shared() -> Iterator[DomeSimulator]:
    """A read-only simulator for tests that change neither faults nor time."""
    with DomeSimulator(seed=7, api_key=KEY, dataset=small_standard()) as sim:
        yield sim


@pytest.fixture
def sim() -> Iterator[DomeSimulator]:
    """A private simulator for tests that set faults or move time."""
    with DomeSimulator(seed=7, api_key=KEY, dataset=small_standard()) as fresh:
        yield fresh


@pytest.fixture
def client() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {KEY}"
        yield session


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [order_id(row) for row in rows]


def sort_key(row: dict[str, Any]) -> tuple[int, str, int]:
    return (row["timestamp"], row["tx_hash"], row["log_index"])


# --------------------------------------------------------------------- paging


@pytest.mark.parametrize("mode", ["cursor", "offset"])
def test_walk_returns_exactly_the_truth_for_every_wallet(
    shared: DomeSimulator, client: requests.Session, mode: str
) -> None:
    for wallet in shared.wallets:
        limit = 1000 if wallet == shared.roles["large"] else PAGE
        rows = walk(client, shared, wallet, mode=mode, limit=limit)
        truth = shared.truth(wallet)
        assert len(rows) == len(truth), wallet
        assert Counter(ids(rows)) == Counter(t["order_id"] for t in truth)
        assert rows == [{k: v for k, v in t.items() if k != "order_id"} for t in truth]
        assert [sort_key(r) for r in rows] == sorted(map(sort_key, rows), reverse=True)


def test_page_boundaries(shared: DomeSimulator, client: requests.Session) -> None:
    for role, pages, count in (
        ("empty", 1, 0),
        ("one", 1, 1),
        ("page_minus_1", 1, PAGE - 1),
        ("page", 1, PAGE),
        ("page_plus_1", 2, PAGE + 1),
    ):
        wallet = shared.roles[role]
        first = get(client, shared, user=wallet, limit=PAGE).json()
        assert first["pagination"]["total"] == count
        assert first["pagination"]["has_more"] is (pages > 1)
        assert len(first["orders"]) == min(count, PAGE)
    assert get(client, shared, user=shared.roles["one"]).json()["pagination"]["limit"] == 100


def test_burst_of_more_than_a_page_in_one_second(
    shared: DomeSimulator, client: requests.Session
) -> None:
    wallet = shared.roles["burst"]
    per_second = Counter(t["timestamp"] for t in shared.truth(wallet))
    second, count = per_second.most_common(1)[0]
    assert count > PAGE
    rows = walk(client, shared, wallet, start_time=second - 1, end_time=second)
    assert sum(r["timestamp"] == second for r in rows) == count


def test_time_bounds_are_inclusive(shared: DomeSimulator, client: requests.Session) -> None:
    wallet = shared.roles["large"]
    truth = shared.truth(wallet)
    t = truth[len(truth) // 2]["timestamp"]
    expected = {f["order_id"] for f in truth if t - 3600 <= f["timestamp"] <= t}
    rows = walk(client, shared, wallet, limit=7, start_time=t - 3600, end_time=t)
    assert set(ids(rows)) == expected
    assert any(r["timestamp"] == t for r in rows)
    below = walk(client, shared, wallet, start_time=t, end_time=t + 3600)
    assert any(r["timestamp"] == t for r in below)
    assert all(t <= r["timestamp"] <= t + 3600 for r in below)


def test_cursor_shape_and_frozen_total(sim: DomeSimulator, client: requests.Session) -> None:
    wallet = sim.roles["page_plus_1"]
    sim.set_faults(insert_on_walk=True)
    before = {t["order_id"] for t in sim.truth(wallet)}
    first = get(client, sim, user=wallet, limit=PAGE).json()
    key = first["pagination"]["pagination_key"]
    cursor = json.loads(base64.b64decode(key))
    assert cursor["block_timestamp"].endswith("Z")
    assert cursor["block_timestamp"][19] == "."
    last = first["orders"][-1]
    assert (cursor["tx_hash"], cursor["log_index"]) == (last["tx_hash"], last["log_index"])
    assert cursor["total"] == PAGE + 1
    second = get(client, sim, user=wallet, limit=PAGE, pagination_key=key).json()
    assert second["pagination"]["total"] == PAGE + 1  # frozen although a fill arrived
    assert second["pagination"]["has_more"] is False
    seen = set(ids(first["orders"] + second["orders"]))
    assert seen == before
    after = {t["order_id"] for t in sim.truth(wallet)}
    assert len(after - before) == 1  # one fill inserted at the head per cursor page
    newest = sim.truth(wallet)[0]
    assert newest["order_id"] in after - before
    assert newest["timestamp"] <= time.time()


# ------------------------------------------------------------------ validation


def error_of(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) >= {"error", "message"}
    return body


def test_auth(shared: DomeSimulator) -> None:
    url = f"{shared.base_url}/polymarket/orders"
    params = {"user": shared.wallets[1]}
    for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": KEY}):
        response = requests.get(url, params=params, headers=headers, timeout=10)
        body = error_of(response, 401)
        assert body["error"] == "Unauthorized"
        assert KEY not in response.text
        assert "wrong-key" not in response.text
    assert KEY not in repr(shared)


def test_parameter_rules(shared: DomeSimulator, client: requests.Session) -> None:
    wallet = shared.roles["page"]
    body = error_of(get(client, shared, user=wallet, start_time=100, end_time=100), 400)
    assert body["message"] == "start_time must be less than end_time"
    error_of(get(client, shared, user=wallet, start_time=200, end_time=100), 400)
    assert (
        "valid Unix timestamp"
        in error_of(get(client, shared, user=wallet, start_time="x"), 400)["message"]
    )
    for limit in (0, 1001, -5, "ten"):
        body = error_of(get(client, shared, user=wallet, limit=limit), 400)
        assert body["error"] == "Invalid limit parameter"
    for limit in (1, 1000):
        assert get(client, shared, user=wallet, limit=limit).status_code == 200
    error_of(get(client, shared, user=wallet, offset=-1), 400)
    body = error_of(get(client, shared), 400)
    assert "At least one of market_slug" in body["message"]
    body = error_of(get(client, shared, market_slug="a", token_id="1"), 400)
    assert body["message"] == "Only one of market_slug, token_id, or condition_id can be provided"
    missing = client.get(f"{shared.base_url}/polymarket/trades", timeout=10)
    assert error_of(missing, 404) == {"error": "Not Found", "message": "route not found"}


def test_user_is_case_insensitive_and_market_filters_work(
    shared: DomeSimulator, client: requests.Session
) -> None:
    wallet = shared.roles["mixed"]
    upper = get(client, shared, user=wallet.upper().replace("0X", "0x"), limit=5).json()
    assert upper["pagination"]["total"] == len(shared.truth(wallet))
    slug = shared.truth(wallet)[0]["market_slug"]
    rows = walk(client, shared, wallet, market_slug=slug)
    assert rows
    assert {r["market_slug"] for r in rows} == {slug}
    assert len(rows) == sum(t["market_slug"] == slug for t in shared.truth(wallet))


def test_cursor_reuse_with_other_filters_is_rejected(
    shared: DomeSimulator, client: requests.Session
) -> None:
    wallet = shared.roles["page_plus_1"]
    key = get(client, shared, user=wallet, limit=PAGE).json()["pagination"]["pagination_key"]
    others: list[dict[str, Any]] = [
        {"user": wallet, "limit": PAGE - 1},
        {"user": shared.roles["page"], "limit": PAGE},
        {"user": wallet, "limit": PAGE, "start_time": 1},
    ]
    for other in others:
        body = error_of(get(client, shared, pagination_key=key, **other), 400)
        assert body["error"] == "Invalid pagination_key"
    error_of(get(client, shared, user=wallet, pagination_key="not-a-cursor!"), 400)


# ---------------------------------------------------------------------- dataset


def test_dataset_has_every_edge_case(shared: DomeSimulator) -> None:
    rows = shared.truth()
    assert {r["user"] for r in rows} <= set(shared.wallets)
    assert all(set(r) >= ORDER_FIELDS for r in rows)
    assert any("fee_rate_bps" in r for r in rows)  # an unknown extra field
    for r in rows:
        assert r["user"] == r["user"].lower()
        assert len(r["user"]) == 42
        assert r["side"] in ("BUY", "SELL")
        assert r["token_id"].isdigit()
        assert len(r["token_id"]) >= 70
        for name in ("condition_id", "tx_hash", "order_hash"):
            assert r[name].startswith("0x")
            assert len(r[name]) == 66
        assert isinstance(r["shares"], int)
        assert r["shares_normalized"] == r["shares"] / 1e6
        assert 0 < r["price"] < 1
        assert round(r["price"], 3) == r["price"]
    mixed = shared.truth(shared.roles["mixed"])
    txs_per_order: dict[str, set[str]] = {}
    fills_per_tx = Counter(r["tx_hash"] for r in mixed)
    same_order_same_tx = Counter((r["tx_hash"], r["order_hash"]) for r in mixed)
    for r in mixed:
        txs_per_order.setdefault(r["order_hash"], set()).add(r["tx_hash"])
    assert max(len(t) for t in txs_per_order.values()) >= 3  # partial fills across txs
    assert max(fills_per_tx.values()) >= 3  # several fills in one transaction
    assert max(same_order_same_tx.values()) >= 2  # one order filled twice in one tx
    assert any(r["taker"] is None for r in mixed)
    assert any(r["taker"] == CTF_EXCHANGE for r in mixed)
    assert any(not r["title"].isascii() for r in mixed)
    titles = "".join({r["title"] for r in rows})
    assert "🚀" in titles
    assert "台湾" in titles
    assert "é" in titles
    assert len({r["order_id"] for r in rows}) == len(rows)
    large = shared.truth(shared.roles["large"])
    assert large[0]["timestamp"] - large[-1]["timestamp"] > 300 * 86400
    assert large[0]["timestamp"] <= time.time() - 60  # histories end before now


def test_same_seed_same_data() -> None:
    now = time.time()
    a = DomeSimulator(seed=3, dataset=small_standard(3, now=now))
    b = DomeSimulator(seed=3, dataset=small_standard(3, now=now))
    c = DomeSimulator(seed=4, dataset=small_standard(4, now=now))
    assert a.wallets == b.wallets
    assert a.truth() == b.truth()
    assert a.wallets != c.wallets
    assert {r["tx_hash"] for r in a.truth()}.isdisjoint({r["tx_hash"] for r in c.truth()})
    assert Dataset.standard(seed=3, page=PAGE, large=10).wallets == a.wallets
    assert len(a.truth(a.roles["large"])) == 2000


def test_custom_and_explicit_datasets() -> None:
    spec = Dataset.custom({"0xAbC0000000000000000000000000000000000001": 3}, seed=1)
    assert spec.wallets == ["0xabc0000000000000000000000000000000000001"]
    assert len(spec.fills(spec.wallets[0])) == 3
    made = Dataset.custom([5, WalletSpec(20, "burst", burst=12)], seed=1)
    assert [len(made.fills(w)) for w in made.wallets] == [5, 20]
    fill = made.fills(made.wallets[0])[0]
    explicit = Dataset.from_fills([fill])
    sim = DomeSimulator(dataset=explicit)
    assert [r["tx_hash"] for r in sim.truth()] == [fill.tx_hash]
    assert isinstance(fill, Fill)
    assert fill.to_api()["shares_normalized"] == fill.shares / 1e6
    bench = Dataset.bench(seed=1, wallets=3, fills_per_wallet=100)
    assert [len(bench.fills(w)) for w in bench.wallets] == [100, 100, 100]
    assert 1000 < sum(len(Dataset.demo(1).fills(w)) for w in Dataset.demo(1).wallets) < 10_000


def test_order_id_formula() -> None:
    row = {"tx_hash": "0xABC", "log_index": 7, "order_hash": "0x1", "token_id": "9",
           "side": "BUY", "shares": 1000000, "price": 0.5}  # fmt: skip
    assert order_id(row) == "0xabc:7"
    row["log_index"] = None
    import hashlib

    digest = hashlib.sha256(b"0x1|9|BUY|1000000|0.5").hexdigest()[:16]
    assert order_id(row) == f"0xabc:h{digest}"
    assert order_id({k: v for k, v in row.items() if k != "log_index"}) == f"0xabc:h{digest}"


# ------------------------------------------------------------------- time


def test_late_fills_appear_only_after_advance(sim: DomeSimulator, client: requests.Session) -> None:
    wallet = sim.roles["late"]
    assert len(walk(client, sim, wallet)) == len(sim.truth(wallet)) == 50
    assert sim.health()["pending_fills"] == 20
    result = sim.advance(seconds=1800)
    assert result["became_visible"] == 20
    rows = walk(client, sim, wallet)
    assert len(rows) == len(sim.truth(wallet)) == 70
    assert max(r["timestamp"] for r in rows) <= time.time()

    other = sim.roles["one"]
    started = time.time()
    result = sim.advance(new_fills_per_wallet=2, late_fills_per_wallet=3, wallets=[other])
    assert (result["new_fills"], result["late_fills"]) == (2, 3)
    fills = sim.truth(other)
    assert len(fills) == 6
    new, late = fills[:2], fills[2:5]
    assert all(started - 5 <= f["timestamp"] <= time.time() for f in new)
    assert all(started - 1801 <= f["timestamp"] <= started - 299 for f in late)
    assert set(ids(walk(client, sim, other))) == {f["order_id"] for f in fills}

    everyone = sim.advance(new_fills_per_wallet=1)
    assert everyone["new_fills"] == len(sim.wallets)
    with pytest.raises(ValueError, match="never goes back"):
        sim.advance(seconds=-1)


# ------------------------------------------------------------ API-version faults


def test_ascending_sort_fault(sim: DomeSimulator, client: requests.Session) -> None:
    sim.set_faults(sort="asc")
    wallet = sim.roles["burst"]
    expected = {t["order_id"] for t in sim.truth(wallet)}
    for mode in ("cursor", "offset"):
        rows = walk(client, sim, wallet, mode=mode)
        assert [sort_key(r) for r in rows] == sorted(map(sort_key, rows))
        assert ids(rows)
        assert set(ids(rows)) == expected
        assert len(rows) == len(expected)


def test_no_pagination_key_forces_offset(sim: DomeSimulator, client: requests.Session) -> None:
    sim.set_faults(no_pagination_key=True, omit_total=True)
    wallet = sim.roles["page_plus_1"]
    page = get(client, sim, user=wallet, limit=PAGE).json()["pagination"]
    assert page["has_more"] is True
    assert "pagination_key" not in page
    assert "total" not in page
    rows = walk(client, sim, wallet, mode="offset")
    assert set(ids(rows)) == {t["order_id"] for t in sim.truth(wallet)}


def test_no_log_index_fault(sim: DomeSimulator, client: requests.Session) -> None:
    sim.set_faults(no_log_index=True)
    wallet = sim.roles["mixed"]
    rows = walk(client, sim, wallet)
    assert all("log_index" not in r and "block_number" not in r for r in rows)
    truth = sim.truth(wallet)
    assert all(":h" in t["order_id"] for t in truth)
    assert Counter(ids(rows)) == Counter(t["order_id"] for t in truth)
    assert len(set(ids(rows))) == len(rows)  # fills stay distinct under the weak identity


def test_offset_limit_fault(sim: DomeSimulator, client: requests.Session) -> None:
    sim.set_faults(offset_limit=100)
    wallet = sim.roles["large"]
    assert get(client, sim, user=wallet, offset=100).status_code == 200
    body = error_of(get(client, sim, user=wallet, offset=101), 401)
    assert body["docs"].startswith("https://docs.domeapi.io/")
    assert "offset" in body["message"]
    first = get(client, sim, user=wallet, limit=PAGE).json()["pagination"]
    deep = get(
        client, sim, user=wallet, limit=PAGE, offset=500, pagination_key=first["pagination_key"]
    )
    assert deep.status_code == 200  # a cursor request ignores offset


# -------------------------------------------------------------- injected failures


@pytest.mark.parametrize("kind", FAIL_KINDS)
def test_fail_next_kinds(sim: DomeSimulator, client: requests.Session, kind: str) -> None:
    sim.set_faults(fail_next={kind: 1}, timeout_sleep=0.6)
    wallet = sim.roles["page"]
    if kind == "drop":
        with pytest.raises(requests.ConnectionError):
            get(client, sim, user=wallet)
    elif kind == "timeout":
        with pytest.raises(requests.Timeout):
            get(client, sim, user=wallet, timeout=0.2)
    else:
        response = get(client, sim, user=wallet)
        assert int(response.headers["Content-Length"]) == len(response.content)
        expected = {"500_json": 500, "502_html": 502, "503": 503, "429": 429}.get(kind, 200)
        assert response.status_code == expected
        if kind in ("truncated", "invalid_json", "502_html"):
            with pytest.raises(requests.JSONDecodeError):
                response.json()
        else:
            error_of(response, expected)
        if kind == "502_html":
            assert response.headers["Content-Type"] == "text/html"
        if kind == "429":
            assert int(response.headers["Retry-After"]) >= 1
    assert get(client, sim, user=wallet).status_code == 200  # only the next request failed
    stats = sim.stats()
    assert stats["requests"] == 2
    assert stats["dropped"] == (1 if kind == "drop" else 0)


def test_fail_next_sequence_and_fail_every(sim: DomeSimulator, client: requests.Session) -> None:
    wallet = sim.roles["one"]
    sim.set_faults(fail_next={"503": 2, "500_json": 1})
    assert [get(client, sim, user=wallet).status_code for _ in range(4)] == [503, 503, 500, 200]
    assert sim.set_faults(fail_every={"429": 3})["fail_every"] == {"429": 3}
    codes = [get(client, sim, user=wallet).status_code for _ in range(7)]
    assert codes == [200, 200, 429, 200, 200, 429, 200]
    sim.clear_faults()
    assert {get(client, sim, user=wallet).status_code for _ in range(4)} == {200}
    assert sim.stats()["by_status"] == {200: 10, 429: 2, 500: 1, 503: 2}
    with pytest.raises(ValueError, match="unknown failure kind"):
        sim.set_faults(fail_next={"404": 1})
    with pytest.raises(ValueError, match="unknown fault"):
        sim.set_faults(no_such_fault=True)


def test_rate_limit_and_peak_stats(client: requests.Session) -> None:
    with DomeSimulator(api_key=KEY, dataset=Dataset.custom([3]), rate_limit=(5, 8)) as sim:
        wallet = sim.wallets[0]
        codes = [get(client, sim, user=wallet).status_code for _ in range(7)]
        assert codes == [200] * 5 + [429] * 2
        limited = get(client, sim, user=wallet)
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) == 1
        assert error_of(limited, 429)["error"] == "Too Many Requests"
        time.sleep(1.05)
        codes = [get(client, sim, user=wallet).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]  # the 10-second bucket (8) is full
        assert int(get(client, sim, user=wallet).headers["Retry-After"]) >= 8
        stats = sim.stats()
        assert stats["requests"] == 13
        assert stats["by_status"] == {200: 8, 429: 5}
        assert stats["max_in_1s"] == 8
        assert stats["max_in_10s"] == 13
        assert stats["requests_by_wallet"] == {wallet: 13}
        sim.reset_stats()
        sim.set_faults(retry_after=None, rate_limit=(1, 100))
        get(client, sim, user=wallet)
        limited = get(client, sim, user=wallet)
        assert limited.status_code == 429
        assert "Retry-After" not in limited.headers
        sim.clear_faults()  # back to the constructor's (5, 8)
        assert sim.set_faults()["rate_limit"] == [5, 8]


def test_latency_does_not_block_other_requests(client: requests.Session) -> None:
    with DomeSimulator(api_key=KEY, dataset=Dataset.custom([3]), latency=(0.3, 0.3)) as sim:
        wallet = sim.wallets[0]
        codes: list[int] = []

        def one() -> None:
            codes.append(get(requests.Session(), sim, user=wallet).status_code)

        started = time.monotonic()
        threads = [threading.Thread(target=one) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < 1.2
        assert codes == [401] * 6  # latency applies before auth too (no key sent)
        assert sim.stats()["max_in_flight"] == 6


def test_arrival_latency_is_slept_before_the_request_is_counted(
    client: requests.Session,
) -> None:
    with DomeSimulator(api_key=KEY, dataset=Dataset.custom([3]), rate_limit=(1, 100)) as sim:
        wallet = sim.wallets[0]
        assert sim.set_faults(arrival_latency=(0.6, 0.6))["arrival_latency"] == [0.6, 0.6]
        codes: list[int] = []
        sent = threading.Thread(
            target=lambda: codes.append(get(client, sim, user=wallet).status_code)
        )
        started = time.monotonic()
        sent.start()
        time.sleep(0.3)
        assert sim.stats()["requests"] == 0  # on its way in: not counted yet
        sent.join()
        assert time.monotonic() - started >= 0.6
        assert codes == [200]
        assert sim.stats()["requests"] == 1
        # 1.1 s after the first left but 0.5 s after it was counted: the budget of one a
        # second sees requests as they arrive.
        sim.set_faults(arrival_latency=(0.0, 0.0))
        time.sleep(max(0.0, started + 1.1 - time.monotonic()))
        assert get(client, sim, user=wallet).status_code == 429
        with pytest.raises(ValueError, match="latency"):
            sim.set_faults(arrival_latency=(0.5, 0.1))


# ---------------------------------------------------------------- server & control


def test_keep_alive_and_exact_content_length(shared: DomeSimulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", shared.port, timeout=10)
    headers = {"Authorization": f"Bearer {KEY}"}
    for _ in range(3):
        conn.request("GET", f"/v1/polymarket/orders?user={shared.roles['page']}", headers=headers)
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200
        assert response.version == 11
        assert int(response.headers["Content-Length"]) == len(body)
        assert response.headers.get("Connection") != "close"
        assert len(orjson.loads(body)["orders"]) == PAGE
    conn.close()


def test_http_control_plane(sim: DomeSimulator) -> None:
    control = sim.control_url
    assert requests.get(f"{control}/health", timeout=10).json()["ok"] is True
    listing = requests.get(f"{control}/wallets", timeout=10).json()
    assert listing["wallets"] == sim.wallets
    assert listing["roles"] == sim.roles
    wallet = sim.roles["page"]
    truth = requests.get(f"{control}/truth", params={"wallet": wallet}, timeout=10).json()
    assert truth == sim.truth(wallet)
    assert len(requests.get(f"{control}/truth", timeout=10).json()) == len(sim.truth())
    faults = requests.post(f"{control}/faults", json={"fail_next": {"503": 1}}, timeout=10)
    assert faults.json()["fail_next"] == {"503": 1}
    auth = {"Authorization": f"Bearer {KEY}"}
    orders = f"{sim.base_url}/polymarket/orders"
    assert (
        requests.get(orders, params={"user": wallet}, headers=auth, timeout=10).status_code == 503
    )
    stats = requests.get(f"{control}/stats", timeout=10).json()
    assert stats["requests"] == 1
    assert stats["by_status"] == {"503": 1}
    assert requests.post(f"{control}/reset_stats", timeout=10).json() == {"ok": True}
    assert sim.stats()["requests"] == 0
    moved = requests.post(
        f"{control}/advance",
        json={"seconds": 1800, "new_fills_per_wallet": 1, "wallets": [wallet]},
        timeout=10,
    ).json()
    assert moved["became_visible"] == 20
    assert moved["new_fills"] == 1
    assert len(sim.truth(wallet)) == PAGE + 1
    body = {"clear": True, "sort": "asc"}
    assert requests.post(f"{control}/faults", json=body, timeout=10).json()["sort"] == "asc"
    assert requests.post(f"{control}/clear_faults", timeout=10).json()["sort"] == "desc"
    bad = requests.post(f"{control}/faults", json={"sort": "sideways"}, timeout=10)
    assert error_of(bad, 400)["error"] == "Bad Request"
    assert requests.get(f"{control}/nope", timeout=10).status_code == 404
    assert sim.stats()["requests"] == 0  # the control plane is not counted


def test_stop_is_prompt_and_idempotent() -> None:
    sim = DomeSimulator(dataset=Dataset.custom([1]))
    with pytest.raises(RuntimeError):
        _ = sim.base_url
    url = sim.start()
    assert sim.start() == url
    assert url.endswith("/v1")
    session = requests.Session()
    session.get(f"{url}/polymarket/orders", timeout=5)  # leaves an idle keep-alive connection
    started = time.monotonic()
    sim.stop()
    sim.stop()
    assert time.monotonic() - started < 2
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/polymarket/orders", timeout=2)


def test_cli_prints_json_and_exits_cleanly(tmp_path: Path) -> None:
    wallets_file = tmp_path / "wallets.txt"
    command = [
        sys.executable, "-m", "dome_simulator", "--port", "0", "--seed", "5",
        "--profile", "demo", "--rate-limit", "dev", "--latency-ms", "0-2",
        "--api-key", KEY, "--wallets-out", str(wallets_file),
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        banner = json.loads(proc.stdout.readline())
        assert banner["api_key"] == KEY
        assert banner["url"].startswith("http://127.0.0.1:")
        assert wallets_file.read_text().split() == banner["wallets"]
        response = requests.get(
            f"{banner['url']}/polymarket/orders",
            params={"user": banner["wallets"][0], "limit": 1000},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=10,
        )
        assert response.status_code == 200
        assert len(response.json()["orders"]) == 1000
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert KEY not in err
