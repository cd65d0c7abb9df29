"""The `wallet_audits` stream: the API's own count of each wallet's fills, to check against.

Against the real API there is no ground truth to compare with, but Dome's `pagination.total`
counts the fills matching a query's filters. An audit record says: at `audited_at`, the API
counted `api_total` fills of `wallet` with `start_time <= timestamp <= end_time`. dbt's
`wallet_completeness` compares that with what `fct_orders` holds.

Counts come free where the orders stream's first request of a wallet covered its whole
range (`source = window_first_page`, a backfill). Otherwise one `limit=1` request per
wallet (`limit_1_probe`), bounded by `audit_wallets_per_run` (rotating through the list,
so every wallet is audited every few runs) unless `audit_all_wallets` is set. A probe's
range ends at the wallet's bookmark: the range the tap claims complete, so fills indexed
after the orders were read do not count as missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from singer_sdk import Stream, StreamSchema, Tap
from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_dome.client import ORDERS
from tap_dome.page import page_of
from tap_dome.services import Services
from tap_dome.streams import SCHEMAS_DIR

PROBE_THREADS = 8
ROTATION_KEY = "next_wallet_index"


def rotation(wallets: tuple[str, ...], start: int, count: int) -> tuple[list[str], int]:
    """`count` wallets from index `start` on, wrapping; and where the next run starts."""
    if not wallets or count <= 0:
        return [], start
    start %= len(wallets)
    count = min(count, len(wallets))
    chosen = [wallets[(start + i) % len(wallets)] for i in range(count)]
    return chosen, (start + count) % len(wallets)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def audit_record(
    wallet: str, start: int, end: int, total: int, at: float, source: str
) -> dict[str, Any]:
    """One audit, with the identity docs/contracts.md gives it."""
    return {
        "audit_id": f"{wallet}:{start}:{end}:{int(at)}",
        "wallet": wallet,
        "audited_at": _iso(at),
        "start_time": start,
        "end_time": end,
        "api_total": total,
        "source": source,
    }


class WalletAuditsStream(Stream):
    """One record per audited wallet per run (see the module docstring)."""

    name = "wallet_audits"
    primary_keys = ("audit_id",)
    schema = StreamSchema(SCHEMAS_DIR)

    def __init__(self, tap: Tap, *, services: Services) -> None:
        super().__init__(tap)
        self.services = services

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        seen = self.services.observations
        if not seen.orders_synced:
            self.logger.info("No audit: the orders stream did not run in this sync")
            return
        settings = self.services.settings
        wallets = self.services.wallets
        records: list[dict[str, Any]] = []
        free: set[str] = set()
        for wallet, (window, total, at) in seen.first_totals.items():
            if window.start <= settings.start_time:  # the count covers the whole range
                free.add(wallet)
                records.append(
                    audit_record(wallet, window.start, window.end, total, at, "window_first_page")
                )
        rest = tuple(w for w in wallets if w not in free)
        if settings.audit_all_wallets:
            chosen, next_index = list(rest), 0
        else:
            start = int(self.stream_state.get(ROTATION_KEY) or 0)
            chosen, next_index = rotation(rest, start, settings.audit_wallets_per_run)
        with ThreadPoolExecutor(PROBE_THREADS, thread_name_prefix="dome-audit") as pool:
            probed = list(pool.map(self._probe, chosen))
        records.extend(r for r in probed if r is not None)
        self.stream_state[ROTATION_KEY] = next_index
        self.logger.info(
            "Audited %d wallet(s): %d from the run's own requests, %d with a limit=1 request",
            len(records),
            len(free),
            len(chosen),
        )
        yield from records

    def _probe(self, wallet: str) -> dict[str, Any] | None:
        """One `limit=1` request: the API's count for the range the tap claims complete."""
        settings = self.services.settings
        seen = self.services.observations
        end = seen.bookmarks.get(wallet)
        if end is None:  # never read through anything: up to what the API had shown
            end = min(settings.end_time, seen.data_clock or settings.end_time)
        start = settings.start_time
        if end <= start:
            return None
        params = {"user": wallet, "start_time": start, "end_time": end, "limit": 1}
        at = time.time()
        total = page_of(self.services.client.page(ORDERS, params)).total
        if total is None:
            self.logger.warning("No audit of %s: the API's page carries no total", wallet)
            return None
        return audit_record(wallet, start, end, total, at, "limit_1_probe")
