"""Bad input, tried as a new user would: one clear line, no traceback, no request, no state."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dome_simulator import Dataset
from tap_harness import API_KEY, TAP, run_tap, tap_config, tap_env, truth_ids

WALLET = "0x" + "ab" * 20


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "ERROR" in line]


def _assert_one_clear_failure(run: Any, *needles: str) -> None:
    assert run.returncode == 1, (run.returncode, run.stderr[-2000:])
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    errors = _error_lines(run.stderr)
    assert len(errors) == 1, run.stderr[-2000:]
    for needle in needles:
        assert needle in errors[0], (needle, errors)
    assert not run.states, "no STATE may be written"
    assert API_KEY not in run.stderr + run.stdout


def _tap_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The tap's command line with exactly `args`."""
    return subprocess.run(
        [*TAP, *args], capture_output=True, text=True, env=tap_env(), check=False, timeout=60
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sim(simulator_factory: Any) -> Any:
    return simulator_factory(Dataset.custom([40, 5], seed=21))


def test_empty_wallet_list_fails_naming_the_settings(tmp_path: Path, sim: Any) -> None:
    run = run_tap(tmp_path, tap_config(sim, wallets=[]))
    _assert_one_clear_failure(run, "`wallets`", "`wallets_file`")
    empty = tmp_path / "wallets.txt"
    empty.write_text("# nobody yet\n")
    run = run_tap(tmp_path, tap_config(sim, wallets=[], wallets_file=str(empty)))
    _assert_one_clear_failure(run, "`wallets_file`", "wallets.txt")
    assert sim.stats()["requests"] == 0


def test_api_url_that_is_not_a_url(tmp_path: Path, sim: Any) -> None:
    run = run_tap(tmp_path, tap_config(sim, api_url="not a url"))
    _assert_one_clear_failure(run, "`api_url`", "'not a url'")


@pytest.mark.parametrize(
    ("value", "shown"),
    [("yesterday", "'yesterday'"), (1796292810123, "milliseconds"), (1e300, "1e+300")],
)
def test_bookmark_that_is_not_a_number_names_wallet_and_value(
    tmp_path: Path, sim: Any, value: Any, shown: str
) -> None:
    # Milliseconds, or a number far beyond the clock: the wallet would read nothing, run
    # after run, in silence.
    wallet = sim.wallets[1]
    state = {
        "bookmarks": {
            "orders": {
                "partitions": [
                    {
                        "context": {"wallet": wallet},
                        "replication_key": "timestamp",
                        "replication_key_value": value,
                    }
                ]
            }
        }
    }
    run = run_tap(tmp_path, tap_config(sim), state=state)
    _assert_one_clear_failure(run, wallet, shown)
    assert sim.stats()["requests"] == 0
    assert not run.records


def test_state_file_that_is_not_json(tmp_path: Path, sim: Any) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(tap_config(sim)))
    state = tmp_path / "state.json"
    state.write_text('{"bookmarks": {"orders": ')
    done = _tap_cli("--config", str(config), "--state", str(state))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = _error_lines(done.stderr)
    assert errors, done.stderr
    assert "state.json" in errors[0]
    assert "not valid JSON" in errors[0]
    assert '"STATE"' not in done.stdout
    assert sim.stats()["requests"] == 0


def test_unreachable_api_after_retries_is_one_line_and_debug_shows_the_traceback(
    tmp_path: Path, sim: Any
) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    config = tap_config(sim, api_url=url, max_retries=1, wallets=[WALLET])
    run = run_tap(tmp_path, config)
    _assert_one_clear_failure(run, "failed 2 times", "max_retries")
    config_path = tmp_path / "config.json"
    done = _tap_cli("--config", str(config_path), "--log-level", "debug")
    assert done.returncode == 1
    assert "Traceback" in done.stderr


@pytest.mark.parametrize(
    ("content", "needle"),
    [(None, "cannot be read"), ("nope", "not valid JSON"), ("[1]", "JSON object")],
)
def test_config_file_that_cannot_be_used_is_one_line(
    tmp_path: Path, content: str | None, needle: str
) -> None:
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content)
    done = _tap_cli("--config", str(path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = _error_lines(done.stderr)
    assert len(errors) == 1, done.stderr
    assert "config.json" in errors[0]
    assert needle in errors[0]


def test_unknown_log_level_is_one_line(tmp_path: Path, sim: Any) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(tap_config(sim)))
    done = _tap_cli("--config", str(config), "--log-level", "bogus")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "'bogus'" in done.stderr
    assert "--log-level" in done.stderr
    assert sim.stats()["requests"] == 0


def test_an_empty_state_file_means_no_state_yet(tmp_path: Path, sim: Any) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(tap_config(sim)))
    state = tmp_path / "state.json"
    state.write_text("")
    done = _tap_cli("--config", str(config), "--state", str(state))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines() if '"RECORD"' in line]
    assert {r["record"]["order_id"] for r in records if r["stream"] == "orders"} == truth_ids(sim)


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        ({"page_size": 0}, ("`page_size`", "TAP_DOME_PAGE_SIZE", "minimum of 1")),
        ({"api_tier": "gold"}, ("`api_tier`", "TAP_DOME_API_TIER", "'gold'")),
    ],
)
def test_settings_the_schema_refuses_are_one_line_naming_setting_and_variable(
    tmp_path: Path, sim: Any, overrides: dict[str, Any], needles: tuple[str, ...]
) -> None:
    run = run_tap(tmp_path, tap_config(sim, **overrides))
    _assert_one_clear_failure(run, *needles)
    assert sim.stats()["requests"] == 0


def test_a_misspelt_setting_is_named_with_the_nearest_one(tmp_path: Path, sim: Any) -> None:
    run = run_tap(tmp_path, tap_config(sim, page_sise=100))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Setting `page_sise` is not a tap-dome setting" in run.stderr
    assert "did you mean `page_size`?" in run.stderr
    assert set(run.ids) == truth_ids(sim)
