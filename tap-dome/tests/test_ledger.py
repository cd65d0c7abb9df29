"""The request ledger: one run's last send times, counted by the next run's rate limiter."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from tap_dome.ledger import STALE_SECONDS, ledger_path, load_recent, save_recent
from tap_dome.ratelimit import RateLimiter, window_slack

LOG = logging.getLogger("test-ledger")
URL = "https://user:hunter2@api.example.test/v1"


def test_a_saved_send_is_loaded_within_the_horizon_only(tmp_path: Path) -> None:
    path = ledger_path(URL, str(tmp_path))
    now = time.time()
    save_recent(path, [now - 12, now - 5.5, now - 1], now, 10.3, LOG)
    assert load_recent(path, now, 10.3, LOG) == [now - 5.5, now - 1]
    # Three seconds later the oldest of those is out of every window too.
    assert load_recent(path, now + 5, 10.3, LOG) == [now - 1]


def test_two_runs_that_save_merge_their_sends(tmp_path: Path) -> None:
    path = ledger_path(URL, str(tmp_path))
    now = time.time()
    save_recent(path, [now - 3, now - 2], now - 1.5, 10.3, LOG)
    save_recent(path, [now - 1], now, 10.3, LOG)
    assert load_recent(path, now, 10.3, LOG) == [now - 3, now - 2, now - 1]


def test_a_time_ahead_of_the_clock_is_not_a_send(tmp_path: Path) -> None:
    # The clock went back between the runs: what the file says is later than now is no
    # request that left before this run.
    path = ledger_path(URL, str(tmp_path))
    now = time.time()
    save_recent(path, [now - 2, now - 1], now, 10.3, LOG)
    assert load_recent(path, now - 1.5, 10.3, LOG) == [now - 2]
    assert load_recent(path, now - 30, 10.3, LOG) == []


def test_the_file_names_and_holds_neither_the_url_nor_the_key(tmp_path: Path) -> None:
    path = ledger_path(URL, str(tmp_path))
    now = time.time()
    save_recent(path, [now - 1], now, 10.3, LOG)
    assert path.parent.parent == tmp_path
    assert "hunter2" not in str(path)
    assert "example" not in str(path)
    assert json.loads(path.read_text()) == {"sent": [now - 1]}
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    # One file per URL: a trailing slash is the same URL, another host is not.
    assert ledger_path(URL + "/", str(tmp_path)) == path
    assert ledger_path("http://127.0.0.1:1/v1", str(tmp_path)) != path


@pytest.mark.parametrize("content", ["not json", '{"sent": "x"}', "[1, 2]", ""])
def test_a_damaged_ledger_is_skipped(tmp_path: Path, content: str) -> None:
    path = ledger_path(URL, str(tmp_path))
    path.parent.mkdir(parents=True)
    path.write_text(content)
    now = time.time()
    assert load_recent(path, now, 10.3, LOG) == []
    # ... and the next save replaces it.
    save_recent(path, [now - 1], now, 10.3, LOG)
    assert load_recent(path, now, 10.3, LOG) == [now - 1]


def test_a_ledger_that_cannot_be_written_stops_nothing(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the directory would be")
    path = ledger_path(URL, str(blocked))
    now = time.time()
    save_recent(path, [now - 1], now, 10.3, LOG)  # no exception
    assert load_recent(path, now, 10.3, LOG) == []


def test_other_urls_files_untouched_for_a_day_are_swept(tmp_path: Path) -> None:
    path = ledger_path(URL, str(tmp_path))
    other = ledger_path("http://127.0.0.1:1/v1", str(tmp_path))
    recent = ledger_path("http://127.0.0.1:2/v1", str(tmp_path))
    now = time.time()
    save_recent(other, [now - 1], now, 10.3, LOG)
    save_recent(recent, [now - 1], now, 10.3, LOG)
    old = now - STALE_SECONDS - 60
    os.utime(other, (old, old))
    os.utime(recent, (now - 60, now - 60))
    save_recent(path, [now - 1], now, 10.3, LOG)
    assert not other.exists()
    assert recent.exists()
    assert path.exists()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_seeded_sends_hold_the_next_requests_back_as_the_server_would() -> None:
    # The run before sent the whole 10 s budget between 4 and 2 seconds ago: this run's
    # first request may leave only once the oldest of those is out of the 10 s window.
    clock = FakeClock()
    limiter = RateLimiter([(1.0, 100), (10.0, 50)], clock=clock.time, sleep=clock.sleep)
    earlier = [clock.now - 4 + i * 2 / 50 for i in range(50)]
    limiter.seed([*earlier, clock.now + 5])  # a time ahead of the clock is no send
    assert limiter.sent_within(limiter.horizon) == earlier
    waited = limiter.acquire()
    assert waited == pytest.approx(10 + window_slack(10) - 4)


def test_an_unseeded_limiter_lets_the_first_request_go_at_once() -> None:
    clock = FakeClock()
    limiter = RateLimiter([(1.0, 100), (10.0, 50)], clock=clock.time, sleep=clock.sleep)
    assert limiter.acquire() == 0.0
    assert limiter.sent_within(limiter.horizon) == [clock.now]


def test_a_symlink_in_place_of_the_directory_is_not_followed(tmp_path: Path) -> None:
    # The temp directory is shared: a link planted where the ledger's directory would be
    # must not make the tap write (or read) through it.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = ledger_path(URL, str(tmp_path))
    path.parent.symlink_to(elsewhere, target_is_directory=True)
    now = time.time()
    save_recent(path, [now - 1], now, 10.3, LOG)
    assert list(elsewhere.iterdir()) == []
    (elsewhere / path.name).write_text(json.dumps({"sent": [now - 1]}))
    assert load_recent(path, now, 10.3, LOG) == []
