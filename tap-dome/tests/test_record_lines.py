"""Record lines written in bulk equal the records `build` makes from dicts.

`RecordBuilder.lines` writes a typed page by encoding its decoded structs, and any other
page by splicing each row's JSON text (records.py). These tests hold both to the dict
path, row by row: on every page the simulator serves for its
edge-case wallets, and on rows crafted to need each conversion `build` makes. Each runs
both ways a page can come: its rows decoded one by one in `lines`, and decoded all at once
with the page (`TypedRows`, as the tap does).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
import requests

from dome_simulator import Dataset
from tap_dome.errors import DomeDataError
from tap_dome.page import parse_page
from tap_dome.records import MAX_LEARNED_FIELDS, RecordBuilder, activity_id
from tap_dome.rows import Rows, split_rows
from tap_harness import API_KEY, truth_ids

WALLET = "0x" + "ab" * 20
HEAD = b'{"type":"RECORD","stream":"orders","record":'
TAIL = b',"time_extracted":"2026-12-02T00:00:00+00:00"}'


def _known(stream: str) -> frozenset[str]:
    from importlib import resources

    text = resources.files("tap_dome.schemas").joinpath(f"{stream}.json").read_text()
    return frozenset(json.loads(text)["properties"])


def _expected(builder: RecordBuilder, rows: Rows, wallet: str) -> list[dict[str, Any]]:
    """The dict path: each row parsed, then `build`."""
    return builder.build_page(rows.dicts(), wallet)


def _spliced(builder: RecordBuilder, rows: Rows, wallet: str) -> list[dict[str, Any]]:
    """The bulk path: RECORD lines, each parsed back into its record."""
    seen: set[Any] = set()
    text = builder.lines(rows, wallet, seen, head=HEAD, tail=TAIL)
    lines = text.split(b"\n")
    assert lines[-1] == b""
    assert len(lines) == len(rows) + 1  # one line per row, no more
    messages = [orjson.loads(line) for line in lines[:-1]]
    assert all(m["type"] == "RECORD" and m["stream"] == "orders" for m in messages)
    assert {m["time_extracted"] for m in messages} <= {"2026-12-02T00:00:00+00:00"}
    records = [m["record"] for m in messages]
    assert seen >= {r.get("condition_id") for r in records}
    return records


@pytest.mark.parametrize("typed", [False, True], ids=["rows one by one", "typed pages"])
def test_simulated_pages_splice_to_the_records_build_makes(
    simulator_factory: Any, typed: bool
) -> None:
    sim = simulator_factory(Dataset.standard(page=100, large=600))
    builder = RecordBuilder(_known("orders"))
    decoder = builder.typed_rows("orders") if typed else None
    typed_pages = 0
    spliced = 0
    compared = 0
    ids: set[str] = set()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {API_KEY}"
    for wallet in sim.wallets:
        params: dict[str, Any] = {"user": wallet, "limit": 100}
        while True:
            body = session.get(f"{sim.base_url}/polymarket/orders", params=params).content
            page = parse_page(body, typed=decoder)
            typed_pages += page.rows.typed is not None
            records = _spliced(builder, page.rows, wallet)
            assert records == _expected(builder, page.rows, wallet)
            ids.update(r["order_id"] for r in records)
            spliced += sum(1 for raw in page.rows.raw if builder.splices(raw))
            compared += len(page.rows)
            if not page.has_more or not page.pagination_key:
                break
            params["pagination_key"] = page.pagination_key
    # Both paths ran: most rows are spliced, the simulator's odd ones (fields outside the
    # schema, missing log_index, ...) are built.
    assert ids == truth_ids(sim)
    assert 0.5 * compared < spliced < compared
    if decoder is not None:  # the simulator's field outside the schema is learned
        assert typed_pages > 0
        assert decoder.learned == ["fee_rate_bps"]


ODD_ROWS: list[tuple[str, dict[str, Any]]] = [
    ("plain", {}),
    ("numbers as strings", {"timestamp": "1700000000", "shares": "1000000", "price": "0.5"}),
    ("float timestamp", {"timestamp": 1700000000.0}),
    ("token id as a number", {"token_id": 12345678901234567890}),
    ("block number as a string", {"block_number": "123"}),
    ("log index as a string", {"log_index": "7"}),
    ("no log index", {"log_index": None}),
    ("upper-case tx hash", {"tx_hash": "0xABCDEF" + "0" * 58}),
    ("non-ASCII in the tx hash", {"tx_hash": "0xÉ" + "0" * 63}),
    ("a quote in the tx hash", {"tx_hash": '0x"' + "0" * 63}),
    ("a space in the tx hash", {"tx_hash": "0x 0" + "0" * 62}),
    ("a tx hash that is a number", {"tx_hash": 1234}),
    ("a field outside the schema", {"fee_rate_bps": 12}),
    ("a field named like one the tap adds", {"wallet": "0x" + "cd" * 20}),
    ("an order_id of its own", {"order_id": "x"}),
    ("extra_fields of its own", {"extra_fields": {"a": 1}}),
    ("unicode and quotes in the title", {"title": 'Will "ETH" flip? 🦄 \\ é'}),
    ("integer price", {"price": 1}),
    ("nulls", {"side": None, "title": None, "shares": None, "price": None}),
]


def _fill(**changes: Any) -> dict[str, Any]:
    fill: dict[str, Any] = {
        "token_id": "123",
        "token_label": "Yes",
        "side": "BUY",
        "market_slug": "m",
        "condition_id": "0xC0",
        "shares": 2_000_000,
        "shares_normalized": 2.0,
        "price": 0.25,
        "block_number": 99,
        "log_index": 3,
        "tx_hash": "0x" + "1f" * 32,
        "title": "t",
        "timestamp": 1_700_000_059,
        "order_hash": "0x" + "2e" * 32,
        "user": WALLET,
        "taker": None,
    }
    fill.update(changes)
    return {k: v for k, v in fill.items() if v is not None or k != "log_index"}


# The odd rows whose page still decodes typed: their types fit, a field outside the schema
# is learned rather than failing the page, and one the tap adds is decoded, then set as
# `build` sets it (its own `extra_fields` kept, as `build` keeps it).
TYPED_ODD_ROWS = {
    "plain": [],
    "upper-case tx hash": [],
    "non-ASCII in the tx hash": [],
    "a quote in the tx hash": [],
    "a space in the tx hash": [],
    "a field outside the schema": ["fee_rate_bps"],
    "a field named like one the tap adds": [],
    "an order_id of its own": [],
    "extra_fields of its own": [],
    "unicode and quotes in the title": [],
    "integer price": [],
    "nulls": [],
}


@pytest.mark.parametrize(("case", "changes"), ODD_ROWS, ids=[c for c, _ in ODD_ROWS])
@pytest.mark.parametrize("typed", [False, True], ids=["rows one by one", "typed pages"])
def test_odd_rows_give_the_same_record_either_way(
    case: str, changes: dict[str, Any], typed: bool
) -> None:
    builder = RecordBuilder(_known("orders"))
    decoder = builder.typed_rows("orders") if typed else None
    body = orjson.dumps({"orders": [_fill(), _fill(**changes), _fill()], "pagination": {}})
    rows, _ = split_rows(body, "orders", decoder)
    assert _spliced(builder, rows, WALLET) == _expected(builder, rows, WALLET)
    assert builder.splices(rows.raw[0])  # the plain rows beside it are spliced
    if case == "plain":
        assert builder.splices(rows.raw[1])
    if decoder is not None:
        assert (rows.typed is not None) == (case in TYPED_ODD_ROWS)
        assert decoder.learned == TYPED_ODD_ROWS.get(case, decoder.learned)
        assert rows.stamps == [int(float(v)) for v in rows.values]


def test_typed_pages_learn_a_few_fields_outside_the_schema_then_stop() -> None:
    builder = RecordBuilder(_known("orders"))
    decoder = builder.typed_rows("orders")
    assert decoder is not None
    names = [f"new_field_{i}" for i in range(MAX_LEARNED_FIELDS + 1)]
    body = orjson.dumps({"orders": [_fill(**{name: i}) for i, name in enumerate(names)]})
    rows, _ = split_rows(body, "orders", decoder)
    assert rows.typed is None  # one field too many: the page takes the per-row path
    assert decoder.learned == names[:MAX_LEARNED_FIELDS]
    records = _spliced(builder, rows, WALLET)
    assert records == _expected(builder, rows, WALLET)
    assert [r["extra_fields"] for r in records] == [{n: i} for i, n in enumerate(names)]
    # A page with the learned fields only decodes typed; their rows are built, the rest spliced.
    body = orjson.dumps({"orders": [_fill(new_field_3=1), _fill(), _fill(new_field_0=None)]})
    rows, _ = split_rows(body, "orders", decoder)
    assert rows.typed is not None
    records = _spliced(builder, rows, WALLET)
    assert records == _expected(builder, rows, WALLET)
    assert [r["extra_fields"] for r in records] == [{"new_field_3": 1}, None, {"new_field_0": None}]


def test_typed_rows_follow_the_rows_kept_at_a_window_edge() -> None:
    builder = RecordBuilder(_known("orders"))
    body = orjson.dumps({"orders": [_fill(timestamp=t, log_index=t) for t in (5, 6, 7, 8)]})
    rows, _ = split_rows(body, "orders", builder.typed_rows("orders"))
    kept = rows.where(lambda stamp: stamp % 2 == 0)
    assert kept.typed is not None
    assert [row.log_index for row in kept.typed] == [6, 8]
    assert [r["order_id"].split(":")[1] for r in _spliced(builder, kept, WALLET)] == ["6", "8"]


def test_the_first_rows_of_a_typed_page_are_the_rows_kept() -> None:
    builder = RecordBuilder(_known("orders"))
    body = orjson.dumps({"orders": [_fill(timestamp=t, log_index=t) for t in (9, 8, 7, 6)]})
    rows, _ = split_rows(body, "orders", builder.typed_rows("orders"))
    kept = rows.first(3)
    assert kept.stamps == [9, 8, 7]
    assert kept.typed is not None
    assert [row.log_index for row in kept.typed] == [9, 8, 7]
    assert [r["order_id"].split(":")[1] for r in _spliced(builder, kept, WALLET)] == [
        "9",
        "8",
        "7",
    ]
    assert rows.first(4) is rows


def test_a_page_is_decoded_by_the_writer_once_not_while_it_waits() -> None:
    # A page waiting in the scheduler's memory budget holds its text only: the typed rows
    # (about 1 KB each) are decoded when the writer reads them, once, kept rows only.
    builder = RecordBuilder(_known("orders"))
    decoder = builder.typed_rows("orders")
    assert decoder is not None
    calls: list[bytes | bytearray] = []

    def counting(body: bytes | bytearray) -> list[Any] | None:
        calls.append(body)
        return decoder(body)

    body = orjson.dumps({"orders": [_fill(timestamp=t, log_index=t) for t in (5, 6, 7, 8, 9)]})
    rows, _ = split_rows(body, "orders", counting)
    kept = rows.where(lambda stamp: stamp >= 6).where(lambda stamp: stamp % 2 == 0)
    assert calls == []
    assert kept.newest() == 8  # the timestamps are read without the typed rows
    assert calls == []
    first, again = kept.typed, kept.typed
    assert calls == [body]
    assert first is again
    assert first is not None
    assert [row.log_index for row in first] == [6, 8]
    assert [r["order_id"].split(":")[1] for r in _spliced(builder, kept, WALLET)] == ["6", "8"]
    assert calls == [body]


def test_an_escaped_tx_hash_gives_the_same_record_either_way() -> None:
    # JSON may spell any character as \\uXXXX; the order_id is built from the decoded hash.
    builder = RecordBuilder(_known("orders"))
    plain = orjson.dumps({"orders": [_fill(tx_hash="0xAB" + "0" * 62)]})
    body = plain.replace(b'"0xAB', b'"0x\\u0041B', 1)
    assert body != plain
    rows, _ = split_rows(body, "orders")
    assert builder.splices(rows.raw[0])
    (record,) = _spliced(builder, rows, WALLET)
    assert record == _expected(builder, rows, WALLET)[0]
    assert record["order_id"].startswith("0xab000")


def test_a_pretty_printed_page_is_re_encoded_one_line_per_record() -> None:
    builder = RecordBuilder(_known("orders"))
    body = json.dumps({"orders": [_fill(), _fill(log_index=4)]}, indent=2).encode()
    rows, _ = split_rows(body, "orders")
    assert not rows.one_line
    assert _spliced(builder, rows, WALLET) == _expected(builder, rows, WALLET)


@pytest.mark.parametrize("typed", [False, True], ids=["rows one by one", "typed pages"])
def test_activity_rows_splice_with_their_own_key_and_time(typed: bool) -> None:
    builder = RecordBuilder(
        _known("activity"), key="activity_id", identity=activity_id, time_field="occurred_at"
    )
    decoder = builder.typed_rows("activities") if typed else None
    row = {
        "side": "REDEEM",
        "condition_id": "0xc0",
        "shares": 5,
        "tx_hash": "0x" + "aa" * 32,
        "log_index": 9,
        "timestamp": 1_700_000_000,
    }
    rows, _ = split_rows(orjson.dumps({"activities": [row]}), "activities", decoder)
    assert (rows.typed is not None) == typed
    assert builder.splices(rows.raw[0])
    seen: set[Any] = set()
    (record,) = (orjson.loads(line) for line in builder.lines(rows, WALLET, seen).splitlines())
    assert record == _expected(builder, rows, WALLET)[0]
    assert record["activity_id"] == f"{row['tx_hash']}:9"
    assert record["occurred_at"] == "2023-11-14T22:13:20Z"
    assert seen == {"0xc0"}


def test_bodies_that_are_not_pages_are_refused() -> None:
    with pytest.raises(ValueError, match="truncated"):
        split_rows(b'{"orders": [{"a": 1}', "orders")
    with pytest.raises(ValueError, match="no `orders` list"):
        split_rows(b'{"orders": {"a": 1}}', "orders")
    with pytest.raises(ValueError, match="not an object"):
        split_rows(b'{"orders": [1, 2]}', "orders")
    rows, _ = split_rows(b'{"orders": [{"timestamp": "soon"}]}', "orders")
    with pytest.raises(DomeDataError, match="'soon'"):  # one clear line, never retried
        rows.newest()


def test_fetch_workers_learn_fields_side_by_side() -> None:
    # The fetch workers share one decoder; each learns what its pages carry, once.
    builder = RecordBuilder(_known("orders"))
    decoder = builder.typed_rows("orders")
    assert decoder is not None
    bodies = [orjson.dumps({"orders": [_fill(), _fill(**{f"f{i}": i})]}) for i in range(4)]

    def work(body: bytes) -> list[int]:
        return [len(decoder(body) or []) for _ in range(200)]

    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(work, bodies))
    assert counts == [[2] * 200] * 4  # every page decoded typed, every time
    assert sorted(decoder.learned) == ["f0", "f1", "f2", "f3"]


def _row_texts(rows: list[dict[str, Any]]) -> bytes:
    """A page whose prices are written `0.250`: a spliced row keeps that text, a built or
    encoded one is written `0.25`, so the output tells the paths apart."""
    return orjson.dumps({"orders": rows}).replace(b'"price":0.25', b'"price":0.250')


def test_typed_rows_with_a_learned_field_get_it_moved_to_extra_fields() -> None:
    builder = RecordBuilder(_known("orders"))
    decoder = builder.typed_rows("orders")
    title_object = {"fee_rate_bps": 7}  # the same member nested in a known field's value
    cases: list[dict[str, Any]] = [
        {"fee_rate_bps": 12},  # an API field the schema lacks, after the others
        {"fee_rate_bps": [1, {"a": "b"}], "fee_note": "x"},  # two, one structured
        {"wallet": "0x" + "cd" * 20},  # a field the tap adds: overwritten, as build does
        {"fee_rate_bps": 7, "title": title_object},  # nested too: only the row's own moves
        {"fee_rate_bps": 5, "tx_hash": '0x"' + "0" * 63},  # an id that needs escapes
        {"fee_rate_bps": 1, "extra_fields": {"api": 1}},  # replaced, as build replaces it
    ]
    first = dict(fee_rate_bps=3, **_fill())  # the unknown field first in the object
    body = _row_texts([first] + [_fill(**changes, log_index=i) for i, changes in enumerate(cases)])
    rows, _ = split_rows(body, "orders", decoder)
    assert rows.typed is not None
    text = builder.lines(rows, WALLET, set(), head=HEAD, tail=TAIL)
    assert b'"price":0.250' not in text  # every row encoded from its typed struct
    records = _spliced(builder, rows, WALLET)
    assert records == _expected(builder, rows, WALLET)
    assert records[0]["extra_fields"] == {"fee_rate_bps": 3}
    assert records[2]["extra_fields"] == {"fee_rate_bps": [1, {"a": "b"}], "fee_note": "x"}
    assert records[3]["wallet"] == WALLET
    assert records[4]["title"] == title_object
    assert records[4]["extra_fields"] == {"fee_rate_bps": 7}
    assert records[5]["order_id"] == '0x"' + "0" * 63 + ":4"
    assert records[6]["extra_fields"] == {"fee_rate_bps": 1}
    assert all("fee_rate_bps" not in r for r in records)


def test_a_learned_field_spelled_with_an_escape_is_built() -> None:
    builder = RecordBuilder(_known("orders"))
    decoder = builder.typed_rows("orders")
    split_rows(orjson.dumps({"orders": [_fill(fee_rate_bps=1)]}), "orders", decoder)
    body = _row_texts([_fill(fee_rate_bps=2)]).replace(b'"fee_rate_bps"', b'"fee\\u005frate_bps"')
    rows, _ = split_rows(body, "orders", decoder)
    assert rows.typed is not None
    (line,) = builder.lines(rows, WALLET, set()).splitlines()
    assert b'"price":0.25,' in line  # built: the member could not be found as written
    assert orjson.loads(line)["extra_fields"] == {"fee_rate_bps": 2}


def test_rows_text_is_split_from_the_body_when_first_read_kept_rows_only() -> None:
    # The fetch workers read each row's timestamp only; a row's text is split from the
    # body when the per-row path, the spool or the SDK's loop first asks for it.
    fills = [_fill(timestamp=t, log_index=t, title=f"t{t}") for t in (5, 6, 7, 8)]
    rows, _ = split_rows(orjson.dumps({"orders": fills}), "orders")
    assert len(rows) == 4
    kept = rows.where(lambda stamp: stamp % 2 == 0)
    assert len(kept) == 2
    assert [orjson.loads(bytes(raw))["title"] for raw in kept.raw] == ["t6", "t8"]
    assert [orjson.loads(bytes(raw))["title"] for raw in rows.raw] == ["t5", "t6", "t7", "t8"]
    again = rows.where(lambda stamp: stamp > 6)  # from rows already split
    assert [orjson.loads(bytes(raw))["title"] for raw in again.raw] == ["t7", "t8"]
    assert [r["title"] for r in _spliced(RecordBuilder(_known("orders")), kept, WALLET)] == [
        "t6",
        "t8",
    ]
