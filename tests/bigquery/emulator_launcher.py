"""Start an emulator with the emulator virtualenv's Python: ``emulator_launcher.py PARENT_PID
{bqemulator|gcs} ARGS...``.

Either emulator exits by itself when the process PARENT_PID (the test run) is gone, so a test run
that is killed leaves nothing behind. bqemulator gets two fidelity fixes:

Both are gaps in bqemulator 1.4.0 that dbt-bigquery's dynamic ``insert_overwrite`` script hits
(valid BigQuery SQL that the emulator mistranslates); nothing else is changed, and the
arguments are bqemulator's CLI's.

1. bqemulator rewrites ``ARRAY_AGG(x IGNORE NULLS)`` to ``ARRAY_AGG(x) FILTER (WHERE x IS NOT
NULL)`` before translating to DuckDB, but with ``DISTINCT`` inside (``ARRAY_AGG(DISTINCT x IGNORE
NULLS)``) it filters on ``DISTINCT x`` and the query fails to parse. dbt-bigquery's dynamic
``insert_overwrite`` emits exactly that, so the fix takes the value out of the DISTINCT.
2. ``SET (v) = (SELECT AS STRUCT array_agg(...))`` must assign the struct's single field to
   ``v`` (BigQuery unpacks the struct into the parenthesised targets); the emulator assigns
   the whole struct when there is one target. The fix unpacks it unless ``v`` is a STRUCT.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from typing import Any


def _exit_with_parent(parent: int) -> None:
    def watch() -> None:
        while True:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass
            time.sleep(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _gcs() -> int:
    from gcp_storage_emulator.__main__ import main as gcs_main

    gcs_main()
    return 0


def _bqemulator() -> int:
    from bqemulator.cli import main as bq_main

    _patch_bqemulator()
    return int(bq_main() or 0)


def _patch_bqemulator() -> None:
    from bqemulator.scripting.interpreter import ScriptInterpreter
    from bqemulator.sql.rewriter import aggregate_variants
    from sqlglot import exp

    _original_filter_target = aggregate_variants._filter_target

    def _filter_target(agg_operand: exp.Expression) -> exp.Expression:
        if isinstance(agg_operand, exp.Distinct) and agg_operand.expressions:
            agg_operand = agg_operand.expressions[0]
        return _original_filter_target(agg_operand)

    aggregate_variants._filter_target = _filter_target

    _original_exec_set = ScriptInterpreter._exec_set
    _SELECT_AS_STRUCT = re.compile(r"^\(\s*select\s+as\s+struct\b", re.IGNORECASE)

    async def _exec_set(self: Any, stmt: Any) -> None:
        if len(stmt.targets) == 1 and _SELECT_AS_STRUCT.match(stmt.source_expr.strip()):
            name = stmt.targets[0]
            declared = self._frames.all_visible().get(name)
            if declared is None or not declared.type_name.upper().startswith("STRUCT"):
                row = await self._eval_expr_row(stmt.source_expr)
                value = row[0] if row else None
                if isinstance(value, dict) and len(value) == 1:  # the struct of one field
                    value = next(iter(value.values()))
                self._frames.set(name, value)
                return
        await _original_exec_set(self, stmt)

    ScriptInterpreter._exec_set = _exec_set


if __name__ == "__main__":
    _exit_with_parent(int(sys.argv[1]))
    which = sys.argv[2]
    sys.argv = [which, *sys.argv[3:]]
    sys.exit(_bqemulator() if which == "bqemulator" else _gcs())
