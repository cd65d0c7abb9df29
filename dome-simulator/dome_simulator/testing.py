"""Helpers for tests that use the simulator: a standard small dataset and an API client walk.

Importable by any test suite (the simulator's, the tap's, the end-to-end ones), so that no
test module imports another or a conftest. Needs ``requests`` (the ``dev`` extra).
"""

from __future__ import annotations

from typing import Any

import requests

from .dataset import Dataset
from .server import DomeSimulator

__all__ = [
    "SMALL_PAGE", "get_api", "get_orders", "session_for", "small_standard", "walk", "walk_api",
]  # fmt: skip

#: The page size ``small_standard`` is shaped around (page-1 / page / page+1 wallets).
SMALL_PAGE = 50


def small_standard(
    seed: int = 7, *, page: int = SMALL_PAGE, large: int = 2000, now: float | None = None
) -> Dataset:
    """``Dataset.standard`` sized for quick tests: every edge case, a few thousand fills."""
    return Dataset.standard(seed=seed, page=page, large=large, now=now)


def session_for(sim: DomeSimulator) -> requests.Session:
    """A keep-alive session that sends the simulator's API key."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {sim.api_key}"
    return session


def get_orders(
    client: requests.Session, sim: DomeSimulator, timeout: float = 10, **params: Any
) -> requests.Response:
    """One ``GET /v1/polymarket/orders`` with ``params``, whatever its status."""
    return client.get(f"{sim.base_url}/polymarket/orders", params=params, timeout=timeout)


def walk(
    client: requests.Session,
    sim: DomeSimulator,
    wallet: str,
    *,
    mode: str = "cursor",
    limit: int = SMALL_PAGE,
    **window: Any,
) -> list[dict[str, Any]]:
    """Every row of one wallet's walk, by ``pagination_key`` (cursor) or ``offset``.

    Checks the paging contract on the way (status 200, at most ``limit`` rows a page, a key
    on every page but the last) and raises AssertionError naming what broke.
    """
    if mode not in ("cursor", "offset"):
        raise ValueError("mode must be 'cursor' or 'offset'")
    rows: list[dict[str, Any]] = []
    key: str | None = None
    for _ in range(100_000):
        params: dict[str, Any] = {"user": wallet, "limit": limit, **window}
        if mode == "cursor" and key:
            params["pagination_key"] = key
        elif mode == "offset":
            params["offset"] = len(rows)
        response = get_orders(client, sim, **params)
        if response.status_code != 200:
            raise AssertionError(f"HTTP {response.status_code}: {response.text[:500]}")
        page = response.json()
        if len(page["orders"]) > limit:
            raise AssertionError(f"{len(page['orders'])} rows on a page of limit {limit}")
        rows += page["orders"]
        pagination = page["pagination"]
        if not pagination["has_more"]:
            if "pagination_key" in pagination:
                raise AssertionError("the last page carries a pagination_key")
            return rows
        key = pagination.get("pagination_key")
        if mode == "cursor" and not key:
            raise AssertionError("has_more without a pagination_key")
    raise AssertionError("the walk did not end")


def get_api(
    client: requests.Session, sim: DomeSimulator, path: str, timeout: float = 10, **params: Any
) -> requests.Response:
    """One ``GET /v1/polymarket/<path>`` (``orders``, ``activity``, ``markets``, ``wallet``)."""
    return client.get(f"{sim.base_url}/polymarket/{path}", params=params, timeout=timeout)


def walk_api(
    client: requests.Session,
    sim: DomeSimulator,
    path: str,
    rows_key: str,
    **params: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every row of a cursor walk over ``activity`` or ``markets``, and each page's pagination.

    List parameters go as repeated keys. Checks status 200 and a key on every page but the
    last, raising AssertionError naming what broke.
    """
    rows: list[dict[str, Any]] = []
    paginations: list[dict[str, Any]] = []
    key: str | None = None
    for _ in range(100_000):
        query = dict(params, pagination_key=key) if key else params
        response = get_api(client, sim, path, **query)
        if response.status_code != 200:
            raise AssertionError(f"HTTP {response.status_code}: {response.text[:500]}")
        page = response.json()
        rows += page[rows_key]
        pagination = page["pagination"]
        paginations.append(pagination)
        if not pagination["has_more"]:
            if "pagination_key" in pagination:
                raise AssertionError("the last page carries a pagination_key")
            return rows, paginations
        key = pagination.get("pagination_key")
        if not key:
            raise AssertionError("has_more without a pagination_key")
    raise AssertionError("the walk did not end")
