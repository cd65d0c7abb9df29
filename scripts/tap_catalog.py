"""Write or check extract/tap-dome.catalog.json, the catalog Meltano hands the tap on every run.

Meltano runs the tap's discovery before every `meltano run` when the extractor is an editable
install (it caches catalogs only for pinned packages): one more tap process and a catalog
rewrite per run. The extractor's `catalog` extra points at this committed file instead, so
Meltano only copies it. The file is the tap's own discovery (`tap-dome --discover`) with every
stream and field selected (what `select: ["orders.*"]` gave); tests/test_tap_catalog.py fails
when it is out of step with the tap.

Usage: .venv/bin/python scripts/tap_catalog.py [--check] [--path FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "extract" / "tap-dome.catalog.json"
TAP = ROOT / ".venv" / "bin" / "tap-dome"


def discovered() -> dict[str, Any]:
    """The tap's discovery output (it needs no settings to describe its streams)."""
    done = subprocess.run(
        [str(TAP), "--discover"], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if done.returncode != 0:
        sys.exit(f"tap_catalog: `tap-dome --discover` failed:\n{done.stderr[-2000:]}")
    catalog: dict[str, Any] = json.loads(done.stdout)
    return catalog


def select_all(catalog: dict[str, Any]) -> dict[str, Any]:
    """Every stream and every field selected, stated explicitly in the metadata."""
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["metadata"].get("inclusion") != "unsupported":
                entry["metadata"]["selected"] = True
    return catalog


def render(catalog: dict[str, Any]) -> str:
    return json.dumps(catalog, indent=2, sort_keys=True) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument("--path", type=Path, default=CATALOG)
    args = parser.parse_args()
    want = render(select_all(discovered()))
    if not args.check:
        args.path.write_text(want)
        print(f"tap_catalog: wrote {args.path}")
        return
    have = args.path.read_text() if args.path.exists() else ""
    if have != want:
        sys.exit(
            f"tap_catalog: {args.path} is not the tap's discovery (streams or schema changed): "
            "regenerate it with `.venv/bin/python scripts/tap_catalog.py`"
        )
    print(f"tap_catalog: {args.path} matches `tap-dome --discover`")


if __name__ == "__main__":
    main()
