"""The buffered Singer writer keeps every line in the order it was given."""

from __future__ import annotations

import io
import sys

import orjson
import pytest
from singer_sdk.singerlib import StateMessage

from tap_dome.writer import DIRECT_BYTES, FLUSH_BYTES, BufferedMessageWriter


def _line(n: int, pad: int = 0) -> bytes:
    record = {"n": n, "pad": "x" * pad}
    return orjson.dumps({"type": "RECORD", "stream": "orders", "record": record}) + b"\n"


def test_small_and_page_sized_writes_and_a_state_come_out_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(sink, write_through=True))
    writer = BufferedMessageWriter()
    writer.write_lines(_line(1))  # buffered
    page = b"".join(_line(n, pad=1000) for n in range(2, 2 + FLUSH_BYTES // 1000))
    assert len(page) > FLUSH_BYTES
    writer.write_lines(page)  # written as it is, after what was buffered
    writer.write_lines(_line(10_000))  # buffered again
    # A page that would fit the buffer but is big enough to write as it is, not copied.
    mid = b"".join(_line(n, pad=1000) for n in range(20_000, 20_000 + DIRECT_BYTES // 1000))
    assert DIRECT_BYTES <= len(mid) < FLUSH_BYTES
    writer.write_lines(mid)
    writer.write_lines(_line(30_000))  # buffered
    writer.write_message(StateMessage(value={"bookmarks": {}}))  # flushes the buffer first
    sys.stdout.flush()
    messages = [orjson.loads(line) for line in sink.getvalue().splitlines()]
    numbers = [m["record"]["n"] for m in messages if m["type"] == "RECORD"]
    assert numbers == [
        1,
        *range(2, 2 + FLUSH_BYTES // 1000),
        10_000,
        *range(20_000, 20_000 + DIRECT_BYTES // 1000),
        30_000,
    ]
    assert messages[-1]["type"] == "STATE"
