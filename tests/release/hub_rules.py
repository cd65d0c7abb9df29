"""The Meltano Hub's rules for an extractor definition, checked offline.

Written down from meltano/hub (2026-08): its JSON schema for extractors (allowed and required
keys, enums) and its yamllint configuration (hub/.yamllint.yaml here). Kept apart from
scripts/hub_definition.py on purpose: the generator must not grade its own output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yamllint import linter
from yamllint.config import YamlLintConfig

ROOT = Path(__file__).resolve().parents[2]
YAMLLINT_CONFIG = ROOT / "hub" / ".yamllint.yaml"

REQUIRED = {"name", "namespace", "variant", "quality"}
ALLOWED = {
    "name",
    "pip_url",
    "variant",
    "namespace",
    "label",
    "description",
    "executable",
    "settings",
    "docs",
    "repo",
    "logo_url",
    "hidden",
    "python",
    "settings_group_validation",
    "commands",
    "capabilities",
    "metadata",
    "schema",
    "select",
    "maintenance_status",
    "quality",
    "domain_url",
    "keywords",
    "requires",
    "definition",
    "next_steps",
    "settings_preamble",
    "usage",
    "prereq",
    "supported_python_versions",
    "log_parser",
}
QUALITY = {"gold", "silver", "bronze", "unknown"}
MAINTENANCE_STATUS = {"active", "beta", "development", "inactive", "unknown"}
CAPABILITIES = {
    "properties",
    "catalog",
    "discover",
    "state",
    "about",
    "stream-maps",
    "schema-flattening",
    "activate-version",
    "batch",
    "test",
    "log-based",
    "structured-logging",
}
SETTING_KEYS = {
    "name",
    "aliases",
    "label",
    "value",
    "placeholder",
    "kind",
    "description",
    "tooltip",
    "documentation",
    "env",
    "value_processor",
    "oauth",
    "options",
    "docs",
    "hidden",
    "sensitive",
}
KINDS = {
    "oauth",
    "hidden",
    "password",
    "date_iso8601",
    "file",
    "email",
    "integer",
    "options",
    "object",
    "array",
    "boolean",
    "string",
    "decimal",
}


def schema_problems(plugin: dict[str, Any]) -> list[str]:
    """What the Hub's schema would reject (empty when the definition passes)."""
    found = [f"missing required key {k!r}" for k in sorted(REQUIRED - set(plugin))]
    found += [f"key {k!r} is not allowed" for k in sorted(set(plugin) - ALLOWED)]
    if plugin.get("quality") not in QUALITY:
        found.append(f"quality {plugin.get('quality')!r} not in {sorted(QUALITY)}")
    status = plugin.get("maintenance_status")
    if status is not None and status not in MAINTENANCE_STATUS:
        found.append(f"maintenance_status {status!r} not in {sorted(MAINTENANCE_STATUS)}")
    found += [
        f"capability {c!r} is not one the Hub knows"
        for c in plugin.get("capabilities", [])
        if c not in CAPABILITIES
    ]
    names = set()
    for setting in plugin.get("settings", []):
        name = setting.get("name")
        if not name:
            found.append(f"setting without a name: {setting}")
            continue
        names.add(name)
        found += [
            f"setting {name!r}: key {k!r} is not allowed"
            for k in sorted(set(setting) - SETTING_KEYS)
        ]
        if "kind" in setting and setting["kind"] not in KINDS:
            found.append(f"setting {name!r}: kind {setting['kind']!r} not in {sorted(KINDS)}")
    for group in plugin.get("settings_group_validation", []):
        found += [
            f"settings_group_validation names unknown setting {n!r}"
            for n in group
            if n not in names
        ]
    return found


def lint_problems(text: str) -> list[str]:
    """What the Hub's yamllint reports (key ordering, sequence indentation, ...)."""
    config = YamlLintConfig(file=str(YAMLLINT_CONFIG))
    return [f"{p.line}:{p.column} {p.message} ({p.rule})" for p in linter.run(text, config)]
