"""Tests only: hold the loader at one step, so that a test can kill it exactly there.

``TARGET_BIGQUERY_DOME_TEST_PAUSE="STEP=SECONDS[@N|@/PATH],..."`` holds the N-th (default: the
first) and every later occurrence of STEP for SECONDS, or with ``@/PATH`` every occurrence once
the file PATH exists (so a test can pick the moment, e.g. after a STATE was stored), logging
``test pause STEP of WHAT N`` first:

- ``before_upload``: a staged file is written locally, not uploaded yet;
- ``before_load``: the files are uploaded, their load job not started;
- ``in_load``: BigQuery accepted the load job, the loader has not seen its result;
- ``after_load``: the load job succeeded, the STATE after it not written yet.

Unset (always, outside tests) nothing is held and this costs one dict lookup per file.
"""

from __future__ import annotations

import logging
import os
import time

TEST_PAUSE_ENV = "TARGET_BIGQUERY_DOME_TEST_PAUSE"


def _pauses() -> dict[str, tuple[float, str]]:
    spec = os.environ.get(TEST_PAUSE_ENV, "")
    pauses = {}
    for item in spec.split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            seconds, _, when = value.partition("@")
            pauses[key.strip()] = (float(seconds), when or "1")
    return pauses


PAUSES = _pauses()


def hold(step: str, what: str, number: int, logger: logging.Logger) -> None:
    """Sleep here if the test asked for it (see the module's docstring)."""
    seconds, when = PAUSES.get(step, (0.0, ""))
    if not seconds:
        return
    due = os.path.exists(when) if when.startswith("/") else number >= int(when)
    if due:
        logger.warning("test pause %s of %s %d: %.1f s", step, what, number, seconds)
        time.sleep(seconds)
