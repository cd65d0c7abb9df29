"""``GET /v1/polymarket/wallet``: the EOA, proxy and handle of one wallet, optionally metrics.

Exactly one of ``eoa``, ``proxy`` or ``handle`` (a leading ``@`` is stripped); unknown
wallets get 404 ``No wallet mapping found ...``. ``with_metrics=true`` adds
``wallet_metrics`` computed from what the simulator serves for the proxy at the data clock:
volume and count of its fills, distinct markets, the busiest UTC day, and its activity
counts (``conversions`` is always 0); ``start_time`` / ``end_time`` bound the metrics only.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from .params import BadRequest, first, time_range
from .responses import Response, error, json_response
from .store import Store
from .wallets import WalletDirectory

__all__ = ["serve_wallet"]

_KINDS = ("eoa", "proxy", "handle")


def _metrics(store: Store, proxy: str, start: int | None, end: int | None) -> dict[str, Any]:
    def inside(row: Mapping[str, Any]) -> bool:
        ts = row["timestamp"]
        return (start is None or ts >= start) and (end is None or ts <= end)

    fills = [r for r in (orjson.loads(b) for _, b in store.visible(proxy)) if inside(r)]
    activity = [
        r for r in (orjson.loads(b) for _, b in store.visible(proxy, "activity")) if inside(r)
    ]
    volume_by_day: dict[str, float] = defaultdict(float)
    trades_by_day: Counter[str] = Counter()
    for row in fills:
        day = time.strftime("%Y-%m-%d", time.gmtime(row["timestamp"]))
        volume_by_day[day] += row["shares_normalized"] * row["price"]
        trades_by_day[day] += 1
    busiest = max(volume_by_day, key=lambda d: (volume_by_day[d], d), default=None)
    sides = Counter(r["side"] for r in activity)
    return {
        "total_volume": round(sum(volume_by_day.values()), 6),
        "total_trades": len(fills),
        "total_markets": len({r["condition_id"] for r in fills}),
        "highest_volume_day": (
            None
            if busiest is None
            else {
                "date": busiest,
                "volume": round(volume_by_day[busiest], 6),
                "trades": trades_by_day[busiest],
            }
        ),
        "merges": sides["MERGE"],
        "splits": sides["SPLIT"],
        "conversions": 0,
        "redemptions": sides["REDEEM"],
    }


def serve_wallet(
    store: Store, directory: WalletDirectory, params: Mapping[str, Sequence[str]]
) -> Response:
    """Answer one wallet request."""
    given = [(kind, value) for kind in _KINDS if (value := first(params, kind)) is not None]
    try:
        if len(given) != 1:
            raise BadRequest(
                error(
                    400,
                    "Invalid parameters",
                    "Exactly one of eoa, proxy, or handle must be provided",
                )
            )
        start, end = time_range(params)
    except BadRequest as bad:
        return bad.response
    kind, value = given[0]
    if kind == "handle":
        value = value.removeprefix("@")
    mapping = directory.find(kind, value)
    if mapping is None:
        return error(404, "Not Found", f"No wallet mapping found for {kind} {value}")
    if (first(params, "with_metrics") or "").lower() == "true":
        mapping["wallet_metrics"] = _metrics(store, mapping["proxy"], start, end)
    return json_response(200, mapping)
