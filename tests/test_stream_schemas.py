"""The schemas of the markets, activity and wallet_audits streams against what the API serves.

The simulator serves every field the Dome API documents; each must have a column in its
stream's schema (docs/contracts.md says how nested market fields are flattened), and records
made from served rows by those rules must validate. ``to_market_record`` and
``to_activity_record`` are the contract's rules written out here, independently of the tap.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dome_simulator import ACTIVITY_FIELDS, MARKET_FIELDS, DomeSimulator, activity_id
from dome_simulator.testing import small_standard

SCHEMAS = Path(__file__).resolve().parents[1] / "tap-dome" / "tap_dome" / "schemas"

# nested API fields -> the flat columns docs/contracts.md gives them
FLATTENED = {
    "side_a": ("side_a_token_id", "side_a_label"),
    "side_b": ("side_b_token_id", "side_b_label"),
    "winning_side": ("winning_token_id", "winning_label"),
    "extra_fields": ("price_to_beat", "final_price", "extra_fields"),
}


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.json").read_text())
    jsonschema.Draft7Validator.check_schema(loaded)
    return loaded


@pytest.fixture(scope="module")
def sim() -> Iterator[DomeSimulator]:
    with DomeSimulator(dataset=small_standard(), api_key="schema-key") as running:
        running.advance(seconds=3 * 3600)  # some markets resolve
        yield running


def to_market_record(market: dict[str, Any]) -> dict[str, Any]:
    record = {k: v for k, v in market.items() if k not in FLATTENED}
    for side in ("side_a", "side_b"):
        record[f"{side}_token_id"] = market[side]["id"]
        record[f"{side}_label"] = market[side]["label"]
    winner = market.get("winning_side")
    record["winning_token_id"] = winner["id"] if winner else None
    record["winning_label"] = winner["label"] if winner else None
    extra = dict(market.get("extra_fields") or {})
    record["price_to_beat"] = extra.pop("price_to_beat", None)
    record["final_price"] = extra.pop("final_price", None)
    record["extra_fields"] = extra or None
    return record


def to_activity_record(row: dict[str, Any], wallet: str) -> dict[str, Any]:
    occurred = row["timestamp"]
    return {
        **row,
        "activity_id": activity_id(row),
        "wallet": wallet,
        "occurred_at": f"{occurred}",  # any string: format is not asserted by Draft 7
    }


def test_every_served_market_field_has_a_column(sim: DomeSimulator) -> None:
    properties = schema("markets")["properties"]
    for field in MARKET_FIELDS:
        for column in FLATTENED.get(field, (field,)):
            assert column in properties, f"markets.json lacks {column} (API field {field})"
    validator = jsonschema.Draft7Validator(schema("markets"))
    records = [to_market_record(m) for m in sim.markets_truth()]
    assert any(r["winning_token_id"] for r in records)
    assert any(r["price_to_beat"] is not None for r in records)
    for record in records:
        errors = [e.message for e in validator.iter_errors(record)]
        assert not errors, (record["condition_id"], errors)
        assert set(record) <= set(properties)


def test_every_served_activity_field_has_a_column(sim: DomeSimulator) -> None:
    activity = schema("activity")
    assert set(ACTIVITY_FIELDS) <= set(activity["properties"])
    assert {"activity_id", "wallet", "tx_hash", "timestamp"} <= set(activity["required"])
    validator = jsonschema.Draft7Validator(activity)
    rows = sim.activity_truth()
    assert {r["side"] for r in rows} == {"SPLIT", "MERGE", "REDEEM"}
    for row in rows:
        row.pop("activity_id")
        record = to_activity_record(row, row["user"])
        assert not [e.message for e in validator.iter_errors(record)]
        assert set(record) <= set(activity["properties"])


def test_wallet_audit_records() -> None:
    audits = schema("wallet_audits")
    assert set(audits["required"]) == {
        "audit_id", "wallet", "audited_at", "start_time", "end_time", "api_total", "source",
    }  # fmt: skip
    validator = jsonschema.Draft7Validator(audits)
    good = {
        "audit_id": "0xab:100:200:300", "wallet": "0xab", "audited_at": "2026-01-01T00:00:00Z",
        "start_time": 100, "end_time": 200, "api_total": 7, "source": "limit_1_probe",
    }  # fmt: skip
    assert not list(validator.iter_errors(good))
    assert list(validator.iter_errors({**good, "source": "guess"}))
    assert list(validator.iter_errors({**good, "api_total": None}))


def test_identity_keys_are_documented_in_the_contracts() -> None:
    contracts = (SCHEMAS.parents[2] / "docs" / "contracts.md").read_text()
    for stream, key in (
        ("markets", "condition_id"),
        ("activity", "activity_id"),
        ("wallet_audits", "audit_id"),
    ):
        assert f"## Stream `{stream}`" in contracts
        assert f"Key property `{key}`" in contracts
        assert key in schema(stream)["required"]
