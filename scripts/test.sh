#!/usr/bin/env bash
# Everything CI checks: lint and type check, then every test suite (the tap, the simulator,
# the project's end-to-end tests; pytest.ini lists them). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/lint.sh
.venv/bin/pytest "$@"
