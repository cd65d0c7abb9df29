#!/usr/bin/env bash
# Everything CI checks: lint, type check, tap tests, project end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check tap-dome dome-simulator tests bench plugins
.venv/bin/ruff format --check tap-dome dome-simulator tests bench plugins
(cd tap-dome && ../.venv/bin/mypy tap_dome)
(cd dome-simulator && ../.venv/bin/mypy dome_simulator)
.venv/bin/pytest tap-dome/tests dome-simulator/tests tests "$@"
