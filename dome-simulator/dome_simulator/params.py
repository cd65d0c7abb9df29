"""Query-parameter rules shared by every endpoint: the API's 400s, worded as the API words them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .responses import Response, error

__all__ = ["BadRequest", "first", "limit", "many", "offset", "time_range", "timestamp"]

Params = Mapping[str, Sequence[str]]


class BadRequest(Exception):
    """A parameter broke one of the documented rules."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def first(params: Params, name: str) -> str | None:
    """The first non-empty value of ``name``, stripped (None when absent or empty)."""
    values = params.get(name)
    if not values or values[0] == "":
        return None
    return values[0].strip()


def many(params: Params, name: str, cap: int | None = None) -> tuple[str, ...]:
    """Every non-empty value of a repeated key (``?condition_id=a&condition_id=b``)."""
    values = tuple(v.strip() for v in params.get(name, ()) if v.strip())
    if cap is not None and len(values) > cap:
        raise BadRequest(
            error(400, f"Invalid {name} parameter", f"at most {cap} {name} values are allowed")
        )
    return values


def timestamp(params: Params, name: str) -> int | None:
    """A Unix-seconds parameter, or None."""
    text = first(params, name)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()):
        raise BadRequest(error(400, f"Invalid {name}", f"{name} must be a valid Unix timestamp"))
    return int(text)


def time_range(params: Params) -> tuple[int | None, int | None]:
    """``start_time`` and ``end_time`` (inclusive); the API wants start strictly below end."""
    start = timestamp(params, "start_time")
    end = timestamp(params, "end_time")
    if start is not None and end is not None and start >= end:
        raise BadRequest(error(400, "Invalid time range", "start_time must be less than end_time"))
    return start, end


def limit(params: Params, default: int, maximum: int) -> int:
    """``limit`` within ``1..maximum``."""
    text = first(params, "limit")
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise BadRequest(
            error(
                400,
                "Invalid limit parameter",
                f"limit must be a number between 1 and {maximum}",
            )
        )
    return value


def offset(params: Params) -> int:
    """``offset`` (deprecated by the API, still accepted) >= 0."""
    text = first(params, "offset")
    if text is None:
        return 0
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise BadRequest(
            error(400, "Invalid offset parameter", "offset must be a non-negative number")
        )
    return value
