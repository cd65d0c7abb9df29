"""The page fetcher's HTTP transport (urllib3, not requests' session) against a real server.

A small HTTP server on 127.0.0.1 answers as an API might: gzip when asked, a redirect, and
it records what it was sent, so each test checks what went over the wire and what came back.
"""

from __future__ import annotations

import gzip
import http.server
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import urllib3

from tap_dome.client import ORDERS
from tap_dome.errors import DomeRequestError, DomeRetriesExhausted
from tap_dome.fetch import FetchStats, PageFetcher, connection_pool
from tap_dome.page import page_of
from tap_dome.ratelimit import RateLimiter

FILLS = [
    {"tx_hash": "0xab", "log_index": i, "timestamp": 1_700_000_000 + i, "price": 0.5}
    for i in range(3)
]


class _Api(http.server.BaseHTTPRequestHandler):
    """Answers GET /v1/polymarket/orders with FILLS; /v1/moved with a 301."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        self.seen.append(
            {
                "path": url.path,
                "query": urllib.parse.parse_qsl(url.query),
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        )
        if url.path.startswith("/v1/cut"):  # a page cut short: invalid JSON
            body = json.dumps({"orders": FILLS, "pagination": {}}).encode()[:-9]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if url.path.startswith("/v1/moved"):
            self.send_response(301)
            self.send_header("Location", "https://elsewhere.example/v1/polymarket/orders")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"orders": FILLS, "pagination": {"has_more": False}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def api() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Api", (_Api,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    server.shutdown()
    server.server_close()


def _fetcher(base_url: str) -> PageFetcher:
    return PageFetcher(
        base_url=base_url,
        headers={"Authorization": "Bearer the-key", "User-Agent": "tap-dome/test"},
        limiter=RateLimiter.for_rates(1000, 10_000),
        timeout=10,
        max_retries=1,
        stats=FetchStats(),
        logger=logging.getLogger("test-fetch-transport"),
        sleep=lambda seconds: None,  # no backoff waits
    )


def test_a_page_is_read_only_once_a_reading_slot_is_free(
    api: tuple[str, list[dict[str, Any]]],
) -> None:
    # The request goes at once; its body waits in the socket until a slot is free, and the
    # page comes back holding the slot, for the caller to release once it is stored.
    url, seen = api
    slots = threading.Semaphore(1)
    slots.acquire()  # every slot taken
    result: list[Any] = []
    worker = threading.Thread(
        target=lambda: result.append(_fetcher(url).fetch_timed(ORDERS, {"user": "0xw"}, slots))
    )
    worker.start()
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(seen) == 1, "the request was not sent while every slot was taken"
    held = 0.5
    time.sleep(held)
    assert worker.is_alive(), "the page was read without a slot"
    assert not result
    slots.release()
    worker.join(10)
    ((response, seconds),) = result
    assert [row["log_index"] for row in page_of(response).rows.dicts()] == [0, 1, 2]
    assert not slots.acquire(blocking=False), "the page came back without its slot"
    # The latency the concurrency is sized by leaves out the wait for the slot.
    assert seconds < held
    slots.release()


def test_a_failed_page_gives_its_reading_slot_back(
    api: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = api
    slots = threading.Semaphore(1)
    with pytest.raises(DomeRetriesExhausted) as error:
        _fetcher(url + "/cut").fetch_timed(ORDERS, {"user": "0xw"}, slots)
    assert "invalid or truncated JSON body" in str(error.value)
    assert len(seen) == 2  # tried, and retried once
    assert slots.acquire(blocking=False), "a failed attempt kept its slot"


def test_a_page_comes_gzipped_and_the_query_is_written_as_requests_wrote_it(
    api: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = api
    params = {"user": "0xw", "limit": 100, "offset": None, "condition_id": ["0xa", "0xb"]}
    page = page_of(_fetcher(url).fetch(ORDERS, params))
    assert [row["log_index"] for row in page.rows.dicts()] == [0, 1, 2]
    assert page.has_more is False
    (request,) = seen
    assert request["path"] == "/v1/polymarket/orders"
    # A list is one pair per item; None is left out.
    assert request["query"] == [
        ("user", "0xw"),
        ("limit", "100"),
        ("condition_id", "0xa"),
        ("condition_id", "0xb"),
    ]
    assert "gzip" in request["headers"]["accept-encoding"]
    assert request["headers"]["authorization"] == "Bearer the-key"
    assert request["headers"]["user-agent"] == "tap-dome/test"


def test_a_redirect_is_not_followed_and_the_error_names_the_setting(
    api: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = api
    with pytest.raises(DomeRequestError) as error:
        _fetcher(url + "/moved").fetch(ORDERS, {"user": "0xw"})
    message = str(error.value)
    assert "`api_url`" in message
    assert "HTTP 301" in message
    assert "https://elsewhere.example/v1/polymarket/orders" in message
    assert "the-key" not in message
    assert len(seen) == 1  # not retried, not followed


def test_the_pool_takes_proxy_and_ca_bundle_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("HTTPS_PROXY", "user:secret@proxy.internal:3128")
    pool = connection_pool("https://api.example/v1", {"Authorization": "Bearer k"})
    assert isinstance(pool, urllib3.ProxyManager)
    assert pool.proxy is not None
    assert pool.proxy.host == "proxy.internal"
    assert pool.proxy.port == 3128
    assert pool.proxy_headers["proxy-authorization"].startswith("Basic ")
    assert pool.connection_pool_kw["ca_certs"] == str(bundle)
    assert pool.connection_pool_kw["cert_reqs"] == "CERT_REQUIRED"

    monkeypatch.setenv("NO_PROXY", "api.example")
    pool = connection_pool("https://api.example/v1", {})
    assert not isinstance(pool, urllib3.ProxyManager)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path))  # a directory of certificates
    assert connection_pool("https://api.example/v1", {}).connection_pool_kw["ca_cert_dir"] == str(
        tmp_path
    )
