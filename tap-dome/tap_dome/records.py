"""Turning one API row (a fill, an activity) into one Singer record: identity, types, time.

This runs once per row, so it is written for speed: no schema walk, only the few
conversions the API can plausibly get wrong (numbers as strings, big ints as ints).
Identities are documented in docs/contracts.md.

Most rows need none of those conversions. `RecordBuilder.lines` checks each row's text
against the types `build` would produce (one msgspec decode of the row into a typed struct)
and, when they already hold, splices the text into the output line with the fields the tap
adds, never building a dict. Any other row takes `build`, so both give the same record
(tap-dome/tests/test_record_lines.py compares them on every edge case the simulator
serves).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
from singer_sdk.contrib.msgspec import encoder

from tap_dome.errors import DomeDataError
from tap_dome.rows import Rows

DATE_CACHE_SIZE = 65536
MINUTES_OF_DAY = [f"{minute // 60:02d}:{minute % 60:02d}:" for minute in range(1440)]
SECONDS = [f"{second:02d}Z" for second in range(60)]
# What `build` leaves unchanged: a row whose fields already have these types (and that has
# no field outside the schema) is written as the API sent it. Every other field the schema
# names passes through `build` untouched, so any value will do.
SPLICE_TYPES: dict[str, Any] = {
    "timestamp": int,
    "tx_hash": str,  # spliced only when ASCII letters and digits (`_spliceable`)
    "log_index": int,
    "token_id": str | None,
    "shares": int | None,
    "price": float | None,
    "shares_normalized": float | None,
    "block_number": int | None,
}
SPLICE_REQUIRED = frozenset({"timestamp", "tx_hash", "log_index"})


def log_id(row: dict[str, Any], kind: str, fallback: Callable[[], list[str]]) -> str:
    """`lower(tx_hash):log_index`: one on-chain event log. Without `log_index` (older API
    versions), `lower(tx_hash):h` + the first 16 hex digits of sha256 over `fallback()`'s
    fields joined by `|` (docs/contracts.md)."""
    tx_hash = row.get("tx_hash")
    if not tx_hash:
        raise DomeDataError(f"{kind} without tx_hash cannot be identified: {_describe(row)}")
    log_index = row.get("log_index")
    if log_index is not None:
        return f"{str(tx_hash).lower()}:{int(log_index)}"
    digest = hashlib.sha256("|".join(fallback()).encode()).hexdigest()[:16]
    return f"{str(tx_hash).lower()}:h{digest}"


def order_id(fill: dict[str, Any]) -> str:
    """The identity of one fill event, used as key everywhere (tap, warehouse, dbt).

    One row is one on-chain `OrderFilled` log. The fallback fields tell the fills of one
    transaction apart: order_hash, token_id, side, shares, repr(price).
    """

    def fallback() -> list[str]:
        price = fill.get("price")
        return [
            _text(fill.get("order_hash")),
            _text(fill.get("token_id")),
            _text(fill.get("side")),
            _text(fill.get("shares")),
            repr(float(price)) if price is not None else "",
        ]

    return log_id(fill, "fill", fallback)


def activity_id(row: dict[str, Any]) -> str:
    """The identity of one split, merge or redemption: one event log, like a fill.

    The fallback fields: side, condition_id, token_id, int(shares), lower(user).
    """

    def fallback() -> list[str]:
        shares = row.get("shares")
        return [
            _text(row.get("side")),
            _text(row.get("condition_id")),
            _text(row.get("token_id")),
            str(int(float(shares))) if shares is not None else "",
            _text(row.get("user")).lower(),
        ]

    return log_id(row, "activity", fallback)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _describe(fill: dict[str, Any]) -> str:
    keys = ("order_hash", "timestamp", "user", "token_id")
    return ", ".join(f"{k}={fill.get(k)!r}" for k in keys)


class RecordBuilder:
    """Completes API rows into records in place; caches formatted seconds.

    Fills by default (`order_id`, `filled_at`); activity rows with `activity_id` and
    `occurred_at`. Fields the schema does not name are moved into `extra_fields`, so a field
    Dome adds later is kept (and loaded) instead of being dropped or breaking the catalog.
    """

    def __init__(
        self,
        known_fields: frozenset[str] = frozenset(),
        *,
        key: str = "order_id",
        identity: Callable[[dict[str, Any]], str] = order_id,
        time_field: str = "filled_at",
    ) -> None:
        self._known = known_fields
        self._key = key
        self._identity = identity
        self._time_field = time_field
        self._days: dict[int, str] = {}  # "YYYY-MM-DDT" by Unix day
        self._splice = _splice_decoder(known_fields, derived=(key, "wallet", time_field))

    def iso(self, ts: int) -> str:
        """`ts` as an RFC 3339 UTC string: the date from a cache, the time from tables."""
        day, second = divmod(ts, 86400)
        date = self._days.get(day) or self._date(day)
        minute, second = divmod(second, 60)
        return date + MINUTES_OF_DAY[minute] + SECONDS[second]

    def _date(self, day: int) -> str:
        """The "YYYY-MM-DDT" of a Unix day, cached (`lines` inlines `iso`, this included)."""
        if len(self._days) >= DATE_CACHE_SIZE:
            self._days.clear()
        date = self._days[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86400))
        return date

    def lines(
        self,
        rows: Rows,
        wallet: str,
        seen: set[Any],
        *,
        head: bytes = b"",
        tail: bytes = b"",
    ) -> bytes:
        """One line per row, `head` + record + `tail` (a RECORD message's envelope, or
        nothing in a batch file); the rows' `condition_id` values are added to `seen`.

        The output is built as [head, row 1, its end + the next head, row 2, ...]: two
        parts a row, the last one's head cut off.
        """
        loads, encode, see = orjson.loads, encoder.encode, seen.add
        joint = tail + b"\n" + head  # between one record and the next
        parts: list[Any] = [head]
        add = parts.append
        splice = self._splice.decode if self._splice is not None and rows.one_line else None
        invalid = msgspec.ValidationError
        key = f',"{self._key}":"'
        after_id = f'","wallet":{orjson.dumps(wallet).decode()},"{self._time_field}":"'
        # What follows the time, through the next line's head (JSON text, so UTF-8).
        after_time = '","extra_fields":null}' + joint.decode()
        days, date_of, minutes, seconds = self._days, self._date, MINUTES_OF_DAY, SECONDS
        for raw in rows.raw:
            if splice is not None:  # inline, not a call of `_spliceable`: this runs per row
                try:
                    row = splice(raw)
                except invalid:
                    row = None
                if row is not None and (tx := row.tx_hash).isascii() and tx.encode().isalnum():
                    see(row.condition_id)
                    day, second = divmod(row.timestamp, 86400)
                    minute, second = divmod(second, 60)
                    add(memoryview(raw)[:-1])  # the object without its closing brace
                    add(
                        f"{key}{tx.lower()}:{row.log_index}{after_id}"
                        f"{days.get(day) or date_of(day)}{minutes[minute]}{seconds[second]}"
                        f"{after_time}".encode()
                    )
                    continue
            record = self.build(loads(memoryview(raw)), wallet)
            see(record.get("condition_id"))
            add(encode(record))
            add(joint)
        if len(parts) == 1:
            return b""
        if head:
            parts[-1] = parts[-1][: len(parts[-1]) - len(head)]
        return b"".join(parts)

    def splices(self, raw: msgspec.Raw) -> bool:
        """Whether `lines` writes this row's text as it came (else it takes `build`)."""
        return self._spliceable(raw) is not None

    def _spliceable(self, raw: msgspec.Raw) -> Any:
        """The row decoded when its text can be spliced, else None.

        That is: it has the types `build` would give it and no field outside the schema,
        and its `tx_hash` is ASCII letters and digits only, so it needs no escaping in
        `order_id`. `lines` inlines this. (On ASCII text, `bytes.isalnum` gives the same
        answer as `str.isalnum` in a third of the time.)
        """
        if self._splice is None:
            return None
        try:
            row = self._splice.decode(raw)
        except msgspec.ValidationError:
            return None
        tx_hash = row.tx_hash
        return row if tx_hash.isascii() and tx_hash.encode().isalnum() else None

    def build_page(self, fills: list[dict[str, Any]], wallet: str) -> list[dict[str, Any]]:
        """`build` for every fill of a page (one call per page keeps the loop tight)."""
        build = self.build
        return [build(fill, wallet) for fill in fills]

    def build(self, fill: dict[str, Any], wallet: str) -> dict[str, Any]:
        """Add the key, `wallet` and the UTC time; make the types match the schema."""
        get = fill.get
        ts = get("timestamp")
        if type(ts) is not int:
            if ts is None:
                raise DomeDataError(f"fill without timestamp: {_describe(fill)}")
            ts = fill["timestamp"] = int(float(ts))
        token_id = get("token_id")
        if token_id is not None and type(token_id) is not str:
            fill["token_id"] = str(token_id)
        shares = get("shares")
        if shares is not None and type(shares) is not int:
            fill["shares"] = int(float(shares))
        price = get("price")
        if type(price) is str:
            fill["price"] = float(price)
        normalized = get("shares_normalized")
        if type(normalized) is str:
            fill["shares_normalized"] = float(normalized)
        block = get("block_number")
        if block is not None and type(block) is not int:
            fill["block_number"] = int(block)
        tx_hash = get("tx_hash")
        log_index = get("log_index")
        if log_index is not None and type(tx_hash) is str and tx_hash:
            if type(log_index) is not int:
                log_index = fill["log_index"] = int(log_index)
            fill[self._key] = f"{tx_hash.lower()}:{log_index}"
        else:
            fill[self._key] = self._identity(fill)
        fill["wallet"] = wallet
        fill[self._time_field] = self.iso(ts)
        known = self._known
        if known and not fill.keys() <= known:
            fill["extra_fields"] = {k: fill.pop(k) for k in list(fill) if k not in known}
        elif "extra_fields" not in fill:
            fill["extra_fields"] = None  # every record carries every column of the schema
        return fill


def _splice_decoder(
    known_fields: frozenset[str], derived: tuple[str, ...]
) -> msgspec.json.Decoder[Any] | None:
    """A decoder that accepts exactly the rows `lines` may splice, or None (no schema).

    The fields the tap adds (`derived`, `extra_fields`) are not in it: a row that already
    carries one of them, like a row with a field outside the schema, takes `build`.
    """
    names = known_fields - {*derived, "extra_fields"}
    if not known_fields or not names >= SPLICE_REQUIRED:
        return None
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for name in sorted(names):
        kind = SPLICE_TYPES.get(name, msgspec.Raw)
        if name == "condition_id":
            kind = Any  # read: the markets stream needs every condition id traded
        fields.append((name, kind) if name in SPLICE_REQUIRED else (name, kind, None))
    struct = msgspec.defstruct("SpliceRow", fields, kw_only=True, forbid_unknown_fields=True)
    return msgspec.json.Decoder(struct)


def _side(value: Any) -> tuple[str | None, str | None]:
    """`{id, label}` as (token_id, label); a bare string is a label (the TS SDK's type)."""
    if isinstance(value, dict):
        token = value.get("id")
        label = value.get("label")
        return (None if token is None else str(token), None if label is None else str(label))
    if isinstance(value, str) and value:
        return None, value
    return None, None


MARKET_TIME_FIELDS = ("start_time", "end_time", "close_time", "completed_time")
MARKET_EXTRA_KNOWN = ("price_to_beat", "final_price")


def market_record(market: dict[str, Any], known_fields: frozenset[str]) -> dict[str, Any]:
    """One market as a flat record (docs/contracts.md): sides and winner as columns."""
    record = dict(market)
    condition_id = record.get("condition_id")
    if not condition_id:
        raise DomeDataError(f"market without condition_id: slug={record.get('market_slug')!r}")
    record["condition_id"] = str(condition_id).lower()
    for side in ("side_a", "side_b"):
        token, label = _side(record.pop(side, None))
        record[f"{side}_token_id"], record[f"{side}_label"] = token, label
    record["winning_token_id"], record["winning_label"] = _side(record.pop("winning_side", None))
    for name in MARKET_TIME_FIELDS:
        value = record.get(name)
        if value is not None and type(value) is not int:
            record[name] = int(float(value))
    api_extra = record.pop("extra_fields", None)
    extra = dict(api_extra) if isinstance(api_extra, dict) else {}
    for name in MARKET_EXTRA_KNOWN:
        value = extra.pop(name, None)
        record[name] = None if value is None else float(value)
    extra.update({k: record.pop(k) for k in list(record) if k not in known_fields})
    record["extra_fields"] = extra or None
    return record
