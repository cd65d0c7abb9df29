"""The Dome API as tap-dome calls it: its endpoints, their parameters, and one client.

Every request tap-dome makes goes through `DomeClient`: one per run, owned by the tap and
shared by its streams, so every request counts against one rate limiter, which starts
with the requests the last run sent in its final seconds (ledger.py). The HTTP work
(retries, backoff, Retry-After, clear errors) is in fetch.py. The API key only ever
travels as the `Authorization` header: never as a parameter, in a context, a log line, the
state or an error message.
"""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import requests

from tap_dome.codec import EncodedPage
from tap_dome.fetch import FetchStats, PageFetcher
from tap_dome.ledger import ledger_path, load_recent, save_recent
from tap_dome.page import Page, page_of_rows, parse_page
from tap_dome.pagination import PageToken
from tap_dome.ratelimit import RateLimiter
from tap_dome.rows import TypedDecoder
from tap_dome.settings import RunSettings
from tap_dome.windows import Window


@dataclass(frozen=True)
class Endpoint:
    """A Dome list endpoint: its path, the key of its rows, and the key of its count;
    `noun`: what its rows are called in the progress line.

    `typed_rows`: how a stream that writes rows in bulk decodes a page (records.TypedRows);
    `encode`: how it has a helper process write a wallet's page out (codec.py), else None.
    Both are set on the stream's own copy (`dataclasses.replace`).
    """

    path: str
    rows_field: str
    count_field: str
    noun: str = "rows"
    typed_rows: TypedDecoder | None = field(default=None, compare=False)
    encode: Callable[[str, bytes], EncodedPage | None] | None = field(default=None, compare=False)

    def parse(self, body: bytes, params: Mapping[str, Any] | None = None) -> Page:
        """One page of this endpoint; ValueError when the body is not a complete page.

        A wallet's page (`user` in `params`) goes to a helper first, when the stream has
        one; whatever the helper does not write (not typed, not a page) is parsed here.
        """
        wallet = None if params is None else params.get("user")
        if self.encode is not None and wallet is not None:
            encoded = self.encode(str(wallet), body)
            if encoded is not None:
                return page_of_rows(encoded.rows, encoded.pagination, self.count_field)
        return parse_page(body, self.rows_field, self.count_field, self.typed_rows)


ORDERS = Endpoint("/polymarket/orders", rows_field="orders", count_field="total", noun="fills")
# Activity counts its matches in `pagination.count`, not `total` (dome-api contract).
ACTIVITY = Endpoint(
    "/polymarket/activity", rows_field="activities", count_field="count", noun="events"
)
MARKETS = Endpoint("/polymarket/markets", rows_field="markets", count_field="total")
WALLET_PATH = "/polymarket/wallet"


def window_params(
    wallet: str, window: Window, limit: int, token: PageToken | None
) -> dict[str, Any]:
    """One page of a wallet's time window. Every page of a walk keeps these filters."""
    params: dict[str, Any] = {
        "user": wallet,
        "start_time": window.start,
        "end_time": window.end,
        "limit": limit,
    }
    if token is not None:
        params.update(token.as_params())
    return params


def request_headers(api_key: str) -> dict[str, str]:
    """Bearer auth, JSON, and a User-Agent that names the tap and its version."""
    try:
        version = metadata.version("tap-dome")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        version = "0"
    return {
        "Authorization": f"Bearer {api_key}",
        "Accept": "application/json",
        "User-Agent": f"tap-dome/{version}",
    }


class DomeClient:
    """The one place requests are made: shared limiter, retries, counters for progress."""

    def __init__(self, settings: RunSettings, api_key: str, logger: logging.Logger) -> None:
        self.settings = settings
        self.stats = FetchStats()
        self.limiter = RateLimiter.for_rates(
            settings.requests_per_second, settings.requests_per_10_seconds
        )
        self.fetcher = PageFetcher(
            base_url=settings.api_url,
            headers=request_headers(api_key),
            limiter=self.limiter,
            timeout=settings.request_timeout,
            max_retries=settings.max_retries,
            stats=self.stats,
            logger=logger,
        )
        self._logger = logger
        self._ledger = ledger_path(settings.api_url)
        self._share_sends()

    def _share_sends(self) -> None:
        """Start the limiter with the requests that the runs before this one sent in the
        last seconds, and hand this run's to the next at exit (ledger.py)."""
        wall, mono, horizon = time.time(), time.monotonic(), self.limiter.horizon
        sent = load_recent(self._ledger, wall, horizon, self._logger)
        self.limiter.seed(mono - (wall - at) for at in sent)
        if sent:
            self._logger.info(
                "Rate budgets: %d requests that an earlier run sent in the last %.0f s "
                "count against this run's (the server's windows still hold them)",
                len(sent),
                horizon,
            )
        atexit.register(self.save_sends)

    def save_sends(self) -> None:
        """Write the last seconds' send times for the next run (ledger.py); at exit."""
        wall, mono, horizon = time.time(), time.monotonic(), self.limiter.horizon
        sent = [wall - (mono - at) for at in self.limiter.sent_within(horizon)]
        if sent:
            save_recent(self._ledger, sent, wall, horizon, self._logger)

    def page(self, endpoint: Endpoint, params: dict[str, Any]) -> requests.Response:
        """One page of `endpoint` with these parameters (markets by id, audits, ...)."""
        return self.fetcher.fetch(endpoint, params)

    def wallet(self, **query: str) -> dict[str, Any] | None:
        """GET /polymarket/wallet (one of eoa=, proxy=, handle=); None when unknown."""
        return self.fetcher.lookup(WALLET_PATH, query)
