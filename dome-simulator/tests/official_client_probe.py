"""Run inside a virtualenv with the official client (PyPI ``dome-api-sdk``), not under pytest.

Reads a JSON request on stdin (``base_url``, ``api_key`` and what to read), calls every
endpoint the simulator serves through ``DomeClient``, and prints what the client parsed as
JSON: each model as ``dataclasses.asdict`` plus the model's field names, so the test can
check that every field the client expects was served and parsed to the served value. The
client raises (KeyError, ValueError) on a response missing a field it requires.
Standard library and the client only: this file must not import the test suite.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from importlib.metadata import version
from typing import Any

from dome_api_sdk import DomeClient


def _model(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def _fields(cls: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _walk(call: Any, params: dict[str, Any], rows: str) -> tuple[list[Any], list[Any]]:
    """Every page of a cursor walk through one client method: (rows, paginations)."""
    items: list[Any] = []
    pages: list[Any] = []
    key = None
    while True:
        answer = call({**params, "pagination_key": key} if key else params)
        items += getattr(answer, rows)
        pages.append(answer.pagination)
        if not answer.pagination.has_more:
            return items, pages
        key = answer.pagination.pagination_key


def main() -> None:
    request = json.load(sys.stdin)
    client = DomeClient({"api_key": request["api_key"], "base_url": request["base_url"]})
    pm = client.polymarket
    out: dict[str, Any] = {"version": version("dome-api-sdk")}

    orders, pages = _walk(
        pm.orders.get_orders, {"user": request["orders_wallet"], "limit": 50}, "orders"
    )
    out["orders"] = {"rows": [_model(o) for o in orders], "pages": [_model(p) for p in pages]}

    activity, pages = _walk(
        pm.activity.get_activity, {"user": request["activity_wallet"], "limit": 7}, "activities"
    )
    out["activity"] = {"rows": [_model(a) for a in activity], "pages": [_model(p) for p in pages]}

    markets, pages = _walk(
        pm.markets.get_markets, {"condition_id": request["condition_ids"], "limit": 4}, "markets"
    )
    out["markets"] = {"rows": [_model(m) for m in markets], "pages": [_model(p) for p in pages]}

    wallets = []
    for lookup in request["wallet_lookups"]:
        wallets.append(_model(pm.wallet.get_wallet(lookup)))
    out["wallets"] = wallets
    try:
        pm.wallet.get_wallet({"handle": "@no-such-handle"})
        out["unknown_wallet"] = None
    except ValueError as exc:
        out["unknown_wallet"] = str(exc)

    models = sys.modules["dome_api_sdk.types"]
    out["fields"] = {
        name: _fields(getattr(models, name))
        for name in (
            "Order", "Pagination", "Activity", "ActivityPagination", "Market", "MarketSide",
            "WalletResponse", "WalletMetrics", "HighestVolumeDay",
        )
    }  # fmt: skip
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
