"""When the last seconds' requests left, handed from one run of the tap to the next.

Dome counts a key's requests over sliding windows of 1 s and 10 s, whichever process sent
them. A run that starts right after another (a failed `meltano run` retried, a backfill
followed by its first incremental run, two jobs one after the other) would see empty windows
where the server still sees the last run's requests, and its first second at full rate
would bring 429s: 11 to 17 per run, measured on Dev with back-to-back runs. So at exit a run
writes the send times of its last ~10 s here, and the next run's rate limiter starts with
them (`RateLimiter.seed`): it waits where the server's windows are still full.

One small JSON file per API URL, in `<temp dir>/tap-dome-<uid>/` (only if that is a directory
of this user's, not a link), named by a hash of the URL: it holds timestamps only, never the
key, the URL or anything else a request carried. Two runs that end at once merge their
times under a file lock. It is advisory: a file that cannot be read or written is skipped
(logged at debug level) and the run goes on as if there were none; a 429 is still handled
as always (fetch.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no lock, the merge is then best effort
    fcntl = None  # type: ignore[assignment]


# Another URL's file untouched for this long holds nothing any budget still counts.
STALE_SECONDS = 86_400


def ledger_path(api_url: str, directory: str | None = None) -> Path:
    """The file for requests to `api_url` (a trailing slash does not make another one)."""
    digest = hashlib.sha256(api_url.rstrip("/").encode()).hexdigest()[:24]
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    base = Path(directory) if directory is not None else Path(tempfile.gettempdir())
    return base / f"tap-dome-{uid}" / f"requests-{digest}.json"


def load_recent(path: Path, now: float, horizon: float, logger: logging.Logger) -> list[float]:
    """The wall-clock send times in `path` within the last `horizon` seconds before `now`."""
    try:
        if not path.parent.exists():
            return []
        _check_private(path.parent)
        with _locked(path):
            return _recent(_read(path), now, horizon)
    except (OSError, ValueError) as exc:
        logger.debug("Request ledger %s not read (%s): starting with empty windows", path, exc)
        return []


def save_recent(
    path: Path, sent: Iterable[float], now: float, horizon: float, logger: logging.Logger
) -> None:
    """Add `sent` (wall-clock times) to `path`, keeping only the last `horizon` seconds."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check_private(path.parent)
        with _locked(path):
            try:
                earlier = _read(path)
            except (OSError, ValueError):
                earlier = []
            times = _recent([*earlier, *sent], now, horizon)
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".requests-")
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump({"sent": times}, out)
                os.replace(temporary, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
    except OSError as exc:
        logger.debug("Request ledger %s not written (%s)", path, exc)
        return
    _sweep(path.parent, keep=path, now=now)


def _check_private(directory: Path) -> None:
    """The temp directory is shared: use ours only if it is a real directory of this user's,
    not a symlink or another user's planted there (OSError otherwise, so it is skipped)."""
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
        raise OSError(f"{directory} is not a directory of this user's")


def _sweep(directory: Path, keep: Path, now: float) -> None:
    """Delete other URLs' files not written for a day: every simulator a test suite starts
    has a URL of its own, and their files would pile up in the temp directory."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if entry.path in (str(keep), str(keep.with_suffix(".lock"))):
                continue
            if now - entry.stat().st_mtime > STALE_SECONDS:
                os.unlink(entry.path)


def _read(path: Path) -> list[float]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    sent = data.get("sent") if isinstance(data, dict) else None
    if not isinstance(sent, list):
        raise ValueError("not a request ledger")
    return [float(at) for at in sent if isinstance(at, int | float)]


def _recent(times: Iterable[float], now: float, horizon: float) -> list[float]:
    """Sorted, within (now - horizon, now]: a time ahead of the clock is no send of ours."""
    return sorted(at for at in times if now - horizon < at <= now)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path`'s lock file while reading and replacing it."""
    if fcntl is None or not path.parent.is_dir():
        yield
        return
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
