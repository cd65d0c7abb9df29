"""The tap's settings: their schema and defaults (one place), and resolving them for a run.

Everything here fails early with a message that names the setting and the bad values,
so a typo in a list of ten thousand wallets costs one error, not a partial run. The
schema below is the only place a default is written: `resolve` reads defaults from it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

WALLET_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
HANDLE_RE = re.compile(r"^@[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
MAX_INVALID_SHOWN = 50
DEFAULT_API_URL = "https://api.domeapi.io/v1"

# Dome's published tiers: (requests per second, requests per 10 seconds).
TIERS: dict[str, tuple[float, int]] = {
    "free": (10, 100),
    "dev": (100, 500),
    "pro": (300, 3000),
}
DEFAULT_TIER = "free"
MAX_ENCODE_PROCESSES = 8


def _tiers_text() -> str:
    return ", ".join(f"{name} {int(s)}/s and {t}/10s" for name, (s, t) in TIERS.items())


CONFIG_SCHEMA: dict[str, Any] = th.PropertiesList(
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
        description="Proxy wallet addresses (0x + 40 hex), or Polymarket handles as "
        "`@handle`. Addresses are lowercased; all entries are de-duplicated.",
    ),
    th.Property(
        "wallets_file",
        th.StringType,
        title="Wallets file",
        description="Path of a file of wallets (addresses or `@handle`s), one per line; "
        "`#` comments.",
    ),
    th.Property(
        "wallets_are_eoas",
        th.BooleanType,
        default=False,
        title="Wallets are EOAs",
        description="Treat the configured addresses as owner EOAs and read the proxy wallet "
        "each maps to (resolved through /polymarket/wallet before the sync).",
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        default="2022-01-01T00:00:00Z",
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
        th.StringType(allowed_values=list(TIERS)),
        title="API tier",
        description=f"Shorthand for the two request budgets: {_tiers_text()}.",
    ),
    th.Property(
        "requests_per_second",
        th.NumberType,
        title="Requests per second",
        description="Per-second request budget (default: from api_tier, else "
        f"{DEFAULT_TIER.title()}: {int(TIERS[DEFAULT_TIER][0])}).",
    ),
    th.Property(
        "requests_per_10_seconds",
        th.IntegerType,
        title="Requests per 10 seconds",
        description="10-second request budget (default: from api_tier, else "
        f"{DEFAULT_TIER.title()}: {TIERS[DEFAULT_TIER][1]}).",
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType(minimum=1),
        default=128,
        title="Max concurrency",
        description="Cap on requests in flight at once, across wallets and time windows. "
        "Within it the tap keeps the tier's rate x the observed latency in flight (Little's "
        "law): about 6 on Free, 32 on Dev and 110 on Pro at 250-300 ms.",
    ),
    th.Property(
        "encode_processes",
        th.IntegerType(minimum=0, maximum=MAX_ENCODE_PROCESSES),
        default=4,
        title="Encode processes",
        description="Helper processes that turn pages into Singer messages beside the tap, "
        "so that at high rates that work runs on other cores (Linux; 0: the tap does it all "
        "itself). A page that finds every helper busy is written by the tap itself.",
    ),
    th.Property(
        "lookback",
        th.IntegerType(minimum=0),
        default=7200,
        title="Lookback (seconds)",
        description="How far before each wallet's bookmark an incremental run re-reads, "
        "to catch fills the API indexes out of order.",
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
        description="Consecutive retries of one request (429, 5xx, timeouts, bad bodies); "
        "0 fails at the first error.",
    ),
    th.Property(
        "audit_wallets_per_run",
        th.IntegerType(minimum=0),
        default=100,
        title="Wallets audited per run",
        description="Wallets whose fill count the `wallet_audits` stream checks against the "
        "API per run, rotating through the list (0: only those whose count came free with "
        "the run's own requests). Each costs at most one `limit=1` request.",
    ),
    th.Property(
        "audit_all_wallets",
        th.BooleanType,
        default=False,
        title="Audit all wallets",
        description="Audit every wallet in every run (one extra request per wallet at most).",
    ),
    th.Property(
        "progress_interval",
        th.NumberType,
        default=15,
        title="Progress interval (seconds)",
        description="How often a progress line is logged.",
    ),
).to_dict()

DEFAULTS: dict[str, Any] = {
    name: spec["default"] for name, spec in CONFIG_SCHEMA["properties"].items() if "default" in spec
}


def config_error(message: str) -> ConfigValidationError:
    """A ConfigValidationError whose message the SDK's CLI prints as it is."""
    return ConfigValidationError(message, errors=[message])


@dataclass(frozen=True)
class RunSettings:
    """The resolved values a run works with (built once per run, see `resolve`)."""

    api_url: str
    wallets: tuple[str, ...]  # addresses and @handles as configured (see services.py)
    wallets_are_eoas: bool
    start_time: int
    end_time: int
    end_is_fixed: bool
    page_size: int
    requests_per_second: float
    requests_per_10_seconds: int
    max_concurrency: int
    encode_processes: int
    lookback: int
    request_timeout: float
    max_window_fills: int
    max_retries: int
    progress_interval: float
    audit_wallets_per_run: int
    audit_all_wallets: bool

    @property
    def needs_lookup(self) -> bool:
        """Whether some entries must be resolved to proxy wallets through the API."""
        return self.wallets_are_eoas or any(w.startswith("@") for w in self.wallets)


def load_wallets(config: Mapping[str, Any]) -> tuple[str, ...]:
    """Wallets from `wallets` and `wallets_file`: validated, lowercased, de-duplicated.

    Order is kept (first occurrence wins) so runs are reproducible.
    """
    entries: list[tuple[str, str]] = []  # (where, raw value)
    raw_list = config.get("wallets") or []
    if isinstance(raw_list, str):
        raise config_error(
            "Setting `wallets` must be a list of addresses (as an environment variable: "
            'a JSON array like ["0xabc..."]), got a plain string.',
        )
    entries.extend((f"wallets[{i}]", str(w)) for i, w in enumerate(raw_list))
    wallets_file = config.get("wallets_file")
    if wallets_file:
        entries.extend(_read_wallets_file(Path(wallets_file)))
    invalid = [(where, value) for where, value in entries if not _is_wallet(value.strip())]
    if invalid:
        shown = "; ".join(f"{where}: {value!r}" for where, value in invalid[:MAX_INVALID_SHOWN])
        more = len(invalid) - MAX_INVALID_SHOWN
        suffix = f"; and {more} more" if more > 0 else ""
        raise config_error(
            f"{len(invalid)} invalid wallet(s) in `wallets`/`wallets_file` (expected 0x "
            f"followed by 40 hex digits, or a Polymarket @handle): {shown}{suffix}",
        )
    return tuple(dict.fromkeys(_normal(value.strip()) for _, value in entries))


def _is_wallet(value: str) -> bool:
    return bool(WALLET_RE.match(value) or HANDLE_RE.match(value))


def _normal(value: str) -> str:
    """Addresses lowercased (the API's `user=` wants them so); handles as written."""
    return value if value.startswith("@") else value.lower()


def _read_wallets_file(path: Path) -> Iterable[tuple[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise config_error(
            f"Setting `wallets_file`: cannot read {str(path)!r}: {exc.strerror or exc}",
        ) from exc
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.split("#", 1)[0].strip()
        if value:
            yield f"{path.name}:{number}", value


def parse_time(value: Any, setting: str) -> int:
    """An ISO 8601 date or date-time (or Unix seconds) as Unix seconds, UTC if no zone."""
    if isinstance(value, bool):
        raise config_error(f"Setting `{setting}`: not a date: {value!r}")
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise config_error(
            f"Setting `{setting}`: {text!r} is not an ISO 8601 date (e.g. 2024-01-31T00:00:00Z)",
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp())


def _number(
    config: Mapping[str, Any], name: str, *, default: float | None = None, zero_ok: bool = False
) -> float:
    """A numeric setting, else `default`, else its schema default; > 0 (>= 0 if `zero_ok`)."""
    value = config.get(name)
    if value is None:
        value = DEFAULTS[name] if default is None else default
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise config_error(f"Setting `{name}` must be a number, got {value!r}") from exc
    if number < 0 or (number == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "greater than 0"
        raise config_error(f"Setting `{name}` must be {bound}, got {value!r}")
    return number


def _count(config: Mapping[str, Any], name: str, *, maximum: int) -> int:
    """A whole number setting from 0 to `maximum`."""
    number = _number(config, name, zero_ok=True)
    if number != int(number) or number > maximum:
        raise config_error(
            f"Setting `{name}` must be a whole number from 0 to {maximum}, got {config.get(name)!r}"
        )
    return int(number)


def check_api_url(value: Any) -> str:
    """The API base URL without a trailing slash; an http(s) URL with a host, or an error."""
    text = str(value).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise config_error(
            f"Setting `api_url` must be an http(s) URL such as {DEFAULT_API_URL}, got {value!r}",
        )
    return text


def resolve(config: Mapping[str, Any], now: float | None = None) -> RunSettings:
    """All settings checked and resolved against the tier and the clock (`now`)."""
    wallets = load_wallets(config)
    if not wallets:
        where = (
            f" (`wallets_file` {config['wallets_file']!r} lists none)"
            if config.get("wallets_file")
            else ""
        )
        raise config_error(
            "No wallets to read: set `wallets` (TAP_DOME_WALLETS, a JSON array) or "
            f"`wallets_file` (TAP_DOME_WALLETS_FILE){where}.",
        )
    tier_name = config.get("api_tier")
    if tier_name is not None and str(tier_name).lower() not in TIERS:
        raise config_error(
            f"Setting `api_tier` must be one of {', '.join(TIERS)}, got {tier_name!r}",
        )
    per_second, per_10_seconds = TIERS[str(tier_name or DEFAULT_TIER).lower()]
    page_size = int(_number(config, "page_size"))
    if not 1 <= page_size <= 1000:
        raise config_error(f"Setting `page_size` must be 1..1000, got {page_size}")
    start = parse_time(config.get("start_date") or DEFAULTS["start_date"], "start_date")
    now_s = int(time.time() if now is None else now)
    end_setting = config.get("end_date")
    end = min(parse_time(end_setting, "end_date"), now_s) if end_setting else now_s
    if start >= end:
        raise config_error(
            f"Setting `start_date` ({_iso(start)}) must be before "
            f"{'`end_date`' if end_setting and end < now_s else 'now'} ({_iso(end)})",
        )
    return RunSettings(
        api_url=check_api_url(config.get("api_url") or DEFAULTS["api_url"]),
        wallets=wallets,
        wallets_are_eoas=_flag(config, "wallets_are_eoas"),
        start_time=start,
        end_time=end,
        end_is_fixed=bool(end_setting),
        page_size=page_size,
        requests_per_second=_number(config, "requests_per_second", default=per_second),
        requests_per_10_seconds=int(
            _number(config, "requests_per_10_seconds", default=per_10_seconds)
        ),
        max_concurrency=int(_number(config, "max_concurrency")),
        encode_processes=_count(config, "encode_processes", maximum=MAX_ENCODE_PROCESSES),
        lookback=int(_number(config, "lookback", zero_ok=True)),
        request_timeout=_number(config, "request_timeout"),
        max_window_fills=int(_number(config, "max_window_fills")),
        max_retries=int(_number(config, "max_retries", zero_ok=True)),
        progress_interval=_number(config, "progress_interval"),
        audit_wallets_per_run=int(_number(config, "audit_wallets_per_run", zero_ok=True)),
        audit_all_wallets=_flag(config, "audit_all_wallets"),
    )


def _flag(config: Mapping[str, Any], name: str) -> bool:
    """A boolean setting; strings as environment variables give them ("true", "0", ...)."""
    value = config.get(name)
    if value is None:
        return bool(DEFAULTS.get(name, False))
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise config_error(f"Setting `{name}` must be true or false, got {value!r}")


def _iso(seconds: int) -> str:
    """Unix seconds as the RFC 3339 UTC text the date settings take."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
