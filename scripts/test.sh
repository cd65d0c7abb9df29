#!/usr/bin/env bash
# Everything CI checks: lint, type check, tap tests, project end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check tap-dome tests bench plugins
.venv/bin/ruff format --check tap-dome tests bench plugins
(cd tap-dome && ../.venv/bin/mypy tap_dome)
.venv/bin/pytest tap-dome/tests tests "$@"
