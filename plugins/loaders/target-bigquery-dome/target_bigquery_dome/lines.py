"""Singer input, read without rebuilding records.

A RECORD line as singer-sdk taps write it is
``{"type":"RECORD","stream":"orders","record":{...},"time_extracted":"..."}``. The row the
loader stages is the ``record`` object itself plus two metadata fields, so the record's bytes
are sliced out of the line: orjson parses the line once (to check it is valid JSON with no
top-level keys but those), and nothing is serialized again. Values keep their exact text
(an integer beyond 64 bits too). Measured on tap-dome's RECORD lines (about 1 kB each):
about 2.5 µs of CPU per line, against ~10 µs to also dump the record again with orjson and
several times that through singer-sdk's Sink machinery (parse, validate, conform, dump).

The slice is taken only when the line has exactly that shape (compact separators, ``record``
third, after it nothing but ``version`` and ``time_extracted``); any other line, and every
other message type, is parsed with the standard library. Both ways give the same row.
"""

from __future__ import annotations

import decimal
import json
import sys
from collections import Counter
from collections.abc import Callable
from typing import IO, Any

import orjson
import simplejson
from singer_sdk.singerlib.encoding import GenericSingerReader

RECORD_HEAD = b'{"type":"RECORD","stream":"'
_HEAD_LEN = len(RECORD_HEAD)
_RECORD_KEY = b'","record":{'
_KEYS = frozenset(("type", "stream", "record", "version", "time_extracted"))
_UNSAFE = frozenset('"\\{}')


def slice_record(line: bytes) -> tuple[str, bytes, bytes] | None:
    """(stream, record without its closing brace, time_extracted as JSON) or None.

    None means: not the compact shape, parse the line the ordinary way.
    """
    if line[:_HEAD_LEN] != RECORD_HEAD:
        return None
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None  # NaN, lone surrogates, ...: the stdlib reads those
    if not message.keys() <= _KEYS or not message["record"]:
        return None
    quote = line.find(b'"', _HEAD_LEN)
    if line[quote : quote + 12] != _RECORD_KEY:
        return None
    extracted = message.get("time_extracted")
    version = message.get("version")
    if version is not None and type(version) is not int:
        return None
    if extracted is None:
        extracted_json = b"null"
    elif type(extracted) is str and _UNSAFE.isdisjoint(extracted):
        extracted_json = b'"' + extracted.encode() + b'"'
    else:
        return None
    # After the record come only an integer and a plain string: neither holds a brace, so the
    # record's closing brace is the last one before the line's own.
    end = line.rfind(b"}", 0, line.rfind(b"}"))
    return message["stream"], line[quote + 11 : end], extracted_json


def dump_row(record: dict[str, Any]) -> bytes:
    """A parsed record as one staged line (compact JSON; Decimal values keep their digits)."""
    text: str = simplejson.dumps(record, use_decimal=True, separators=(",", ":"), default=str)
    return text.encode() + b"\n"


def extracted_value(message: dict[str, Any]) -> str | None:
    """The message's time_extracted, as the text the tap sent."""
    value = message.get("time_extracted")
    return None if value is None else str(value)


def parse(line: bytes) -> dict[str, Any]:
    """A whole message; floats as Decimal so that STATE and values keep every digit."""
    message = json.loads(line, parse_float=decimal.Decimal)
    if not isinstance(message, dict):
        raise ValueError(f"a Singer message must be a JSON object: {line[:200]!r}")
    return message


class FastSingerReader(GenericSingerReader[bytes]):
    """singer-sdk's reader interface over bytes, handing compact RECORD lines to `on_record`.

    `on_record(stream, body, extracted)` returns False when it cannot take the line (e.g. no
    SCHEMA seen for the stream yet): the line then goes the parsed way, which raises the
    SDK's usual error.
    """

    on_record: Callable[[str, bytes, bytes], bool] | None = None

    @property
    def default_input(self) -> IO[bytes]:
        return sys.stdin.buffer

    def deserialize_json(self, line: bytes) -> dict[str, Any]:
        return parse(line)

    def process_lines(
        self,
        file_input: IO[bytes] | None,
        callbacks: dict[str, Callable[[dict[str, Any]], None]],
    ) -> Counter[str]:
        source = file_input if file_input is not None else self.default_input
        source = getattr(source, "buffer", source)  # `--input FILE` opens it as text
        on_record = self.on_record
        stats: Counter[str] = Counter()
        fast = 0
        for line in source:
            if on_record is not None and line[:_HEAD_LEN] == RECORD_HEAD:
                sliced = slice_record(line)
                if sliced is not None and on_record(*sliced):
                    fast += 1
                    continue
            if not line.strip():
                continue
            self._current_message = line
            message = self.deserialize_json(line)
            self.assert_line_requires(message, requires={"type"})
            kind = message["type"]
            callback = callbacks.get(kind)
            if callback is None:
                self._process_unknown_message(message)
            else:
                callback(message)
            stats[kind] += 1
        stats["RECORD"] += fast
        return stats
