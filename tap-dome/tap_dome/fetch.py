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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
RETRY_AFTER_CAP_SECONDS = 300.0


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

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


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
    """Thread-safe: each worker thread gets its own HTTP session (connection pool)."""

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
        self._headers = dict(headers)
        self._limiter = limiter
        self._timeout = timeout
        self._max_retries = max_retries
        self._stats = stats
        self._logger = logger
        self._sleep = sleep
        self._local = threading.local()
        self._rng = random.Random()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
            # The environment (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE) is read once here,
            # not on every request as requests does; ~/.netrc is never read, so it cannot
            # replace the bearer key.
            session.proxies.update(requests.utils.get_environ_proxies(self._base_url))
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                session.verify = bundle
            session.trust_env = False
            self._local.session = session
        return session

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
        self, endpoint: Endpoint, params: Mapping[str, Any]
    ) -> tuple[requests.Response, float]:
        """As `fetch`, plus the seconds the successful attempt took on the network.

        The time waited at the limiter or in backoff is left out: it is the latency the
        scheduler sizes its concurrency by (Little's law), not the rate limit's queue.
        """
        return self._send(endpoint.path, params, endpoint.parse)

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
    ) -> tuple[requests.Response, float]:
        attempt = 0
        while True:
            self._limiter.acquire()
            self._stats.add(requests=1)
            started = time.monotonic()
            try:
                return self._attempt(path, params, parse), time.monotonic() - started
            except _Retryable as failure:
                attempt += 1
                if attempt > self._max_retries:
                    raise DomeRetriesExhausted(
                        f"Dome API request failed {attempt} times in a row (last: "
                        f"{failure.reason}); giving up after `max_retries`={self._max_retries}. "
                        f"Request: GET {path} {describe_params(params)}",
                    ) from None
                delay = self._backoff(attempt, failure.wait)
                if failure.wait is not None:
                    self._limiter.pause(delay)
                self._stats.add(retries=1)
                self._logger.warning(
                    "Retrying in %.1fs (attempt %d of %d): %s; request: %s",
                    delay,
                    attempt,
                    self._max_retries,
                    failure.reason,
                    describe_params(params),
                )
                self._sleep(delay)

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
    ) -> requests.Response:
        url = self._base_url + path
        try:
            response = self._session().get(url, params=params, timeout=self._timeout, stream=True)
            _read_whole(response)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise _Retryable(f"{type(exc).__name__}: connection failed or timed out") from None
        except requests.exceptions.InvalidURL as exc:
            raise DomeRequestError(f"Setting `api_url` is not a valid URL: {exc}") from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Retryable(f"{type(exc).__name__} while reading the response") from None
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
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise _Retryable("HTTP 429 Too Many Requests", wait)
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
        if status == 404 and parse is None and "no wallet mapping" in message.lower():
            raise DomeNotFound(message)
        if status == 404:
            raise DomeRequestError(
                f"Dome API answered HTTP 404 ({message}). Check the `api_url` setting "
                f"(it should end in /v1). Request: {request}",
            )
        raise DomeRequestError(f"Dome API rejected a request (HTTP {status}: {message}). {request}")


def _read_whole(response: requests.Response) -> None:
    """Read the body in one call (requests reads it 10 KB at a time, ~1 ms per large page).

    A body cut short raises urllib3's error here, retried like any dropped connection, and
    its connection is closed; a whole body's connection goes back to the pool.
    """
    try:
        body = response.raw.read(decode_content=True)
    except BaseException:
        response.close()
        raise
    response._content = body  # what `response.content` returns from now on
    response._content_consumed = True  # type: ignore[attr-defined]  # requests has no stub for it
    response.close()  # consumed: releases the connection to the pool, keeps it open
