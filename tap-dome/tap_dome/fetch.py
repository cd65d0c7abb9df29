"""One page request, made robust: shared rate limit, retries with backoff, clear failures.

Retried: 429, 5xx, timeouts, dropped connections, truncated or invalid JSON bodies. A 429's
Retry-After pauses every worker. 401/403 and other 4xx stop at once: retrying cannot fix a
wrong key or a wrong parameter. The API key lives only in the session headers; nothing here
puts headers into a message.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import requests
import urllib3

from tap_dome.errors import DomeAuthError, DomeRequestError, DomeRetriesExhausted

if TYPE_CHECKING:
    from tap_dome.client import Endpoint
from tap_dome.page import Page, attach_page
from tap_dome.ratelimit import RateLimiter

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 60.0
# What a page of a wallet the API knows nothing of is read as (`_no_wallet`).
EMPTY_PAGE = b'{"pagination":{"has_more":false}}'
RETRY_AFTER_CAP_SECONDS = 300.0


class ReadingSlot(Protocol):
    """A slot that a page's body is read under (a semaphore, or ReadingSlots' claim)."""

    def acquire(self) -> Any:
        """Wait for the slot."""

    def release(self) -> None:
        """Free it."""


@dataclass
class FetchStats:
    """Counters shared by all workers, read by the progress log (approximate is fine)."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, requests: int = 0, retries: int = 0, rate_limited: int = 0) -> None:
        with self.lock:
            self.requests += requests
            self.retries += retries
            self.rate_limited += rate_limited


class DomeNotFound(Exception):
    """The API has no such object (404 "No wallet mapping"): an answer, not a failure."""


class _Retryable(Exception):
    """A failure worth another try; `wait` is the server's Retry-After, if any."""

    def __init__(self, reason: str, wait: float | None = None, *, limited: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait
        self.limited = limited  # a 429


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: an integer or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return min(max(float(value), 0.0), RETRY_AFTER_CAP_SECONDS)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), RETRY_AFTER_CAP_SECONDS)


def describe_params(params: Mapping[str, Any]) -> str:
    """Request parameters for an error message (the key is a header, never a parameter)."""
    shown = {k: v for k, v in params.items() if k != "pagination_key"}
    if "pagination_key" in params:
        shown["pagination_key"] = "<cursor>"
    return " ".join(f"{k}={v}" for k, v in shown.items())


def _api_message(response: requests.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:200].strip() or response.reason
    if isinstance(body, dict):
        parts = [str(body.get(k)) for k in ("error", "message", "docs") if body.get(k)]
        if parts:
            return ": ".join(parts)
    return str(body)[:200]


class PageFetcher:
    """Thread-safe: each worker thread gets its own connection pool (urllib3, not requests).

    Requests go straight to urllib3: requests' session layer (preparing the request, cookies,
    redirects, hooks) cost ~0.6 ms of CPU a request on top of urllib3's ~0.5 ms, which at the
    Pro tier's 300 requests/s was a fifth of the tap's CPU. What the session gave is kept:
    the environment's proxy (HTTP(S)_PROXY, NO_PROXY) and CA bundle (REQUESTS_CA_BUNDLE,
    CURL_CA_BUNDLE, else certifi's, as requests uses), gzip, certificate checks. A redirect
    is not followed (Dome does not redirect): it is an error that names the new address.
    """

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str],
        limiter: RateLimiter,
        timeout: float,
        max_retries: int,
        stats: FetchStats,
        logger: logging.Logger,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {**urllib3.util.make_headers(accept_encoding=True), **headers}
        self._limiter = limiter
        self._timeout = timeout
        self._max_retries = max_retries
        self._stats = stats
        self._by_path: dict[str, FetchStats] = {}
        self._by_path_lock = threading.Lock()
        self._logger = logger
        self._sleep = sleep
        self._local = threading.local()
        self._rng = random.Random()

    def _pool(self) -> urllib3.PoolManager:
        pool: urllib3.PoolManager | None = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = connection_pool(self._base_url, self._headers)
        return pool

    def stats_for(self, path: str) -> FetchStats:
        """The counters of one endpoint's requests (one stream's share of the run's), from
        the first time they are asked for or its first request, whichever is sooner."""
        stats = self._by_path.get(path)
        if stats is None:
            with self._by_path_lock:
                stats = self._by_path.setdefault(path, FetchStats())
        return stats

    @property
    def limiter(self) -> RateLimiter:
        """The run's shared limiter (the scheduler sizes its concurrency from its rate)."""
        return self._limiter

    def fetch(self, endpoint: Endpoint, params: Mapping[str, Any]) -> requests.Response:
        """GET one page of `endpoint` (parsed: see `page_of`), retrying transient failures.

        Raises a DomeError subclass for anything retrying cannot fix.
        """
        return self.fetch_timed(endpoint, params)[0]

    def fetch_timed(
        self,
        endpoint: Endpoint,
        params: Mapping[str, Any],
        reading: ReadingSlot | None = None,
    ) -> tuple[requests.Response, float]:
        """As `fetch`, plus the seconds the successful attempt took on the network.

        The time waited at the limiter, in backoff or for a `reading` slot is left out: it
        is the latency the scheduler sizes its concurrency by (Little's law), not a queue.

        `reading` bounds the pages read at once: a page's body is read from its socket
        (and parsed) only once a slot is free, and a page that comes back holds its slot
        for the caller to release once the page is stored; a failed attempt releases it.
        Until then the body waits in the socket, outside the process: many requests may be
        in flight while few pages are in memory.
        """
        return self._send(endpoint.path, params, lambda body: endpoint.parse(body, params), reading)

    def lookup(self, path: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """GET one object (e.g. a wallet mapping); None when the API answers 404 for it."""
        try:
            response, _ = self._send(path, params, None)
        except DomeNotFound:
            return None
        body = orjson.loads(response.content)
        if not isinstance(body, dict):
            raise DomeRequestError(f"Dome API answered GET {path} with {type(body).__name__}")
        return body

    def _send(
        self,
        path: str,
        params: Mapping[str, Any],
        parse: Callable[[bytes], Page] | None,
        reading: ReadingSlot | None = None,
    ) -> tuple[requests.Response, float]:
        attempt = 0
        own = self.stats_for(path)
        while True:
            self._limiter.acquire()
            self._stats.add(requests=1)
            own.add(requests=1)
            started = time.monotonic()
            try:
                response, waited = self._attempt(path, params, parse, reading)
                return response, time.monotonic() - started - waited
            except _Retryable as failure:
                attempt += 1
                if attempt > self._max_retries:
                    raise DomeRetriesExhausted(
                        f"Dome API request failed {attempt} time{'s' if attempt > 1 else ''} in "
                        f"a row (last: {failure.reason}); giving up after `max_retries`="
                        f"{self._max_retries}. Request: GET {_shown(self._base_url)}{path} "
                        f"{describe_params(params)}",
                    ) from None
                delay = self._backoff(attempt, failure.wait)
                if failure.wait is not None:
                    self._limiter.pause(delay)
                if failure.limited:
                    self._widen_slack()
                self._stats.add(retries=1)
                own.add(retries=1)
                self._logger.warning(
                    "Retrying in %.1fs (attempt %d of %d): %s; request: %s",
                    delay,
                    attempt,
                    self._max_retries,
                    failure.reason,
                    describe_params(params),
                )
                self._sleep(delay)

    def _widen_slack(self) -> None:
        """A 429 although the limiter kept the budgets: leave more margin from now on."""
        slack = self._limiter.widen()
        if slack is not None:
            self._logger.warning(
                "Dome answered 429 although the tap kept the tier's budgets: the server "
                "counts requests later than they leave, or another client uses the same key "
                "(or `api_tier` / `requests_per_second` is above the key's tier); the "
                "limiter's margin on its shortest window is %.2fs from now on.",
                slack,
            )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after + self._rng.uniform(0, 0.25)
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    def _attempt(
        self,
        path: str,
        params: Mapping[str, Any],
        parse: Callable[[bytes], Page] | None,
        reading: ReadingSlot | None,
    ) -> tuple[requests.Response, float]:
        """One try: the response (holding a `reading` slot when one was given and it is a
        page) and the seconds waited for that slot."""
        url = self._base_url + path
        held = False
        waited = 0.0
        try:
            try:
                # The status and headers: the body is read by `_response`, after the slot.
                reply = self._pool().request(
                    "GET",
                    url + _query(params),
                    timeout=self._timeout,
                    redirect=False,
                    preload_content=False,
                )
                if reading is not None and parse is not None and reply.status == 200:
                    queued = time.monotonic()
                    reading.acquire()
                    held = True
                    waited = time.monotonic() - queued
                response = _response(reply, url)
            except urllib3.exceptions.LocationValueError as exc:
                raise DomeRequestError(f"Setting `api_url` is not a valid URL: {exc}") from None
            except (
                urllib3.exceptions.TimeoutError,  # connect and read timeouts, refusals
                urllib3.exceptions.ProxyError,
                urllib3.exceptions.SSLError,
            ) as exc:
                raise _Retryable(f"{type(exc).__name__}: connection failed or timed out") from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                # A body cut short (ProtocolError): its connection is closed, never reused.
                raise _Retryable(f"{type(exc).__name__} while reading the response") from None
            return self._answer(response, path, params, parse), waited
        except BaseException:
            if held:
                assert reading is not None
                reading.release()
            raise

    def _answer(
        self,
        response: requests.Response,
        path: str,
        params: Mapping[str, Any],
        parse: Callable[[bytes], Page] | None,
    ) -> requests.Response:
        """One try's whole response, parsed; or the failure its status means."""
        status = response.status_code
        if status == 200:
            try:
                if parse is None:
                    orjson.loads(response.content)  # a cut body is retried like any other
                    return response
                return attach_page(response, parse(response.content))
            except ValueError as exc:
                raise _Retryable(f"invalid or truncated JSON body ({exc})") from None
        if status == 429:
            self._stats.add(rate_limited=1)
            self.stats_for(path).add(rate_limited=1)
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise _Retryable("HTTP 429 Too Many Requests", wait, limited=True)
        if status >= 500 or status in (408, 425):
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise _Retryable(f"HTTP {status} {_api_message(response)[:120]}", wait)
        message = _api_message(response)
        request = f"GET {path} {describe_params(params)}"
        if status in (401, 403) and "docs" not in message and "offset" not in message.lower():
            raise DomeAuthError(
                f"Dome API refused the key (HTTP {status}: {message}). Check the `api_key` "
                f"setting (TAP_DOME_API_KEY / DOME_API_KEY) and its tier. Request: {request}",
            )
        if status == 404 and "no wallet mapping" in message.lower():
            if parse is None:
                raise DomeNotFound(message)
            return self._no_wallet(response, path, params, parse, message)
        if status == 404:
            raise DomeRequestError(
                f"Dome API answered HTTP 404 ({message}). Check the `api_url` setting "
                f"(it should end in /v1). Request: {request}",
            )
        if 300 <= status < 400:
            location = response.headers.get("Location", "?")
            raise DomeRequestError(
                f"Dome API answered HTTP {status}, a redirect to {location}; the tap does not "
                f"follow redirects: check the `api_url` setting. Request: {request}",
            )
        raise DomeRequestError(f"Dome API rejected a request (HTTP {status}: {message}). {request}")

    def _no_wallet(
        self,
        response: requests.Response,
        path: str,
        params: Mapping[str, Any],
        parse: Callable[[bytes], Page],
        message: str,
    ) -> requests.Response:
        """A wallet's page answered "No wallet mapping" (404): the API has nothing of that
        wallet, which is a page with no rows, not a reason to stop every other wallet."""
        self._logger.warning(
            "Dome API knows no wallet %s (HTTP 404: %s) on GET %s: read as a wallet with "
            "no rows. Check the wallet list: proxy wallet addresses are expected (owner "
            "EOAs need `wallets_are_eoas`).",
            params.get("user"),
            message[:200],
            path,
        )
        return attach_page(response, parse(EMPTY_PAGE))


def _shown(url: str) -> str:
    """`url` without any user or password in it (the `api_url` setting, for errors)."""
    try:
        parts = urllib3.util.parse_url(url)
    except urllib3.exceptions.LocationParseError:
        return "<api_url>"
    return parts._replace(auth=None).url


def _query(params: Mapping[str, Any]) -> str:
    """`?a=1&b=2` as requests writes it: a list is one pair per item, None is left out."""
    pairs = [
        (key, item)
        for key, value in params.items()
        for item in (value if isinstance(value, list | tuple) else (value,))
        if item is not None
    ]
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


def connection_pool(base_url: str, headers: Mapping[str, str]) -> urllib3.PoolManager:
    """A pool for `base_url` with the environment's proxy and CA bundle, read once.

    requests' own rules, applied once per thread instead of on every request: the proxy for
    the URL's scheme unless NO_PROXY excludes its host (user:password in the proxy URL is
    sent as Proxy-Authorization); REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE (a file or a
    directory), else certifi's bundle. ~/.netrc is never read, so it cannot replace the key.
    """
    bundle = (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or requests.utils.DEFAULT_CA_BUNDLE_PATH
    )
    tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED"}
    tls["ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"] = bundle
    proxy = requests.utils.select_proxy(base_url, requests.utils.get_environ_proxies(base_url))
    if not proxy:
        return urllib3.PoolManager(headers=dict(headers), retries=False, **tls)
    if "://" not in proxy:  # "host:port", as requests accepts it
        proxy = "http://" + proxy
    user, password = requests.utils.get_auth_from_url(proxy)
    proxy_headers = urllib3.make_headers(proxy_basic_auth=f"{user}:{password}") if user else None
    return urllib3.ProxyManager(
        proxy, headers=dict(headers), proxy_headers=proxy_headers, retries=False, **tls
    )


def _response(reply: urllib3.BaseHTTPResponse, url: str) -> requests.Response:
    """urllib3's reply, its body read now, as the `requests.Response` the SDK's paginator
    is typed for (a body read whole returns its connection to the pool)."""
    response = requests.Response()
    response.status_code = reply.status
    response.reason = reply.reason or ""
    response.headers = requests.structures.CaseInsensitiveDict(reply.headers)
    response.url = url
    response._content = reply.data
    return response
