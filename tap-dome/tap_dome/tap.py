"""tap-dome: Polymarket order fills from the Dome API, as a Singer tap."""

from __future__ import annotations

from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from typing_extensions import override

from tap_dome.client import DEFAULT_API_URL
from tap_dome.settings import DEFAULT_LOOKBACK_SECONDS, DEFAULT_START_DATE, resolve
from tap_dome.streams import OrdersStream


class TapDome(Tap):
    """Every fill of a list of wallets, resumable per wallet, concurrent within the tier."""

    name = "tap-dome"
    # msgspec serializes RECORD lines several times faster than the standard writer.
    message_writer_class = MsgSpecWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_key",
            th.StringType,
            required=True,
            secret=True,
            title="API key",
            description="Dome API key (sent as a Bearer token). Never logged.",
        ),
        th.Property(
            "api_url",
            th.StringType,
            default=DEFAULT_API_URL,
            title="API URL",
            description="Base URL of the Dome API, ending in /v1 (the simulator's for tests).",
        ),
        th.Property(
            "wallets",
            th.ArrayType(th.StringType),
            title="Wallets",
            description="Wallet addresses (0x + 40 hex). Lowercased and de-duplicated.",
        ),
        th.Property(
            "wallets_file",
            th.StringType,
            title="Wallets file",
            description="Path of a file of wallet addresses, one per line; `#` comments.",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            default=DEFAULT_START_DATE,
            title="Start date",
            description="Earliest fill to read (ISO 8601).",
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            title="End date",
            description="Latest fill to read (ISO 8601); default: now, at the start of the run.",
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=1000),
            default=1000,
            title="Page size",
            description="Fills per request (the API's `limit`, 1..1000).",
        ),
        th.Property(
            "api_tier",
            th.StringType(allowed_values=["free", "dev", "pro"]),
            title="API tier",
            description="Shorthand for the two request budgets: free 10/s and 100/10s, "
            "dev 100/s and 500/10s, pro 300/s and 3000/10s.",
        ),
        th.Property(
            "requests_per_second",
            th.NumberType,
            title="Requests per second",
            description="Per-second request budget (default: from api_tier, else Free: 10).",
        ),
        th.Property(
            "requests_per_10_seconds",
            th.IntegerType,
            title="Requests per 10 seconds",
            description="10-second request budget (default: from api_tier, else Free: 100).",
        ),
        th.Property(
            "max_concurrency",
            th.IntegerType(minimum=1),
            default=8,
            title="Max concurrency",
            description="Requests in flight at once, across wallets and time windows.",
        ),
        th.Property(
            "lookback",
            th.IntegerType(minimum=0),
            default=DEFAULT_LOOKBACK_SECONDS,
            title="Lookback (seconds)",
            description="How far before each wallet's bookmark an incremental run re-reads, "
            "to catch fills the API indexes late.",
        ),
        th.Property(
            "request_timeout",
            th.NumberType,
            default=30,
            title="Request timeout (seconds)",
            description="Timeout of one HTTP request.",
        ),
        th.Property(
            "max_window_fills",
            th.IntegerType(minimum=1),
            default=10000,
            title="Max fills per window",
            description="A wallet's history is read in time windows of at most about this "
            "many fills; the bookmark moves per window, so this bounds the re-read after a "
            "crash.",
        ),
        th.Property(
            "max_retries",
            th.IntegerType(minimum=0),
            default=12,
            title="Max retries",
            description="Consecutive retries of one request (429, 5xx, timeouts, bad bodies).",
        ),
        th.Property(
            "progress_interval",
            th.NumberType,
            default=15,
            title="Progress interval (seconds)",
            description="How often a progress line is logged.",
        ),
    ).to_dict()

    @override
    def discover_streams(self) -> list[Stream]:
        return [OrdersStream(self)]

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """The schema checks, then ours (wallets, dates, tier): all before any request."""
        errors = super()._validate_config(raise_errors=raise_errors)
        if not errors:
            try:
                resolve(self.config)
            except ConfigValidationError as exc:
                if raise_errors:
                    raise
                errors.extend(exc.errors)
        return errors


if __name__ == "__main__":
    TapDome.cli()
