"""The Meltano Hub definition: in step with `tap-dome --about`, and acceptable to the Hub."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.release.artifacts import ROOT, hub_file
from tests.release.hub_rules import lint_problems, schema_problems


def hub_definition() -> dict[str, Any]:
    return dict(yaml.safe_load(hub_file().read_text()))


def test_hub_definition_is_in_step_with_the_tap() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "hub_definition.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hub_definition_passes_the_hub_schema() -> None:
    plugin = hub_definition()
    assert schema_problems(plugin) == []
    path = hub_file()
    assert path.relative_to(ROOT / "hub").parts[:3] == (
        "_data",
        "meltano",
        "extractors",
    )
    assert path.parent.name == plugin["name"] == "tap-dome"
    assert path.stem == plugin["variant"]
    # The variant is the repository's owner, as on every Hub definition.
    assert plugin["repo"].split("/")[-2].lower() == plugin["variant"]


def test_hub_definition_passes_the_hub_yamllint() -> None:
    assert lint_problems(hub_file().read_text()) == []


def test_the_rules_catch_what_the_hub_rejects() -> None:
    """The checks above can fail: each of these breaks one Hub rule."""
    text = hub_file().read_text()
    assert any("key-ordering" in p for p in lint_problems("name: x\ncapabilities: []\n"))
    indented = text.replace("\n- about\n", "\n  - about\n", 1)
    assert indented != text
    assert any("indentation" in p for p in lint_problems(indented))
    plugin = hub_definition()
    assert schema_problems({**plugin, "homepage": "x"}) == ["key 'homepage' is not allowed"]
    assert schema_problems({k: v for k, v in plugin.items() if k != "quality"})[0] == (
        "missing required key 'quality'"
    )
    bad_setting = {
        **plugin,
        "settings": [{"name": "a", "kind": "secret", "secret": True}],
    }
    found = schema_problems(bad_setting)
    assert "setting 'a': key 'secret' is not allowed" in found
    assert any(p.startswith("setting 'a': kind 'secret' not in") for p in found)
    assert "settings_group_validation names unknown setting 'api_key'" in found


def test_hub_settings_say_what_the_tap_says(about: dict[str, Any]) -> None:
    plugin = hub_definition()
    settings = {s["name"]: s for s in plugin["settings"]}
    properties = about["settings"]["properties"]
    for name, spec in properties.items():
        if name in settings:
            entry = settings[name]
        else:
            # A group of settings (batch_config) appears flattened: batch_config.encoding.format.
            assert any(s.startswith(f"{name}.") for s in settings), name
            continue
        if spec.get("secret"):
            assert (entry["kind"], entry.get("sensitive")) == ("password", True), name
        else:
            assert entry["kind"] != "password", name
            assert "sensitive" not in entry, name
        if spec.get("enum"):
            assert [o["value"] for o in entry["options"]] == spec["enum"], name
        if spec.get("format") != "date-time" and spec.get("default") is not None:
            assert entry["value"] == spec["default"], name
    assert plugin["settings_group_validation"] == [sorted(about["settings"]["required"])]
    assert [s["name"] for s in plugin["settings"]] == sorted(settings)
    assert set(plugin["capabilities"]) <= set(about["capabilities"])
    assert {"catalog", "discover", "state", "about", "stream-maps", "batch"} <= set(
        plugin["capabilities"]
    )


def test_hub_definition_marks_an_sdk_tap_published_on_pypi() -> None:
    plugin = hub_definition()
    assert plugin["log_parser"] == "singer-sdk"
    assert "meltano_sdk" in plugin["keywords"]
    assert plugin["pip_url"] == "tap-dome"
    assert plugin["namespace"] == "tap_dome"
    assert plugin["executable"] == "tap-dome"


@pytest.mark.parametrize("name", ["api_key"])
def test_secret_setting_is_never_given_a_value(name: str) -> None:
    entry = next(s for s in hub_definition()["settings"] if s["name"] == name)
    assert "value" not in entry


def test_the_generator_follows_hub_utils_rules() -> None:
    """On a made-up --about: each of the Hub's conversion rules, one setting each."""
    spec = importlib.util.spec_from_file_location(
        "hub_definition", ROOT / "scripts" / "hub_definition.py"
    )
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    about = {
        "name": "tap-x",
        "capabilities": ["catalog", "state", "made-up"],
        "supported_python_versions": ["3.13", "3.9", "3.10"],
        "settings": {
            "required": ["token", "group"],
            "properties": {
                "token": {"type": ["string"], "secret": True, "default": "x"},
                "since": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "default": "2020",
                },
                "rate": {"type": ["number", "null"], "default": 2},
                "mode": {"type": ["string"], "enum": ["a_b", "c"]},
                "maps": {
                    "type": ["object"],
                    "properties": {"__else__": {}},
                    "additionalProperties": {},
                },
                "group": {
                    "type": ["object"],
                    "required": ["inner"],
                    "properties": {"inner": {"type": "integer"}},
                },
                "loose": {
                    "type": ["object", "null"],
                    "required": ["deep"],
                    "properties": {"deep": {"type": "boolean"}},
                },
            },
        },
    }
    meta = {
        "name": "tap-x",
        "urls": {"Repository": "https://github.com/Some-Org/tap-x"},
    }
    plugin = generator.definition(about, meta)
    settings = {s["name"]: s for s in plugin["settings"]}
    assert list(settings) == sorted(settings)
    assert settings["token"]["kind"] == "password"
    assert settings["token"]["sensitive"] is True
    assert (settings["since"]["kind"], "value" in settings["since"]) == (
        "date_iso8601",
        False,
    )
    assert (settings["rate"]["kind"], settings["rate"]["value"]) == ("integer", 2)
    assert settings["mode"]["options"] == [
        {"label": "A B", "value": "a_b"},
        {"label": "C", "value": "c"},
    ]
    assert settings["maps"]["kind"] == "object"  # a free-form map is not flattened
    assert settings["group.inner"]["kind"] == "integer"
    assert settings["loose.deep"]["kind"] == "boolean"
    # Required inside a required group counts; inside an optional group it does not.
    assert plugin["settings_group_validation"] == [["group.inner", "token"]]
    assert plugin["capabilities"] == ["catalog", "state"]
    assert plugin["supported_python_versions"] == ["3.9", "3.10", "3.13"]
    assert plugin["variant"] == "some-org"
    assert lint_problems(generator.render(plugin)) == []
    assert schema_problems(plugin) == []
