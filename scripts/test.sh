#!/usr/bin/env bash
# Everything CI checks: lint, type check, tap tests, project end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check tap-dome tests bench plugins scripts
.venv/bin/ruff format --check tap-dome tests bench plugins scripts
(cd tap-dome && ../.venv/bin/mypy tap_dome ../scripts ../tests/release)
.venv/bin/pytest tap-dome/tests tests "$@"
