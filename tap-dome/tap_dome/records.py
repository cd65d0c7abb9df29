"""Turning one API fill into one Singer record: identity, types, UTC time.

This runs once per fill, so it is written for speed: no schema walk, only the few
conversions the API can plausibly get wrong (numbers as strings, big ints as ints).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from tap_dome.errors import DomeDataError


def order_id(fill: dict[str, Any]) -> str:
    """The identity of one fill event, used as key everywhere (tap, warehouse, dbt).

    One row is one on-chain `OrderFilled` log, so `(tx_hash, log_index)` identifies it.
    Older API versions omit `log_index`; then a digest of the fields that tell fills of one
    transaction apart stands in (documented in docs/contracts.md).
    """
    tx_hash = fill.get("tx_hash")
    if not tx_hash:
        raise DomeDataError(f"fill without tx_hash cannot be identified: {_describe(fill)}")
    log_index = fill.get("log_index")
    if log_index is not None:
        return f"{str(tx_hash).lower()}:{int(log_index)}"
    price = fill.get("price")
    parts = [
        _text(fill.get("order_hash")),
        _text(fill.get("token_id")),
        _text(fill.get("side")),
        _text(fill.get("shares")),
        repr(float(price)) if price is not None else "",
    ]
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return f"{str(tx_hash).lower()}:h{digest}"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _describe(fill: dict[str, Any]) -> str:
    keys = ("order_hash", "timestamp", "user", "token_id")
    return ", ".join(f"{k}={fill.get(k)!r}" for k in keys)


class RecordBuilder:
    """Completes API fills into records in place; caches the last formatted second.

    Fields the schema does not name are moved into `extra_fields`, so a field Dome adds
    later is kept (and loaded) instead of being dropped or breaking the catalog.
    """

    def __init__(self, known_fields: frozenset[str] = frozenset()) -> None:
        self._known = known_fields
        self._last_ts: int | None = None
        self._last_iso = ""

    def iso(self, ts: int) -> str:
        """`ts` as an RFC 3339 UTC string; fills cluster in seconds, so cache the last one."""
        if ts != self._last_ts:
            self._last_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
            self._last_ts = ts
        return self._last_iso

    def build(self, fill: dict[str, Any], wallet: str) -> dict[str, Any]:
        """Add `order_id`, `wallet`, `filled_at`; make the types match the schema."""
        ts = fill.get("timestamp")
        if type(ts) is not int:
            if ts is None:
                raise DomeDataError(f"fill without timestamp: {_describe(fill)}")
            ts = int(float(ts))
            fill["timestamp"] = ts
        token_id = fill.get("token_id")
        if token_id is not None and type(token_id) is not str:
            fill["token_id"] = str(token_id)
        shares = fill.get("shares")
        if shares is not None and type(shares) is not int:
            fill["shares"] = int(float(shares))
        for name in ("price", "shares_normalized"):
            value = fill.get(name)
            if type(value) is str:
                fill[name] = float(value)
        for name in ("log_index", "block_number"):
            value = fill.get(name)
            if value is not None and type(value) is not int:
                fill[name] = int(value)
        fill["order_id"] = order_id(fill)
        fill["wallet"] = wallet
        fill["filled_at"] = self.iso(ts)
        if self._known and not fill.keys() <= self._known:
            extra = {k: fill.pop(k) for k in list(fill) if k not in self._known}
            fill["extra_fields"] = extra
        return fill
