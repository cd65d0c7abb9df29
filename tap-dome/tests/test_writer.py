"""The buffered Singer writer keeps every line in the order it was given."""

from __future__ import annotations

import io
import sys
from typing import Any

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


def test_a_write_that_takes_only_part_of_a_page_is_finished(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A signal that interrupts a write to a pipe makes the buffered writer take only part
    # of it; the rest must still go out, in order (a cut line breaks the target).
    class Partial(io.BytesIO):
        def write(self, data: Any) -> int:
            return super().write(bytes(data)[:4096])

    class Stdout:
        buffer = Partial()

        def flush(self) -> None:
            pass

    sink = Stdout.buffer
    monkeypatch.setattr(sys, "stdout", Stdout())
    writer = BufferedMessageWriter()
    page = b"".join(_line(n, pad=1000) for n in range(200))
    writer.write_lines(page)
    writer.write_message(StateMessage(value={"bookmarks": {}}))
    assert sink.getvalue().startswith(page)
    assert [orjson.loads(line)["type"] for line in sink.getvalue().splitlines()][-1] == "STATE"
