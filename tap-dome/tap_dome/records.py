"""Turning one API row (a fill, an activity) into one Singer record: identity, types, time.

This runs once per row, so it is written for speed: no schema walk, only the few
conversions the API can plausibly get wrong (numbers as strings, big ints as ints).
Identities are documented in docs/contracts.md.

Most rows need none of those conversions. A page whose rows all have the types `build`
would produce is decoded whole into typed structs (`TypedRows`, one msgspec call), and
`RecordBuilder.lines` sets the fields the tap adds on each struct and encodes the page in one
msgspec call, never building a dict. A page that does not fit is written row by row: each
row's text that already has those types is spliced into its line with the fields the tap
adds; any other row takes `build`. All paths give the same record
(tap-dome/tests/test_record_lines.py compares them on every edge case the simulator
serves).
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
from collections.abc import Callable
from operator import attrgetter
from typing import Annotated, Any

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
# Fields outside the schema that TypedRows learns to recognise (so that a page with a row
# carrying one stays typed, the field moved into that row's `extra_fields`), at most this
# many per stream.
MAX_LEARNED_FIELDS = 8
# A typed row's `tx_hash`: an empty one cannot identify the row (`build` raises for it).
_NON_EMPTY_TEXT = Annotated[str, msgspec.Meta(min_length=1)]
_CONDITION_ID = attrgetter("condition_id")
_LINES = msgspec.json.Encoder()  # a typed page's records, one JSON Lines call


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
        self._row_kind = "fill" if key == "order_id" else "activity"
        self._days: dict[int, str] = {}  # "YYYY-MM-DDT" by Unix day
        self._splice_fields = _splice_fields(known_fields, derived=(key, "wallet", time_field))
        self._splice = _row_decoder(self._splice_fields)
        self._typed: TypedRows | None = None

    def recipe(self) -> Callable[[], RecordBuilder]:
        """How to make this builder again in another process (a picklable call)."""
        return functools.partial(
            RecordBuilder,
            self._known,
            key=self._key,
            identity=self._identity,
            time_field=self._time_field,
        )

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
    ) -> bytes | bytearray:
        """One line per row, `head` + record + `tail` (a RECORD message's envelope, or
        nothing in a batch file); the rows' `condition_id` values are added to `seen`.

        A page a helper process already wrote out (`Rows.encoded`, codec.py) is returned
        as it was written: with this stream's head, and a tail of the time it was fetched.
        A page decoded whole (`Rows.typed`, see `TypedRows`) is completed struct by struct
        and encoded in one call (`_encoded`). Any other page is written row by row: a row
        whose text already has the schema's types is spliced, the others take `build`.
        """
        if rows.encoded is not None:
            seen.update(rows.encoded.condition_ids)
            return rows.encoded.lines
        if not rows:
            return b""
        typed = rows.typed if self._typed is not None and rows.one_line else None
        if typed is not None and self._typed is not None:
            return self._encoded(typed, self._typed, wallet, seen, head, tail)
        return self._row_by_row(rows, wallet, seen, head, tail)

    def typed_lines(
        self, typed: list[Any], wallet: str, seen: set[Any], *, head: bytes, tail: bytes
    ) -> bytes:
        """`lines` for rows this builder's `typed_rows` decoded (a helper process's page,
        decoded with its pagination in one pass: `TypedRows.page`)."""
        if not typed or self._typed is None:
            raise ValueError("no typed rows to write")
        return self._encoded(typed, self._typed, wallet, seen, head, tail)

    def _encoded(
        self,
        typed: list[Any],
        decoder: TypedRows,
        wallet: str,
        seen: set[Any],
        head: bytes,
        tail: bytes,
    ) -> bytes:
        """The typed rows of one page, completed in place and encoded as JSON Lines.

        Per row this sets the three fields the tap adds; msgspec encodes the page in one
        call (the rows' untyped fields are msgspec.Raw: their text is written as it came),
        and one `replace` of the line breaks adds each message's envelope. No faster than
        splicing each row's text into its line, but a field outside the schema moves by
        value, and the page's rows' text is never split out of its body.
        """
        seen.update(map(_CONDITION_ID, typed))
        if msgspec.UNSET in seen:  # a row without one: `build`'s record.get gives None
            seen.discard(msgspec.UNSET)
            seen.add(None)
        learned = decoder.carries_learned(typed)
        days, date_of, minutes, seconds = self._days, self._date, MINUTES_OF_DAY, SECONDS
        for row in typed:
            if learned is not None and learned(row):
                decoder.move_learned(row)
            row.tap_key = f"{row.tx_hash.lower()}:{row.log_index}"
            row.tap_wallet = wallet
            day, second = divmod(row.timestamp, 86400)
            minute, second = divmod(second, 60)
            row.tap_time = f"{days.get(day) or date_of(day)}{minutes[minute]}{seconds[second]}"
        text = _LINES.encode_lines(typed)
        if not head and not tail:
            return text
        # JSON text holds no line break but between lines (a page is typed only when its
        # body has none: `Rows.one_line`), so each one is where an envelope closes and opens.
        text = text.replace(b"\n", tail + b"\n" + head)
        return b"".join((head, memoryview(text)[: len(text) - len(head)]))

    def _row_by_row(
        self, rows: Rows, wallet: str, seen: set[Any], head: bytes, tail: bytes
    ) -> bytes:
        """`lines` for a page that is not typed (a row that does not fit the types, a body
        with line breaks, rows read back from the spool).

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
            row = None
            if splice is not None:
                try:
                    row = splice(raw)
                except invalid:
                    row = None
            # Inline, not a call of `_spliceable`: this runs per row.
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

    def typed_rows(self, rows_field: str) -> TypedRows | None:
        """The page decoder whose typed rows `lines` encodes (None: no schema)."""
        if self._splice_fields is None:
            return None
        if self._typed is None:
            derived = (self._key, "wallet", self._time_field)
            self._typed = TypedRows(self._splice_fields, rows_field, derived)
        return self._typed

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
        try:
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
        except (TypeError, ValueError) as exc:  # a value of the wrong type: name it
            raise DomeDataError(
                f"{self._row_kind} with a value of the wrong type ({exc}): {_describe(fill)}"
            ) from None
        return fill


SpliceFields = list[tuple[str, Any] | tuple[str, Any, Any]]


def _splice_fields(known_fields: frozenset[str], derived: tuple[str, ...]) -> SpliceFields | None:
    """The fields of the rows `lines` may splice, with their types, or None (no schema).

    The fields the tap adds (`derived`, `extra_fields`) are not in it: a row that already
    carries one of them, like a row with a field outside the schema, takes `build`.
    """
    names = known_fields - {*derived, "extra_fields"}
    if not known_fields or not names >= SPLICE_REQUIRED:
        return None
    fields: SpliceFields = []
    for name in sorted(names):
        kind = SPLICE_TYPES.get(name, msgspec.Raw)
        if name == "condition_id":
            kind = Any  # read: the markets stream needs every condition id traded
        fields.append((name, kind) if name in SPLICE_REQUIRED else (name, kind, None))
    return fields


def _row_decoder(fields: SpliceFields | None) -> msgspec.json.Decoder[Any] | None:
    """A decoder that accepts exactly the rows `lines` may splice (no other field)."""
    if fields is None:
        return None
    struct = msgspec.defstruct("SpliceRow", fields, kw_only=True, forbid_unknown_fields=True)
    return msgspec.json.Decoder(struct)


class TypedRows:
    """Decodes all the rows of a page at once into the structs `RecordBuilder.lines`
    completes and encodes.

    One call per page instead of one per row. A page fits when every row has the types
    `build` would give it; one row that does not (a price as a string, say) sends the
    whole page to the per-row path (None). A field outside the schema does not: the first
    page that carries it teaches this decoder the field's name (up to MAX_LEARNED_FIELDS),
    and from then on a row that carries it gets it moved into `extra_fields`
    (`move_learned`), as `build` does. Shared by the fetch workers; learning swaps the
    decoder under a lock.

    Each struct also has the fields the tap adds (`derived`: the key, `wallet`, the UTC
    time; and `extra_fields`), as the attributes `tap_key`, `tap_wallet`, `tap_time` and
    `tap_extra`, last, so that a record encodes with them. A row that already carries one
    gets it overwritten, as `build` overwrites it (its own `extra_fields` is kept unless
    a learned field replaces it, as in `build`).
    """

    def __init__(
        self, fields: SpliceFields, rows_field: str, derived: tuple[str, str, str]
    ) -> None:
        key, wallet, time_field = derived
        # An optional field the row lacks stays UNSET, which is not encoded: the record
        # lacks it too, as `build`'s does. An empty `tx_hash` fails the page (`build`
        # raises for it: it cannot identify the row).
        self._fields: SpliceFields = [
            (name, _NON_EMPTY_TEXT)
            if name == "tx_hash"
            else (name, kind | msgspec.UnsetType, msgspec.UNSET)
            if rest
            else (name, kind)
            for name, kind, *rest in fields
        ]
        self._tap_fields = {
            "tap_key": key,
            "tap_wallet": wallet,
            "tap_time": time_field,
            "tap_extra": "extra_fields",
        }
        self._rows_field = rows_field
        self._names = {name for name, *_ in fields} | set(self._tap_fields.values())
        self._learned: list[str] = []
        self._lock = threading.Lock()
        self._unknown = re.compile(
            r"Object contains unknown field `(.+)` - at `\$\." + re.escape(rows_field) + r"\[\d+\]`"
        )
        # Per row type (one per decoder built): whether a row carries a learned field, and
        # each learned field as (attribute, the name as JSON text).
        self._checks: dict[type, Callable[[Any], bool] | None] = {}
        self._keys: dict[type, list[tuple[str, bytes]]] = {}
        self._decoder = self._build()

    def __call__(self, body: bytes | bytearray) -> list[Any] | None:
        """Every row of `body` decoded, or None when some row does not fit."""
        page = self.page(body)
        return None if page is None else page[0]

    def page(self, body: bytes | bytearray) -> tuple[list[Any], Any] | None:
        """Every row of `body` decoded and the page's `pagination` value, in one pass (a
        helper process needs nothing else from the body), or None when some row does not
        fit (or the body is no page: the tap's own parse then names what is wrong)."""
        while True:
            decoder = self._decoder
            try:
                page = decoder.decode(body)
                return getattr(page, self._rows_field), page.pagination
            except msgspec.DecodeError as exc:  # ValidationError included
                if not self._learn(str(exc), decoder):
                    return None

    @property
    def learned(self) -> list[str]:
        """The names learned so far, in order."""
        return list(self._learned)

    def carries_learned(self, typed: list[Any]) -> Callable[[Any], bool] | None:
        """For rows decoded together: whether a row carries a learned field (None: no
        field learned when they were decoded, so none does)."""
        return self._checks.get(type(typed[0])) if typed else None

    def move_learned(self, row: Any) -> None:
        """Move the learned fields `row` carries into its `extra_fields`, as one JSON
        object of their text (`build` makes the same object of their values)."""
        members = []
        absent = msgspec.UNSET
        for attr, key in self._keys.get(type(row), []):
            value = getattr(row, attr)
            if value is not absent:
                members.append(key + b":" + bytes(value))
                setattr(row, attr, absent)  # UNSET: not encoded
        row.tap_extra = msgspec.Raw(b"{" + b",".join(members) + b"}")

    def _learn(self, message: str, seen_with: msgspec.json.Decoder[Any]) -> bool:
        """Learn the unknown field `message` names; False when there is nothing to learn."""
        match = self._unknown.fullmatch(message)
        if match is None:
            return False
        with self._lock:
            if self._decoder is not seen_with:
                return True  # another worker learned meanwhile: try its decoder
            name = match.group(1)
            if name in self._names or len(self._learned) >= MAX_LEARNED_FIELDS:
                return False
            self._learned.append(name)
            self._names.add(name)
            self._decoder = self._build()
            return True

    def _build(self) -> msgspec.json.Decoder[Any]:
        learned = {f"learned_{i}": name for i, name in enumerate(self._learned)}
        absent = msgspec.UNSET
        fields: SpliceFields = [*self._fields]
        fields += [(attr, msgspec.Raw | msgspec.UnsetType, absent) for attr in learned]
        # Any value the API sends in one of them is decoded, then overwritten (`lines`).
        fields += [(attr, Any, None) for attr in self._tap_fields]
        row = msgspec.defstruct(
            "TypedRow",
            fields,
            kw_only=True,
            forbid_unknown_fields=True,
            rename={**learned, **self._tap_fields},
        )
        rows = list[row]  # type: ignore[valid-type]  # a type made at run time
        page = msgspec.defstruct(
            f"TypedPage_{self._rows_field}", [(self._rows_field, rows), ("pagination", Any, None)]
        )
        self._checks[row] = _carries(list(learned)) if learned else None
        self._keys[row] = [(attr, orjson.dumps(name)) for attr, name in learned.items()]
        return msgspec.json.Decoder(page)


def _carries(attrs: list[str]) -> Callable[[Any], bool]:
    """Whether a typed row has any of `attrs` set (they are UNSET when absent)."""
    absent = msgspec.UNSET
    if len(attrs) == 1:
        (attr,) = attrs
        return lambda row: getattr(row, attr) is not absent
    values, none = attrgetter(*attrs), (absent,) * len(attrs)
    return lambda row: values(row) != none


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
    api_extra = record.pop("extra_fields", None)
    extra = dict(api_extra) if isinstance(api_extra, dict) else {}
    try:
        for name in MARKET_TIME_FIELDS:
            value = record.get(name)
            if value is not None and type(value) is not int:
                record[name] = int(float(value))
        for name in MARKET_EXTRA_KNOWN:
            value = extra.pop(name, None)
            record[name] = None if value is None else float(value)
    except (TypeError, ValueError) as exc:  # a value of the wrong type: name it
        raise DomeDataError(
            f"market {record['condition_id']} with a value of the wrong type ({exc})"
        ) from None
    extra.update({k: record.pop(k) for k in list(record) if k not in known_fields})
    record["extra_fields"] = extra or None
    return record
