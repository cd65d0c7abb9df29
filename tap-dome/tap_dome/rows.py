"""The rows of one response, kept as their JSON text from the fetch to the output.

A fill parsed into Python objects costs about 1.7 KB and microseconds to build and to encode
again; its JSON text is a slice of the response body, already in memory. The scheduler
needs only each row's timestamp, so that is all the fetch worker reads. The record writer
decodes a page whole into typed structs and encodes its lines in one call, or splices each
row's text into its line (records.py), so a row is parsed into a dict only where the SDK's
own loop or an unusual row needs one. The rows' text, when something needs it, is views
into the body, not copies; a page a helper process wrote out (codec.py) is its lines.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from tap_dome.errors import DomeDataError


class _Stamp(msgspec.Struct):
    """The one field the scheduler reads from each row; every other field is skipped."""

    timestamp: Any = None


# Decodes a whole body into one typed object per row (records.TypedRows), or None when
# some row does not fit that type.
TypedDecoder = Callable[[bytes | bytearray], list[Any] | None]


class Rows:
    """One response's rows: each row's JSON text and its raw `timestamp` value.

    `one_line` says the text holds no line break, so a row can be spliced into a JSON
    Lines file as it is (an API that pretty-prints its JSON gets its rows re-encoded).
    `typed` is each row decoded by the page's `TypedDecoder`, if it has one and every row
    fits (the record writer then parses no row again), else None. `encoded` is set instead
    on a page a helper process already wrote out (codec.py): its lines, ready to go.
    """

    __slots__ = (
        "_body",
        "_chosen",
        "_decoder",
        "_raw",
        "_rows_field",
        "_stamps",
        "_typed",
        "_values",
        "encoded",
        "one_line",
    )

    def __init__(
        self,
        raw: list[msgspec.Raw] | None,
        values: Sequence[Any],
        *,
        one_line: bool,
        body: bytes | bytearray | None = None,
        rows_field: str = "",
        decoder: TypedDecoder | None = None,
    ) -> None:
        # `raw` None: the rows' text is split from `body` when first read (`raw`), which
        # a typed page never needs.
        self._raw = raw
        self._values = values
        self._stamps: Sequence[int | None] | None = None
        self.one_line = one_line
        # The page's body, its rows field and decoder; `_chosen`, the indices of these
        # rows among the body's when `where` kept only some of them.
        self._body = body
        self._rows_field = rows_field
        self._decoder = decoder
        self._chosen: list[int] | None = None
        self._typed: list[Any] | None = None
        self.encoded: EncodedLines | None = None

    @classmethod
    def of_dicts(cls, rows: list[dict[str, Any]]) -> Rows:
        """Rows from parsed objects (tests, and callers that already hold dicts)."""
        return cls(
            [msgspec.Raw(orjson.dumps(row)) for row in rows],
            [row.get("timestamp") for row in rows],
            one_line=True,
        )

    @classmethod
    def restored(
        cls,
        raw: list[msgspec.Raw],
        values: Sequence[Any],
        stamps: Sequence[int | None],
        *,
        one_line: bool,
    ) -> Rows:
        """Rows read back from where they were kept (spool.py), their stamps known already."""
        rows = cls(raw, values, one_line=one_line)
        rows._stamps = stamps
        return rows

    @classmethod
    def from_lines(cls, encoded: EncodedLines, stamps: Sequence[int]) -> Rows:
        """A page already written out as lines (one per row, each ending in a line break),
        with each row's timestamp."""
        rows = cls(None, stamps, one_line=True)
        rows._stamps = stamps
        rows.encoded = encoded
        return rows

    def __len__(self) -> int:
        return len(self._values)

    @property
    def raw(self) -> list[msgspec.Raw]:
        """Each row's JSON text: views into the page's body, split from it on first use
        (the per-row path, the spool, the SDK's loop; a typed page is encoded whole)."""
        if self._raw is None:
            if self._body is None or self.encoded is not None:
                raise RuntimeError("rows without their text or the body they came in")
            text, _ = _decoders(self._rows_field)
            every: list[msgspec.Raw] = getattr(text.decode(self._body), self._rows_field) or []
            chosen = self._chosen
            self._raw = every if chosen is None else [every[i] for i in chosen]
        return self._raw

    @property
    def typed(self) -> list[Any] | None:
        """Each row decoded into its typed form (one call for the whole page), or None.

        Decoded on first use, by the writer, not in the worker that fetched the page: a page
        may wait in the scheduler's memory budget (up to 40,000 fills) before it is written,
        and a decoded row costs about 1 KB beside its text (each skipped field is a
        msgspec.Raw): decoded in the worker, the tap's peak on one 50,000-fill wallet was
        ~105 MiB instead of ~80. The body is held with the rows: their text is in it.
        """
        decoder, body = self._decoder, self._body
        if decoder is not None and body is not None:
            self._decoder = None  # decoded once, fitting or not
            decoded = decoder(body)
            chosen = self._chosen
            if decoded is not None and chosen is not None:
                decoded = [decoded[i] for i in chosen]
            self._typed = decoded
        return self._typed

    @property
    def values(self) -> Sequence[Any]:
        """Each row's `timestamp` value as the API sent it."""
        return self._values

    @property
    def stamps(self) -> Sequence[int | None]:
        """Each row's `timestamp` in whole seconds (a number or a numeric string), or None.

        Computed on first use, in the worker that reads the page: a value that is not a
        number fails the run there, with the row's value in the error, and is never retried.
        """
        if self._stamps is None:
            self._stamps = [_seconds(value) for value in self._values]
        return self._stamps

    def newest(self) -> int | None:
        """The largest timestamp among the rows, or None when no row has one."""
        return max((s for s in self.stamps if s is not None), default=None)

    def where(self, keep: Callable[[int], bool]) -> Rows:
        """The rows whose timestamp (None counts as 0) passes `keep`, in their order."""
        stamps = self.stamps
        return self._picked([i for i, stamp in enumerate(stamps) if keep(stamp or 0)])

    def first(self, count: int) -> Rows:
        """The first `count` rows: a window's edge on a page sorted by time, picked with
        no step per row where the page is written out already (`EncodedLines.first`)."""
        if count >= len(self):
            return self
        if self.encoded is not None:
            return self.encoded.first(count, self.stamps)
        return self._picked(list(range(count)))

    def _picked(self, chosen: list[int]) -> Rows:
        """The rows at `chosen` (increasing indices), in their order."""
        stamps = self.stamps
        if self.encoded is not None:
            return self.encoded.where(chosen, stamps)
        picked = Rows(
            None if self._raw is None else [self._raw[i] for i in chosen],
            [self._values[i] for i in chosen],
            one_line=self.one_line,
            body=self._body,
            rows_field=self._rows_field,
            decoder=self._decoder,
        )
        picked._stamps = [stamps[i] for i in chosen]
        # Still to be decoded (typed) or split (raw): the rows kept, among the body's.
        picked._chosen = chosen if self._chosen is None else [self._chosen[i] for i in chosen]
        if self._decoder is None and self._typed is not None:
            picked._typed = [self._typed[i] for i in chosen]
        return picked

    def dicts(self) -> list[dict[str, Any]]:
        """Every row parsed into a new dict (the SDK's per-record loop, the markets)."""
        if self.encoded is not None:
            raise RuntimeError("a page written out as lines has no API rows to parse")
        loads = orjson.loads
        return [loads(memoryview(raw)) for raw in self.raw]


@dataclass(frozen=True, slots=True)
class EncodedLines:
    """A page's rows written out (codec.py): one complete line per row, and the
    `condition_id` values they carry."""

    lines: bytes | bytearray  # a helper's answer is read into a bytearray: no copy
    condition_ids: list[Any]

    def where(self, chosen: list[int], stamps: Sequence[int | None]) -> Rows:
        """The rows at `chosen` (a window's edge), their lines in their order.

        The condition ids stay the page's: a market one of the other rows traded is still
        a market the wallet traded (the `markets` stream reads it either way)."""
        every = self.lines.split(b"\n")  # the last part is empty: every line ends in one
        lines = b"".join(every[i] + b"\n" for i in chosen)
        kept = [stamps[i] or 0 for i in chosen]
        return Rows.from_lines(EncodedLines(lines, self.condition_ids), kept)

    def first(self, count: int, stamps: Sequence[int | None]) -> Rows:
        """The first `count` of these lines (one per row of `stamps`): one slice, its end
        found from whichever end of the text is nearer (a page's first rows are kept at a
        window's edge, usually all but its last second's)."""
        text, rows = self.lines, len(stamps)
        if count < rows - count:
            end = 0
            for _ in range(count):
                end = text.index(b"\n", end) + 1
        else:
            end = len(text)
            for _ in range(rows - count):
                end = text.rfind(b"\n", 0, end - 1) + 1
        kept = [stamp or 0 for stamp in stamps[:count]]
        return Rows.from_lines(EncodedLines(text[:end], self.condition_ids), kept)


def _seconds(value: Any) -> int | None:
    if type(value) is int or value is None:
        return value
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise DomeDataError(f"a row's timestamp is not a number of seconds: {value!r}") from None


@functools.cache
def _decoders(rows_field: str) -> tuple[msgspec.json.Decoder[Any], msgspec.json.Decoder[Any]]:
    """Two decoders of a page whose rows are under `rows_field`: their text; their stamps
    and the page's pagination."""
    text = msgspec.defstruct(
        f"RawPage_{rows_field}",
        [(rows_field, list[msgspec.Raw] | None, None), ("pagination", Any, None)],
    )
    stamps = msgspec.defstruct(
        f"StampPage_{rows_field}",
        [(rows_field, list[_Stamp] | None, None), ("pagination", Any, None)],
    )
    return msgspec.json.Decoder(text), msgspec.json.Decoder(stamps)


def split_rows(
    body: bytes | bytearray, rows_field: str, typed: TypedDecoder | None = None
) -> tuple[Rows, Any]:
    """The rows under `rows_field` and the page's `pagination` value (anything, or None).

    With `typed`, the rows' `typed` form is decoded from the body when it is first read
    (one call for the page instead of one per row; see `Rows.typed`).

    A page whose `rows_field` is null or absent, beside a `pagination` object, has no
    rows (an API may write an empty list so). Raises ValueError when the body is not JSON,
    is cut short, or has no list of objects under `rows_field` and no pagination.
    """
    _, stamps = _decoders(rows_field)
    try:
        page = stamps.decode(body)
    except msgspec.ValidationError as exc:
        if f"$.{rows_field}[" in str(exc):
            raise ValueError(f"response `{rows_field}` holds a row that is not an object") from None
        raise ValueError(f"response has no `{rows_field}` list") from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"response is not complete JSON: {exc}") from None
    found = getattr(page, rows_field)
    if found is None and not isinstance(page.pagination, dict):
        raise ValueError(f"response has no `{rows_field}` list")
    values = [row.timestamp for row in found or ()]
    one_line = is_one_line(body)
    rows = Rows(
        None,
        values,
        one_line=one_line,
        body=body,
        rows_field=rows_field,
        decoder=typed if one_line else None,
    )
    return rows, page.pagination


def is_one_line(body: bytes | bytearray) -> bool:
    """Whether the body's JSON text holds no line break (one may end it): its rows can then
    be written into JSON Lines as they are, or typed (`Rows.one_line`)."""
    end = len(body.rstrip())
    return body.find(b"\n", 0, end) < 0 and body.find(b"\r", 0, end) < 0
