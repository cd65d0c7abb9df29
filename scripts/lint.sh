#!/usr/bin/env bash
# Lint and type-check the whole repository with its one configuration (pyproject.toml at the
# root): ruff over every Python directory, mypy --strict over the files it lists.
set -euo pipefail
cd "$(dirname "$0")/.."
PY_DIRS=(tap-dome dome-simulator tests bench plugins scripts)
.venv/bin/ruff check "${PY_DIRS[@]}"
.venv/bin/ruff format --check "${PY_DIRS[@]}"
.venv/bin/mypy
