"""The identity of one fill (``order_id``) and of one activity row (``activity_id``), exactly as
docs/contracts.md defines them.

The simulator computes it independently of the tap so that tests can compare the
tap's implementation against this one instead of against itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

__all__ = ["activity_id", "order_id"]


def _text(value: Any) -> str:
    """Render one fallback-hash component; a missing value hashes as the empty string."""
    return "" if value is None else str(value)


def order_id(fill: Mapping[str, Any]) -> str:
    """Return ``lower(tx_hash):log_index``, or the hashed fallback when log_index is null.

    The fallback exists for older API versions that omit ``log_index``:
    ``lower(tx_hash) + ":h" + sha256("order_hash|token_id|side|shares|repr(float(price))")[:16]``.
    """
    tx_hash = _text(fill.get("tx_hash")).lower()
    log_index = fill.get("log_index")
    if log_index is not None:
        return f"{tx_hash}:{int(log_index)}"
    price = fill.get("price")
    parts = [
        _text(fill.get("order_hash")),
        _text(fill.get("token_id")),
        _text(fill.get("side")),
        _text(fill.get("shares")),
        repr(float(price)) if price is not None else "",
    ]
    digest = hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()
    return f"{tx_hash}:h{digest[:16]}"


def activity_id(row: Mapping[str, Any]) -> str:
    """Return ``lower(tx_hash):log_index``, or the hashed fallback when log_index is null.

    Fallback: ``lower(tx_hash) + ":h" + sha256("side|condition_id|token_id|shares|lower(user)")
    [:16]``, with ``shares`` as an integer.
    """
    tx_hash = _text(row.get("tx_hash")).lower()
    log_index = row.get("log_index")
    if log_index is not None:
        return f"{tx_hash}:{int(log_index)}"
    shares = row.get("shares")
    parts = [
        _text(row.get("side")),
        _text(row.get("condition_id")),
        _text(row.get("token_id")),
        str(int(float(shares))) if shares is not None else "",
        _text(row.get("user")).lower(),
    ]
    digest = hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()
    return f"{tx_hash}:h{digest[:16]}"
