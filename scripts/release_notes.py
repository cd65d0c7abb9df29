"""Check a release tag against the version and the changelog, and print its release notes.

The release workflow runs this before building: a tag ``vX.Y.Z`` must equal the version of
every distribution we publish (their pyproject.toml files are the version sources), and
CHANGELOG.md must have a dated ``## [X.Y.Z] - YYYY-MM-DD`` section, whose body becomes the
GitHub release's notes. One clear error otherwise, before anything is built or uploaded.

Usage: ``python scripts/release_notes.py --tag v0.2.0``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHANGELOG = ROOT / "CHANGELOG.md"
# Every distribution released by a tag; each one's version must be the tag's.
PYPROJECTS = [ROOT / "tap-dome" / "pyproject.toml", ROOT / "dome-simulator" / "pyproject.toml"]


def version_of(pyproject: Path) -> str:
    import tomllib  # here: ruff sorts it differently for Python 3.10 and 3.11 targets

    with pyproject.open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def section(changelog: str, version: str) -> str | None:
    """The body of the changelog's section for ``version`` (None when there is none)."""
    heading = re.compile(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", re.MULTILINE)
    found = heading.search(changelog)
    if found is None:
        return None
    rest = changelog[found.end() :]
    end = re.search(r"^(## |\[[^\]]+\]: )", rest, re.MULTILINE)
    return (rest[: end.start()] if end else rest).strip()


def check(tag: str) -> str:
    """The release notes of ``tag``; SystemExit naming what disagrees."""
    if not re.fullmatch(r"v\d+\.\d+\.\d+([abc]|rc)?\d*", tag):
        raise SystemExit(f"release tag {tag!r} is not of the form vX.Y.Z")
    version = tag[1:]
    for pyproject in PYPROJECTS:
        found = version_of(pyproject)
        if found != version:
            where = pyproject.relative_to(ROOT)
            raise SystemExit(f"tag {tag} but {where} has version {found}: bump one of them")
    notes = section(CHANGELOG.read_text(), version)
    if not notes:
        raise SystemExit(
            f"CHANGELOG.md has no dated section '## [{version}] - YYYY-MM-DD' with entries"
        )
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", required=True, help="the pushed tag, e.g. v0.2.0")
    args = parser.parse_args(argv)
    print(check(args.tag))
    return 0


if __name__ == "__main__":
    sys.exit(main())
