"""One order fill (an ``OrderFilled`` event), as the orders endpoint serves it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CTF_EXCHANGE", "NEG_RISK_CTF_EXCHANGE", "Fill", "FillKey"]

#: Polymarket's CTF exchange contracts. The API often reports one of them as ``taker``.
CTF_EXCHANGE = "0x4bfb41d5b3570defd03c39a9a4d8de6bd8b8982e"
NEG_RISK_CTF_EXCHANGE = "0xc5d563a36ae78145c45a50134d48a1215220f80a"

#: Sort key of a fill: (timestamp, tx_hash, log_index). The API serves it descending.
FillKey = tuple[int, str, int]


# The fields of one fill as the Dome API documents them (docs.domeapi.io), in that order.
API_FIELDS: tuple[str, ...] = (
    "token_id",
    "token_label",
    "side",
    "market_slug",
    "condition_id",
    "shares",
    "shares_normalized",
    "price",
    "block_number",
    "log_index",
    "tx_hash",
    "title",
    "timestamp",
    "order_hash",
    "user",
    "taker",
)


@dataclass(slots=True)
class Fill:
    """A fill with every field the Dome API documents, plus simulator-only metadata.

    ``extra`` holds fields unknown to the contract (they prove the tap keeps them);
    ``indexed_at`` is when the API's indexer reaches the fill (``None``: at ``timestamp``).
    """

    token_id: str
    token_label: str
    side: str
    market_slug: str
    condition_id: str
    shares: int
    price: float
    block_number: int
    log_index: int
    tx_hash: str
    title: str
    timestamp: int
    order_hash: str
    user: str
    taker: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    indexed_at: int | None = None

    @property
    def shares_normalized(self) -> float:
        """Shares in whole units; the API derives it from the raw 6-decimal amount."""
        return self.shares / 1e6

    @property
    def key(self) -> FillKey:
        """The keyset-pagination position of this fill."""
        return (self.timestamp, self.tx_hash, self.log_index)

    @property
    def visible_from(self) -> int:
        """The data clock (Unix seconds) from which the API serves this fill.

        Both its block time and its indexing time must have been reached: a fill is never
        served before its own timestamp, however early it was indexed.
        """
        if self.indexed_at is None:
            return self.timestamp
        return max(self.timestamp, self.indexed_at)

    def to_api(self) -> dict[str, Any]:
        """The JSON object the API returns for this fill (field order as documented)."""
        row: dict[str, Any] = {
            "token_id": self.token_id,
            "token_label": self.token_label,
            "side": self.side,
            "market_slug": self.market_slug,
            "condition_id": self.condition_id,
            "shares": self.shares,
            "shares_normalized": self.shares / 1e6,
            "price": self.price,
            "block_number": self.block_number,
            "log_index": self.log_index,
            "tx_hash": self.tx_hash,
            "title": self.title,
            "timestamp": self.timestamp,
            "order_hash": self.order_hash,
            "user": self.user.lower(),
            "taker": self.taker,
        }
        if self.extra:
            row.update(self.extra)
        return row
