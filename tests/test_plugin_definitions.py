"""The Meltano definition of tap-dome must say what the tap itself says (`--about`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SDK_BUILTINS = {
    "stream_maps",
    "stream_map_config",
    "faker_config",
    "flattening_enabled",
    "flattening_max_depth",
    "flattening_max_key_length",
    "flattening_separator",
    "batch_config",
}
# JSON schema type of the tap's setting -> Meltano kinds that carry it faithfully.
KINDS = {
    "string": {"string", "password", "options", "date_iso8601", "file"},
    "integer": {"integer"},
    # Meltano 4.4.1 turns `kind: decimal` from the environment into a Decimal it cannot
    # serialise (see meltano/tap-dome.meltano.yml): whole numbers stay `integer`.
    "number": {"integer", "decimal"},
    "array": {"array"},
    "boolean": {"boolean"},
}


def _about() -> dict[str, Any]:
    out = subprocess.run(
        [str(ROOT / ".venv/bin/tap-dome"), "--about", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out))


def _definition() -> dict[str, Any]:
    text = (ROOT / "meltano/tap-dome.meltano.yml").read_text()
    return dict(yaml.safe_load(text)["plugins"]["extractors"][0])


def test_settings_match_the_tap() -> None:
    about = _about()
    properties = {
        name: spec
        for name, spec in about["settings"]["properties"].items()
        if name not in SDK_BUILTINS
    }
    settings = {s["name"]: s for s in _definition()["settings"]}
    assert set(settings) == set(properties)
    for name, spec in properties.items():
        json_type = spec["type"] if isinstance(spec["type"], str) else spec["type"][0]
        assert settings[name]["kind"] in KINDS[json_type], name
        assert bool(settings[name].get("sensitive")) == bool(spec.get("secret")), name
    assert about["settings"]["required"] == ["api_key"]


def test_capabilities_are_the_tap_s() -> None:
    declared = set(_definition()["capabilities"])
    assert declared <= set(_about()["capabilities"])
    assert {"catalog", "discover", "state", "about", "stream-maps", "batch"} <= declared
