"""Reading and checking the tap's settings before any request is made.

Everything here fails early with a message that names the setting and the bad values,
so a typo in a list of ten thousand wallets costs one error, not a partial run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from singer_sdk.exceptions import ConfigValidationError

WALLET_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")

# Dome's published tiers: (requests per second, requests per 10 seconds).
TIERS: dict[str, tuple[float, int]] = {
    "free": (10, 100),
    "dev": (100, 500),
    "pro": (300, 3000),
}
DEFAULT_START_DATE = "2022-01-01T00:00:00Z"
DEFAULT_LOOKBACK_SECONDS = 7200
MAX_INVALID_SHOWN = 50


def config_error(message: str) -> ConfigValidationError:
    """A ConfigValidationError whose message the SDK's CLI prints as it is."""
    return ConfigValidationError(message, errors=[message])


@dataclass(frozen=True)
class RunSettings:
    """The resolved numbers a run works with."""

    wallets: tuple[str, ...]
    start_time: int
    end_time: int
    end_is_fixed: bool
    page_size: int
    requests_per_second: float
    requests_per_10_seconds: int
    max_concurrency: int
    lookback: int
    request_timeout: float
    max_window_fills: int
    max_retries: int
    progress_interval: float


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
    invalid = [(where, value) for where, value in entries if not WALLET_RE.match(value.strip())]
    if invalid:
        shown = "; ".join(f"{where}: {value!r}" for where, value in invalid[:MAX_INVALID_SHOWN])
        more = len(invalid) - MAX_INVALID_SHOWN
        suffix = f"; and {more} more" if more > 0 else ""
        raise config_error(
            f"{len(invalid)} invalid wallet address(es) in `wallets`/`wallets_file` "
            f"(expected 0x followed by 40 hex digits): {shown}{suffix}",
        )
    return tuple(dict.fromkeys(value.strip().lower() for _, value in entries))


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


def _positive(config: Mapping[str, Any], name: str, default: float) -> float:
    value = config.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise config_error(f"Setting `{name}` must be a number, got {value!r}") from exc
    if number <= 0:
        raise config_error(f"Setting `{name}` must be greater than 0, got {value!r}")
    return number


def resolve(config: Mapping[str, Any], now: float | None = None) -> RunSettings:
    """All settings checked and resolved against the tier and the clock."""
    wallets = load_wallets(config)
    tier_name = config.get("api_tier")
    if tier_name is not None and str(tier_name).lower() not in TIERS:
        raise config_error(
            f"Setting `api_tier` must be one of {', '.join(TIERS)}, got {tier_name!r}",
        )
    tier = TIERS[str(tier_name).lower()] if tier_name else TIERS["free"]
    page_size = int(_positive(config, "page_size", 1000))
    if not 1 <= page_size <= 1000:
        raise config_error(f"Setting `page_size` must be 1..1000, got {page_size}")
    start = parse_time(config.get("start_date") or DEFAULT_START_DATE, "start_date")
    now_s = int(time.time() if now is None else now)
    end_setting = config.get("end_date")
    end = min(parse_time(end_setting, "end_date"), now_s) if end_setting else now_s
    if start >= end:
        raise config_error(
            f"Setting `start_date` ({start}) must be before `end_date`/now ({end})",
        )
    lookback = config.get("lookback")
    lookback_s = DEFAULT_LOOKBACK_SECONDS if lookback is None else int(lookback)
    if lookback_s < 0:
        raise config_error(f"Setting `lookback` must be >= 0 seconds, got {lookback}")
    return RunSettings(
        wallets=wallets,
        start_time=start,
        end_time=end,
        end_is_fixed=bool(end_setting),
        page_size=page_size,
        requests_per_second=_positive(config, "requests_per_second", tier[0]),
        requests_per_10_seconds=int(_positive(config, "requests_per_10_seconds", tier[1])),
        max_concurrency=int(_positive(config, "max_concurrency", 8)),
        lookback=lookback_s,
        request_timeout=_positive(config, "request_timeout", 30),
        max_window_fills=int(_positive(config, "max_window_fills", 10000)),
        max_retries=int(_positive(config, "max_retries", 12)),
        progress_interval=_positive(config, "progress_interval", 15),
    )
