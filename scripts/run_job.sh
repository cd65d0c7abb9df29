#!/usr/bin/env bash
# The main job (`make run`, after scripts/bootstrap.sh):
#   meltano run tap-dome target-duckdb dbt-duckdb:build
# With DOME_API_KEY set (shell or .env): the real Dome API, wallets from extract/wallets.txt
# (or TAP_DOME_WALLETS / TAP_DOME_WALLETS_FILE), into $DOME_DUCKDB_PATH (default
# output/dome.duckdb), resuming from the saved per-wallet bookmarks.
# Without it: the bundled Dome API simulator (synthetic data), into output/dome-demo.duckdb,
# a fresh demo each time. Ends with a short summary; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

say() { echo "run_job: $*"; }
fail() {
  echo "" >&2
  echo "run_job: FAILED: $*" >&2
  exit 1
}

[ -x .venv/bin/meltano ] && [ -x .venv/bin/python ] \
  || fail "the project is not set up: run 'make run' (or 'bash scripts/bootstrap.sh' first)"
PY="$ROOT/.venv/bin/python"
started=$(date +%s)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tap-dome-job.XXXXXX")
SIM_PID=""
cleanup() {
  if [ -n "$SIM_PID" ] && kill -0 "$SIM_PID" 2>/dev/null; then
    kill "$SIM_PID" 2>/dev/null || true
    wait "$SIM_PID" 2>/dev/null || true
    say "simulator stopped"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# DOME_API_KEY may also come from .env (read without executing it; the shell wins).
if [ -z "${DOME_API_KEY:-}" ] && [ -f .env ]; then
  DOME_API_KEY=$("$PY" -c 'from dotenv import dotenv_values; print(dotenv_values(".env").get("DOME_API_KEY") or "")')
fi

state_args=()
if [ -n "${DOME_API_KEY:-}" ]; then
  mode=api
  export TAP_DOME_API_KEY="$DOME_API_KEY"
  export DOME_DUCKDB_PATH="${DOME_DUCKDB_PATH:-$ROOT/output/dome.duckdb}"
  if [ -n "${TAP_DOME_WALLETS:-}" ]; then
    wallet_source="TAP_DOME_WALLETS"
    n_wallets=$("$PY" -c 'import json, os; print(len(json.loads(os.environ["TAP_DOME_WALLETS"])))') \
      || fail "TAP_DOME_WALLETS must be a JSON array of addresses, e.g. '[\"0xabc...\"]'"
  else
    export TAP_DOME_WALLETS_FILE="${TAP_DOME_WALLETS_FILE:-$ROOT/extract/wallets.txt}"
    [ -f "$TAP_DOME_WALLETS_FILE" ] || fail "wallet list $TAP_DOME_WALLETS_FILE does not exist"
    wallet_source="$TAP_DOME_WALLETS_FILE"
    n_wallets=$(grep -cvE '^[[:space:]]*(#|$)' "$TAP_DOME_WALLETS_FILE" || true)
  fi
  [ "${n_wallets:-0}" -gt 0 ] \
    || fail "no wallets to read: add addresses (one per line) to $wallet_source"
  say "reading the REAL Dome API (${TAP_DOME_API_URL:-https://api.domeapi.io/v1}) for $n_wallets wallet(s) from $wallet_source"
else
  mode=simulator
  export DOME_DUCKDB_PATH="${DOME_DUCKDB_PATH:-$ROOT/output/dome-demo.duckdb}"
  say "DOME_API_KEY is not set: using the bundled Dome API SIMULATOR (synthetic fills, not real data)."
  say "  Set DOME_API_KEY (in the shell or in .env) to read the real API for extract/wallets.txt."
  "$PY" -m dome_simulator --port 0 --seed "${DOME_SIM_SEED:-7}" --profile demo \
    --wallets-out "$tmp/wallets.txt" >"$tmp/sim.out" 2>"$tmp/sim.log" &
  SIM_PID=$!
  for _ in $(seq 1 300); do
    [ -s "$tmp/sim.out" ] && break
    kill -0 "$SIM_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -s "$tmp/sim.out" ]; then
    tail -n 20 "$tmp/sim.log" >&2 || true
    fail "the simulator did not start (its log is above)"
  fi
  # One JSON line: {"url": ..., "wallets": [...], "api_key": ...}. Secrets stay out of the output.
  eval "$("$PY" - "$tmp/sim.out" <<'PYEOF'
import json, shlex, sys
info = json.loads(open(sys.argv[1]).readline())
print("export TAP_DOME_API_URL=" + shlex.quote(info["url"]))
print("export TAP_DOME_API_KEY=" + shlex.quote(info["api_key"]))
print("export TAP_DOME_WALLETS=" + shlex.quote(json.dumps(info["wallets"])))
print("n_wallets=" + str(len(info["wallets"])))
print("export DOME_SIM_CONTROL_URL=" + shlex.quote(info.get("control_url", "")))
PYEOF
  )"
  unset TAP_DOME_WALLETS_FILE
  say "simulator listening at $TAP_DOME_API_URL with $n_wallets wallets (pid $SIM_PID)"
  # A demo is self-contained: its own DuckDB file and state id, rebuilt from scratch each time.
  rm -f "$DOME_DUCKDB_PATH" "$DOME_DUCKDB_PATH.wal"
  state_args=(--state-id-suffix demo --full-refresh)
fi

case "$DOME_DUCKDB_PATH" in
  /*) ;;
  *) export DOME_DUCKDB_PATH="$ROOT/$DOME_DUCKDB_PATH" ;;
esac
mkdir -p "$(dirname "$DOME_DUCKDB_PATH")"
say "warehouse: $DOME_DUCKDB_PATH"
say "running: meltano run ${state_args[*]:+${state_args[*]} }tap-dome target-duckdb dbt-duckdb:build"
set +e
.venv/bin/meltano run "${state_args[@]}" tap-dome target-duckdb dbt-duckdb:build
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  hint="rerun 'make run': it resumes from the last saved bookmarks"
  [ "$mode" = simulator ] && hint="the demo starts from scratch each time; rerun 'make run'"
  fail "'meltano run tap-dome target-duckdb dbt-duckdb:build' exited with $rc (see its log above); $hint.
  If Meltano says the pipeline is already running after a killed run, wait ~5 minutes or run
  '.venv/bin/meltano run --force ${state_args[*]:+${state_args[*]} }tap-dome target-duckdb dbt-duckdb:build'."
fi

elapsed=$(($(date +%s) - started))
DOME_JOB_MODE=$mode DOME_JOB_ELAPSED=$elapsed DOME_JOB_WALLETS=$n_wallets \
  "$PY" - <<'PYEOF' || fail "the run finished but its output is not as expected (see above)"
import json
import os
import sys
import urllib.request

import duckdb

path = os.environ["DOME_DUCKDB_PATH"]
mode = os.environ["DOME_JOB_MODE"]
if not os.path.exists(path):
    sys.exit(f"run_job: no DuckDB file at {path}")
con = duckdb.connect(path, read_only=True)


def schema_of(table: str) -> str | None:
    row = con.execute(
        "select table_schema from information_schema.tables where table_name = ? "
        "order by table_schema = 'tap_dome' desc limit 1",
        [table],
    ).fetchone()
    return row[0] if row else None


raw_schema = "tap_dome" if schema_of("orders") else None
fct_schema = schema_of("fct_orders")
if fct_schema is None:
    sys.exit(f"run_job: fct_orders was not built in {path} (did dbt run?)")
raw = con.execute(f'select count(*) from "{raw_schema}".orders').fetchone()[0] if raw_schema else 0
fct, fct_wallets = con.execute(
    f'select count(distinct order_id), count(distinct wallet) from "{fct_schema}".fct_orders'
).fetchone()
if mode == "simulator" and fct == 0:
    sys.exit("run_job: the demo loaded no fills: something is wrong (see the log above)")
check = ""
control = os.environ.get("DOME_SIM_CONTROL_URL")
if mode == "simulator" and control:
    # The simulator knows every fill it serves: the demo checks itself against it.
    with urllib.request.urlopen(control + "/truth", timeout=30) as response:
        truth = {row["order_id"] for row in json.load(response)}
    ids = {r[0] for r in con.execute(f'select order_id from "{fct_schema}".fct_orders').fetchall()}
    if ids != truth:
        sys.exit(
            f"run_job: fct_orders differs from the simulator: {len(truth - ids)} fills missing, "
            f"{len(ids - truth)} unexpected"
        )
    check = f" (= the simulator's {len(truth)} fills, checked by order_id)"
extras = []
if schema_of("dim_markets") and schema_of("fct_activity"):
    markets, resolved = con.execute(
        f'select count(*), count(*) filter (where is_resolved) from "{fct_schema}".dim_markets'
    ).fetchone()
    events = con.execute(f'select count(*) from "{fct_schema}".fct_activity').fetchone()[0]
    extras.append(
        f"  markets in dim_markets: {markets} ({resolved} resolved); "
        f"split/merge/redeem events in fct_activity: {events}"
    )
if schema_of("wallet_completeness"):
    audited, short, missing = con.execute(
        "select count(*), count(*) filter (where not is_complete), coalesce(sum(missing_fills), 0) "
        f'from "{fct_schema}".wallet_completeness'
    ).fetchone()
    extras.append(
        f"  completeness (wallet_completeness): {audited} wallet(s) audited, "
        + (f"{short} missing {missing} fill(s)" if short else "none missing a fill")
        if audited
        else "  completeness (wallet_completeness): no audits loaded yet"
    )
secs = int(os.environ["DOME_JOB_ELAPSED"])
py = os.path.join(os.getcwd(), ".venv", "bin", "python")
print()
print(f"== tap-dome: done ({'simulator demo' if mode == 'simulator' else 'Dome API'}) ==")
print(f"  fills loaded (raw rows in tap_dome.orders, duplicates included): {raw}")
print(f"  distinct fills in {fct_schema}.fct_orders: {fct}{check}")
print(f"  wallets: {os.environ['DOME_JOB_WALLETS']} configured, {fct_wallets} with fills")
for line in extras:
    print(line)
print(f"  time taken: {secs // 60} min {secs % 60} s")
print(f"  DuckDB file: {path}")
print("  query it, e.g.:")
print(
    f"    {py} -c \"import duckdb; duckdb.connect('{path}', read_only=True)"
    f".sql('select wallet, count(*) as fills, sum(shares_normalized * price) as usdc "
    f"from {fct_schema}.fct_orders group by 1 order by 2 desc').show()\""
)
PYEOF
