"""Files a killed run left behind: removed by a later run, never those of a live one.

Between reading a row and loading it, its bytes sit in one of three places. A run that ends
normally empties all three; a `kill -9` leaves files in them, and no STATE covers their rows
(STATE follows loads), so the next run reads those rows again from the API and the leftovers
are only garbage. Each place is swept by the next run, by a rule that cannot touch a run
still in progress (shards of the wallet list may run at the same time on one bucket/folder):

- the loader's own temp folder, ``target-bigquery-<pid>-*`` under `temp_dir`: removed when
  that process is gone;
- the tap's batch folder (the folder of the files BATCH messages name): the loader removes a
  file once its rows are loaded; a file there with the tap's naming for the stream
  (``<prefix><tap>--<stream>-<uuid>-<n>.json[.gz]``) last written more than `leftover_hours`
  ago is removed when the first BATCH of the stream from that folder arrives;
- the bucket: a staged object is deleted once its load job succeeded; objects under
  ``PREFIX/DATASET/`` created more than `leftover_hours` ago are deleted at start-up.

A live run's files are loaded (or removed) within `load_interval_seconds` plus one load job's
`timeout`, minutes; `leftover_hours` (default 6) must stay well above that.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from typing import Any

TEMP_PREFIX = "target-bigquery-"
_TEMP_PID = re.compile(rf"^{re.escape(TEMP_PREFIX)}(\d+)-")
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def temp_dir_name() -> str:
    """The prefix of this process's temp folder: it names the pid, so a sweep can tell."""
    return f"{TEMP_PREFIX}{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def sweep_temp(parent: str, max_age_hours: float, log: logging.Logger) -> int:
    """Remove temp folders of loader processes that are gone; return how many.

    A folder without a pid in its name (loader 0.2) goes once it is `max_age_hours` old.
    """
    removed = 0
    cutoff = time.time() - max_age_hours * 3600
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        match = _TEMP_PID.match(entry.name)
        if match:
            if _alive(int(match.group(1))):
                continue
        elif entry.stat(follow_symlinks=False).st_mtime > cutoff:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed += 1
    if removed:
        log.info("Removed %d temp folder(s) of dead loader runs under %s", removed, parent)
    return removed


def tap_file_pattern(stream: str) -> re.Pattern[str]:
    """The names singer-sdk's and tap-dome's batch writers give a stream's files."""
    return re.compile(rf"--{re.escape(stream)}-{_UUID}-\d+\.jsonl?(\.gz)?$")


def sweep_tap_folder(
    folder: str, stream: str, keep: set[str], max_age_hours: float, log: logging.Logger
) -> int:
    """Remove the stream's batch files in `folder` older than `max_age_hours`; return how many.

    `keep` holds paths this run was handed (never removed here, whatever their age).
    """
    pattern = tap_file_pattern(stream)
    cutoff = time.time() - max_age_hours * 3600
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if not pattern.search(entry.name) or entry.path in keep:
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or entry.stat().st_mtime > cutoff:
                continue
            os.unlink(entry.path)
        except OSError:
            continue  # another run removed it meanwhile
        removed += 1
    if removed:
        log.info(
            "Removed %d batch file(s) of stream %s that a killed run left in %s (rows read"
            " again from the last stored STATE)",
            removed,
            stream,
            folder,
        )
    return removed


def sweep_bucket(bucket: Any, prefix: str, max_age_hours: float, log: logging.Logger) -> int:
    """Delete staged objects under `prefix` created more than `max_age_hours` ago.

    Loaded objects are deleted right after their load, so what is that old is a killed run's
    unloaded file. Errors are logged, not raised: the next run sweeps again.
    """
    cutoff = datetime.now(UTC) - timedelta(hours=max_age_hours)
    removed = 0
    try:
        for blob in bucket.list_blobs(prefix=prefix):
            created = blob.time_created
            if created is not None and created < cutoff:
                blob.delete()
                removed += 1
    except Exception as exc:  # a sweep must never fail the run
        log.warning(
            "Could not sweep old staged files under gs://%s/%s: %s", bucket.name, prefix, exc
        )
    if removed:
        log.info(
            "Deleted %d staged file(s) older than %g h under gs://%s/%s (a killed run's,"
            " never loaded; their rows are read again)",
            removed,
            max_age_hours,
            bucket.name,
            prefix,
        )
    return removed
