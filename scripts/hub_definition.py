"""Write tap-dome's Meltano Hub definition from what the tap says about itself.

The Hub keeps one YAML file per plugin variant at
``_data/meltano/extractors/<name>/<variant>.yml``. This script builds ours from
``tap-dome --about --format json`` the way the Hub's own tool (hub-utils) does, so that a Hub
PR is a copy of ``hub/`` and the settings never drift from the tap:

- every setting of the tap's config schema, nested objects flattened to dotted names
  (``batch_config.encoding.format``), except free-form maps such as ``stream_maps``;
- secrets become ``kind: password`` with ``sensitive: true``; date-time strings
  ``date_iso8601``; enums ``options``; JSON numbers ``integer`` (as hub-utils does, and Meltano
  4.4.1 cannot serialise a ``decimal`` set from the environment); defaults become ``value``
  except for dates;
- required settings become ``settings_group_validation``;
- capabilities are the tap's, restricted to those the Hub knows;
- keys sorted at every level, settings sorted by name, sequences not indented (the Hub's
  yamllint rules).

The variant is the GitHub owner of the repository URL in tap-dome/pyproject.toml: change the
URLs there (see RELEASING.md) and re-run this script.

Usage: ``python scripts/hub_definition.py [--about FILE] [--check]``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "tap-dome" / "pyproject.toml"
HUB_DIR = ROOT / "hub" / "_data" / "meltano" / "extractors"

# Capabilities the Hub accepts for an extractor (meltano/hub schemas, 2026-08).
HUB_CAPABILITIES = frozenset(
    {
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
)

# What --about cannot say: how the plugin is presented on the Hub.
PRESENTATION: dict[str, Any] = {
    "label": "Dome (Polymarket order fills)",
    "description": "Polymarket order fills of a list of wallets, from the Dome API",
    "domain_url": "https://docs.domeapi.io",
    "keywords": ["api", "meltano_sdk", "polymarket", "prediction markets"],
    "log_parser": "singer-sdk",
    "maintenance_status": "active",
    # hub-utils' rule for a community-maintained SDK-based plugin without usage data.
    "quality": "silver",
    "select": ["orders.*"],
}

# Label words hub-utils spells as acronyms.
ACRONYMS = {
    "Api": "API",
    "Url": "URL",
    "Id": "ID",
    "Ssl": "SSL",
    "Ssh": "SSH",
    "Aws": "AWS",
}


def project() -> dict[str, Any]:
    """The [project] table of tap-dome/pyproject.toml."""
    import tomllib  # here: ruff sorts it differently for Python 3.10 and 3.11 targets

    with PYPROJECT.open("rb") as f:
        return dict(tomllib.load(f)["project"])


def repository_url(meta: dict[str, Any]) -> str:
    """The GitHub repository of the project (its Repository URL, else its Homepage)."""
    urls = meta.get("urls", {})
    url = urls.get("Repository") or urls.get("Homepage")
    if not url or not re.match(r"^https://github\.com/[^/]+/[^/]+$", url):
        raise SystemExit(
            f"tap-dome/pyproject.toml: [project.urls] Repository must be "
            f"https://github.com/<owner>/<repo>, got {url!r}"
        )
    return str(url)


def variant_of(repo_url: str) -> str:
    """hub-utils names the variant after the repository's owner, lowercased."""
    return repo_url.rstrip("/").split("/")[-2].lower()


def read_about(path: Path | None) -> dict[str, Any]:
    """The tap's --about JSON: from a file, or from the tap installed in .venv."""
    if path is not None:
        return dict(json.loads(path.read_text()))
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "tap-dome"), "--about", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out))


def label(name: str) -> str:
    """hub-utils' label for a setting name without a title: words title-cased."""
    words = re.split(r"[_\-. ]+", name)
    return " ".join(ACRONYMS.get(w.title(), w.title()) for w in words if w)


def _types(spec: dict[str, Any]) -> list[str]:
    """The non-null JSON types a property allows (from type, or its oneOf/anyOf branches)."""
    declared = spec.get("type")
    if declared is None:
        branches = spec.get("oneOf") or spec.get("anyOf") or []
        found: list[str] = []
        for branch in branches:
            if isinstance(branch, dict):
                found += [t for t in _types(branch) if t not in found]
        return found
    listed = [declared] if isinstance(declared, str) else list(declared)
    return [t for t in listed if t != "null"]


def _is_group(spec: dict[str, Any]) -> bool:
    """An object of named settings (flattened), not a free-form map (kept whole)."""
    return (
        "object" in _types(spec)
        and bool(spec.get("properties"))
        and not isinstance(spec.get("additionalProperties"), dict)
    )


def _leaves(
    properties: dict[str, Any],
    required: list[str],
    prefix: str = "",
    parent_required: bool = True,
) -> list[tuple[str, dict[str, Any], bool]]:
    """(dotted name, schema, required) of every setting, nested groups flattened.

    A nested setting is required only when its group is too: `batch_config.storage.root` may be
    required inside `batch_config`, but nobody has to set `batch_config`.
    """
    found: list[tuple[str, dict[str, Any], bool]] = []
    for key, spec in properties.items():
        name = f"{prefix}{key}"
        is_required = parent_required and key in required
        if _is_group(spec):
            found += _leaves(spec["properties"], spec.get("required", []), f"{name}.", is_required)
        else:
            found.append((name, spec, is_required))
    return found


def _kind(spec: dict[str, Any]) -> str:
    types = _types(spec)
    if spec.get("secret"):
        return "password"
    if len(types) != 1:
        # A setting of several types (faker_config.seed): Meltano passes it as given.
        return "array" if "array" in types else "string"
    json_type = types[0]
    if json_type == "string":
        if spec.get("format") in ("date-time", "date"):
            return "date_iso8601"
        if spec.get("enum"):
            return "options"
        return "string"
    if json_type == "number":
        return "integer"
    return json_type


def setting(name: str, spec: dict[str, Any], top_level: bool) -> dict[str, Any]:
    """One Hub setting from one property of the tap's config schema."""
    kind = _kind(spec)
    title = spec.get("title") if top_level else None
    entry: dict[str, Any] = {
        "name": name,
        "label": title or label(name),
        "description": " ".join(str(spec.get("description") or "").split()),
        "kind": kind,
    }
    if kind == "password":
        entry["sensitive"] = True
    if kind == "options":
        entry["options"] = [{"label": label(str(v)), "value": v} for v in spec["enum"]]
    if spec.get("default") is not None and kind != "date_iso8601":
        entry["value"] = spec["default"]
    return entry


def definition(about: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The whole Hub definition."""
    schema = about["settings"]
    leaves = _leaves(schema["properties"], schema.get("required", []))
    settings = [setting(name, spec, "." not in name) for name, spec, _ in leaves]
    required = sorted(name for name, _, is_required in leaves if is_required)
    repo = repository_url(meta)
    plugin: dict[str, Any] = {
        **PRESENTATION,
        "name": about["name"],
        "namespace": about["name"].replace("-", "_"),
        "variant": variant_of(repo),
        "pip_url": meta["name"],
        "executable": about["name"],
        "repo": repo,
        "docs": meta["urls"].get("Documentation", repo),
        "capabilities": sorted(set(about["capabilities"]) & HUB_CAPABILITIES),
        "supported_python_versions": sorted(
            about.get("supported_python_versions", []),
            key=lambda v: tuple(int(part) for part in str(v).split(".")),
        ),
        "settings": sorted(settings, key=lambda s: str(s["name"])),
    }
    if required:
        plugin["settings_group_validation"] = [required]
    return plugin


def render(plugin: dict[str, Any]) -> str:
    """YAML as the Hub lints it: keys sorted at every level, sequences not indented."""
    text: str = yaml.safe_dump(
        plugin, sort_keys=True, default_flow_style=False, allow_unicode=True, width=100
    )
    return text


def target_path(plugin: dict[str, Any]) -> Path:
    return HUB_DIR / str(plugin["name"]) / f"{plugin['variant']}.yml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--about", type=Path, help="--about JSON file (default: run the tap)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the committed file is out of step",
    )
    args = parser.parse_args(argv)
    plugin = definition(read_about(args.about), project())
    path = target_path(plugin)
    text = render(plugin)
    if args.check:
        if not path.exists() or path.read_text() != text:
            print(f"{path.relative_to(ROOT)} is out of step: run scripts/hub_definition.py")
            return 1
        return 0
    stale = [p for p in HUB_DIR.glob(f"{plugin['name']}/*.yml") if p != path]
    for old in stale:
        old.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
