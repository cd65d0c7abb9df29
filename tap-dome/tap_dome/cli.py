"""The `tap-dome` command: the SDK's CLI, with errors a user can act on in one line.

A mistake in the settings or the state, or an API that stays unreachable once retries are
spent, ends the run with exit code 1 and one `ERROR` line that names the setting, the
wallet or the value, and no traceback. `--log-level debug` (or TAP_DOME_LOGLEVEL=debug)
adds the traceback. Anything tap-dome did not foresee keeps the SDK's full report.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import click
from singer_sdk.exceptions import ConfigValidationError

from tap_dome.errors import DomeError

LOGGER = logging.getLogger("tap-dome")
LOG_LEVEL_ENV = "TAP_DOME_LOGLEVEL"


def _take_log_level(args: list[str]) -> list[str]:
    """Remove `--log-level X` / `--log-level=X` (the SDK has no such option); set the env."""
    rest: list[str] = []
    values = iter(args)
    for arg in values:
        if arg == "--log-level":
            os.environ[LOG_LEVEL_ENV] = next(values, "info")
        elif arg.startswith("--log-level="):
            os.environ[LOG_LEVEL_ENV] = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return rest


def _debug() -> bool:
    level = os.environ.get(LOG_LEVEL_ENV) or os.environ.get("LOGLEVEL") or ""
    return level.strip().lower() == "debug"


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _log_level_problem() -> str | None:
    """Why the log level asked for (--log-level, TAP_DOME_LOGLEVEL) cannot be used."""
    level = os.environ.get(LOG_LEVEL_ENV)
    if level is None or level.strip().lower() in LOG_LEVELS:
        return None
    choices = ", ".join(LOG_LEVELS)
    return f"Log level {level!r} (--log-level or {LOG_LEVEL_ENV}) is not one of {choices}"


def _option_values(args: Sequence[str], option: str) -> list[tuple[int, str]]:
    """Each `option X` / `option=X` in `args`: (index of the option, X)."""
    found = []
    for index, arg in enumerate(args):
        if arg == option and index + 1 < len(args):
            found.append((index, args[index + 1]))
        elif arg.startswith(option + "="):
            found.append((index, arg.split("=", 1)[1]))
    return found


def _config_file_problem(args: Sequence[str]) -> str | None:
    """Why a `--config` file cannot be used, checked before the SDK reads it."""
    for _, path in _option_values(args, "--config"):
        if path == "ENV":  # the SDK's: settings from the environment
            continue
        problem = _json_object_file("Config", path)
        if problem:
            return problem
    return None


def _json_object_file(kind: str, path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        return f"{kind} file {path!r} cannot be read: {exc.strerror or exc}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
        return f"{kind} file {path!r} is not valid JSON ({where})"
    if not isinstance(value, dict):
        return f"{kind} file {path!r} must hold a JSON object, got {type(value).__name__}"
    return None


def _without_empty_state(args: list[str]) -> list[str]:
    """`args` without a `--state` whose file is empty: that means "no state yet" (what an
    orchestrator may hand over), and the SDK would fail to parse it."""
    for index, path in _option_values(args, "--state"):
        try:
            empty = not open(path, encoding="utf-8").read().strip()  # noqa: SIM115
        except OSError:
            return args  # named by `_state_file_problem`
        if empty:
            LOGGER.info("State file %r is empty: starting without state.", path)
            width = 2 if args[index] == "--state" else 1
            return args[:index] + args[index + width :]
    return args


def _state_file_problem(args: Sequence[str]) -> str | None:
    """Why the `--state` file cannot be used, checked before the SDK reads it."""
    path = None
    for _, value in _option_values(args, "--state"):
        path = value
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        return f"State file {path!r} cannot be read: {exc.strerror or exc}"
    if not text.strip():
        return None  # an empty state file means "no state" (`_without_empty_state`)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return (
            f"State file {path!r} is not valid JSON ({exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}). Fix it or start without state."
        )
    if not isinstance(value, dict):
        return f"State file {path!r} must hold a JSON object, got {type(value).__name__}"
    return None


def _flush_output() -> None:
    """Every message the tap buffered goes out before the process ends (writer.py)."""
    from tap_dome.writer import flush_all

    flush_all()


def _fail(message: str, exc: BaseException | None = None) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s %(message)s")
    if exc is not None and _debug():
        LOGGER.error(message, exc_info=exc)
    else:
        LOGGER.error(message)
    _flush_output()
    raise SystemExit(1)


def run(tap_class: Any, argv: Sequence[str] | None = None) -> None:
    """Run `tap_class`'s CLI with `argv` (default: the process arguments)."""
    args = _take_log_level(list(sys.argv[1:] if argv is None else argv))
    problem = _log_level_problem() or _config_file_problem(args) or _state_file_problem(args)
    if problem:
        _fail(problem)
    args = _without_empty_state(args)
    try:
        code = tap_class.cli.main(args=args, prog_name="tap-dome", standalone_mode=False)
        _flush_output()
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        raise SystemExit(1) from None
    except DomeError as exc:
        _fail(str(exc), exc)
    except ConfigValidationError as exc:
        _fail("; ".join(exc.errors) or str(exc), exc)
    except SystemExit:
        raise
    except Exception:
        sys.stdout.flush()
        raise
    if isinstance(code, int) and code:
        raise SystemExit(code)
