#!/usr/bin/env bash
# Create .venv at the repo root with everything the project runs with, from PyPI only.
# Idempotent and quick when nothing changed: a stamp of the requirement files is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
fi

stamp=.venv/.bootstrap-stamp
want=$(cat requirements-dev.txt tap-dome/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing the root environment (meltano, tap-dome, test tools)"
  .venv/bin/uv pip install --quiet --python .venv/bin/python -r requirements-dev.txt -e "./tap-dome[dev]"
  echo "$want" > "$stamp"
fi
