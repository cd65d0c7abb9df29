#!/usr/bin/env bash
# Set up everything the project runs with, from PyPI only (nothing from Meltano Hub):
#   1. .venv at the repo root: meltano, tap-dome and dome-simulator (editable), duckdb, test tools;
#   2. `meltano install`: one virtualenv per plugin under .meltano/ (tap-dome, target-duckdb,
#      dbt-duckdb, and the BigQuery plugins when meltano/bigquery.meltano.yml defines them).
# Idempotent and quick when nothing changed: each step keeps a stamp of what it was built from.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "bootstrap: ERROR: $*" >&2; exit 1; }

# Install bytecode with the packages: where PYTHONDONTWRITEBYTECODE is set (as on this
# project's CI machines) nothing is cached at import, and every start of meltano, the tap,
# the loaders and dbt would compile its imports again (meltano --version: 2.7 s -> 1.0 s).
export UV_COMPILE_BYTECODE=1

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
command -v "$PY" >/dev/null 2>&1 || fail "no Python found (wanted python3.11; set PYTHON=/path/to/python3.11)"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv || fail "could not create .venv with $PY"
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8" \
    || fail "could not install uv into .venv (is PyPI reachable?)"
fi

stamp=.venv/.bootstrap-stamp
want=$(cat requirements-dev.txt tap-dome/pyproject.toml dome-simulator/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing the root environment (meltano, tap-dome, dome-simulator, test tools)"
  .venv/bin/uv pip install --quiet --python .venv/bin/python -r requirements-dev.txt \
    -e "./tap-dome[dev]" -e "./dome-simulator[dev]" \
    || fail "installing the root environment failed (see the uv output above)"
  echo "$want" > "$stamp"
fi

# Meltano plugins. The stamp lives in .meltano/, so removing .meltano/ reinstalls them.
# The plugins' own sources are editable installs (tap-dome, the target-duckdb wrapper): code
# changes need no reinstall; changes to their pyproject.toml or to the plugin definitions do.
plugin_stamp=.meltano/.bootstrap-plugins-stamp
plugin_want=$(
  {
    echo "python: $(.venv/bin/python --version 2>&1)"
    cat meltano.yml
    find meltano plugins -type f \( -name '*.yml' -o -name '*.yaml' -o -name '*.toml' -o -name '*.lock' -o -name '*.txt' \) \
      -not -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
    sha256sum tap-dome/pyproject.toml
  } | sha256sum | cut -d' ' -f1
)
# The executables of the default pipeline must be there too (a venv removed by hand).
plugins_ok=true
for exe in extractors/tap-dome/venv/bin/tap-dome \
  loaders/target-duckdb/venv/bin/target-duckdb-dome \
  utilities/dbt-duckdb/venv/bin/dbt-duckdb-dome; do
  [ -x ".meltano/$exe" ] || plugins_ok=false
done
if ! $plugins_ok || [ ! -f "$plugin_stamp" ] || [ "$(cat "$plugin_stamp")" != "$plugin_want" ]; then
  echo "bootstrap: installing the Meltano plugins (meltano install)"
  start=$(date +%s)
  # Plugin virtualenvs use the same interpreter as .venv (Python 3.11).
  MELTANO_SEND_ANONYMOUS_USAGE_STATS=false \
    .venv/bin/meltano --log-level=warning install \
    || fail "meltano install failed; the pip/uv log of each plugin is under .meltano/logs/pip/"
  mkdir -p .meltano
  # Meltano's installs may not compile bytecode (see UV_COMPILE_BYTECODE above): do it.
  for venv in .meltano/*/*/venv; do
    "$venv/bin/python" -m compileall -q -j 0 "$venv/lib" >/dev/null 2>&1 || true
  done
  echo "$plugin_want" > "$plugin_stamp"
  echo "bootstrap: plugins installed in $(( $(date +%s) - start )) s"
fi

# The project's own sources are editable installs, which uv does not compile: do it here
# (quick; a stale .pyc is ignored by Python, never used).
.venv/bin/python -m compileall -q -j 0 tap-dome/tap_dome plugins >/dev/null 2>&1 || true
