"""The ``pagination_key``: an opaque keyset cursor, shaped like the real one.

It is base64 (standard alphabet, so clients must URL-encode it) of JSON
``{"block_timestamp": ISO-8601 ms Z, "tx_hash", "log_index", "total", "filters", "order"}``.
``total`` is frozen at the first page, as the API does; ``filters`` is a short hash
of (user, start_time, end_time, limit, market filters) so a key reused with other
filters is rejected, and ``order`` keeps a walk in the direction it started.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from .fill import FillKey

__all__ = ["Cursor", "CursorError", "KeyCursor", "filters_digest"]


class CursorError(ValueError):
    """The pagination_key is malformed or belongs to other filters."""


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _from_iso(text: str) -> int:
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return int(parsed.timestamp())


def filters_digest(*parts: Any) -> str:
    """A short, stable hash of the request's filters."""
    return hashlib.sha256(orjson.dumps(list(parts))).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the previous page ended, and the snapshot taken on the first page."""

    key: FillKey
    total: int
    filters: str
    descending: bool = True
    # The ``empty_pages`` fault: this key first serves an empty page (then the same key
    # without this mark).
    empty_first: bool = False

    def encode(self) -> str:
        """The pagination_key string."""
        ts, tx_hash, log_index = self.key
        payload: dict[str, Any] = {
            "block_timestamp": _iso(ts),
            "tx_hash": tx_hash,
            "log_index": log_index,
            "total": self.total,
            "filters": self.filters,
            "order": "desc" if self.descending else "asc",
        }
        if self.empty_first:
            payload["empty_first"] = True
        return base64.b64encode(orjson.dumps(payload)).decode("ascii")

    @classmethod
    def decode(cls, text: str, filters: str) -> Cursor:
        """Parse a pagination_key and check that it was issued for ``filters``."""
        try:
            data = orjson.loads(base64.b64decode(text.encode("ascii"), validate=True))
            key = (_from_iso(data["block_timestamp"]), str(data["tx_hash"]), int(data["log_index"]))
            cursor = cls(
                key,
                int(data["total"]),
                str(data["filters"]),
                data["order"] != "asc",
                bool(data.get("empty_first", False)),
            )
        except (
            ValueError,
            KeyError,
            TypeError,
        ) as exc:  # binascii/orjson/ISO errors are ValueErrors
            raise CursorError("pagination_key is malformed") from exc
        if cursor.filters != filters:
            raise CursorError(
                "pagination_key was issued for different filters; "
                "resend it with the same user, start_time, end_time and limit"
            )
        return cursor


@dataclass(frozen=True, slots=True)
class KeyCursor:
    """A cursor over rows ordered by one string key (markets: condition_id ascending)."""

    after: str
    total: int
    filters: str

    def encode(self) -> str:
        """The pagination_key string."""
        payload = {"after": self.after, "total": self.total, "filters": self.filters}
        return base64.b64encode(orjson.dumps(payload)).decode("ascii")

    @classmethod
    def decode(cls, text: str, filters: str) -> KeyCursor:
        """Parse a pagination_key and check that it was issued for ``filters``."""
        try:
            data = orjson.loads(base64.b64decode(text.encode("ascii"), validate=True))
            cursor = cls(str(data["after"]), int(data["total"]), str(data["filters"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise CursorError("pagination_key is malformed") from exc
        if cursor.filters != filters:
            raise CursorError(
                "pagination_key was issued for different filters; resend it with the same "
                "filters and limit"
            )
        return cursor
