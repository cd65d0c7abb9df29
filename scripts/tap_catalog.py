"""Write or check extract/tap-dome.catalog.json, the catalog Meltano hands the tap on every run.

Meltano runs the tap's discovery before every `meltano run` when the extractor is an editable
install (it caches catalogs only for pinned packages): one more tap process and a catalog
rewrite per run. The extractor's `catalog` extra points at this committed file instead, so
Meltano only copies it. With a catalog file Meltano no longer applies the extractor's
`select` rules at run time, so this script makes the file the way Meltano made it before:
`meltano invoke --dump=catalog tap-dome` with the extra switched off, i.e. the tap's
discovery with the `select` rules of meltano/tap-dome.meltano.yml applied.
tests/test_tap_catalog.py fails when the file is out of step with either.

Usage: .venv/bin/python scripts/tap_catalog.py [--check] [--path FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "extract" / "tap-dome.catalog.json"
MELTANO = ROOT / ".venv" / "bin" / "meltano"
PLUGIN_KINDS = ("extractors", "loaders", "utilities")


def discovered() -> dict[str, Any]:
    """What Meltano would hand the tap without the file: discovery, then `select` applied."""
    with tempfile.TemporaryDirectory(prefix="tap-catalog-") as sys_dir:
        # An isolated Meltano system directory on the project's plugin virtualenvs.
        for kind in PLUGIN_KINDS:
            (Path(sys_dir) / kind).symlink_to(ROOT / ".meltano" / kind, target_is_directory=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TAP_DOME"))}
        env.update(
            MELTANO_SYS_DIR_ROOT=sys_dir,
            MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
            TAP_DOME__CATALOG="",  # the `catalog` extra off: Meltano discovers
            TAP_DOME_API_KEY="unused-discovery-needs-no-key",
        )
        done = subprocess.run(
            [str(MELTANO), "invoke", "--no-install", "--dump=catalog", "tap-dome"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        sys.exit(f"tap_catalog: Meltano's discovery of tap-dome failed:\n{done.stderr[-2000:]}")
    catalog: dict[str, Any] = json.loads(done.stdout)
    return catalog


def render(catalog: dict[str, Any]) -> str:
    return json.dumps(catalog, indent=2, sort_keys=True) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument("--path", type=Path, default=CATALOG)
    args = parser.parse_args()
    want = render(discovered())
    if not args.check:
        args.path.write_text(want)
        print(f"tap_catalog: wrote {args.path}")
        return
    have = args.path.read_text() if args.path.exists() else ""
    if have != want:
        sys.exit(
            f"tap_catalog: {args.path} is not the tap's discovery with the `select` rules of "
            "meltano/tap-dome.meltano.yml applied: rewrite it with "
            "`.venv/bin/python scripts/tap_catalog.py`"
        )
    print(f"tap_catalog: {args.path} matches discovery and `select`")


if __name__ == "__main__":
    main()
