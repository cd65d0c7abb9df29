"""A transport-neutral response, and the API's error bodies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Response", "error", "json_response"]

JSON = "application/json"


@dataclass(slots=True)
class Response:
    """What to send back: ``delay`` seconds later, or nothing at all when ``drop``.

    ``limited`` marks a 429 from the rate-limit budget (not an injected one), for the stats.
    """

    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    rows: int = 0
    delay: float = 0.0
    drop: bool = False
    limited: bool = False


def json_response(status: int, payload: Any, **kw: Any) -> Response:
    """Serialize ``payload`` with orjson (non-str dict keys allowed, e.g. status codes)."""
    return Response(status, orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS), **kw)


def error(status: int, label: str, message: str, **extra: Any) -> Response:
    """The API's error shape: ``{"error": label, "message": message, ...extra}``."""
    headers = extra.pop("headers", ())
    return json_response(status, {"error": label, "message": message, **extra}, headers=headers)
