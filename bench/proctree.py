"""Run a command and measure it whole: wall time and peak RSS summed over its process tree.

A job here is several processes (Meltano, the tap, the loader, dbt; dlt's normalize workers),
so the peak of one process says little: this polls /proc (Linux) for every descendant of the
command and keeps the largest sum seen. Shared pages are counted once per process, as `ps`
and the issue's "summed RSS" do. A child is counted from its second sample on: between fork
and exec a child shows its parent's whole RSS for a moment, which is not memory in use.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Measured:
    """One finished command: how long, how much memory at most, and how it ended."""

    seconds: float
    peak_rss_mib: float
    returncode: int
    # Each process's own peak, by program name (`label`), in MiB: where the summed peak comes from.
    peaks_mib: dict[str, float] = field(default_factory=dict)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process visible in /proc."""
    out: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                # The command name may hold spaces and parentheses: split after the last ")".
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        out[int(entry.name)] = int(fields[1])
    return out


def label(pid: int) -> str:
    """A process's program: the script a Python interpreter runs, else the executable's name."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return "?"
    names = [os.path.basename(a.decode(errors="replace")) for a in argv if a]
    if len(names) > 1 and names[0].startswith("python") and not names[1].startswith("-"):
        return names[1]
    if len(names) > 2 and names[0].startswith("python") and names[1] == "-m":
        return names[2]
    return names[0] if names else "?"


def tree_rss(root: int, seen: set[int] | None = None, per_pid: dict[int, int] | None = None) -> int:
    """Resident bytes of `root` and its descendants right now.

    With `seen` (the pids of the previous sample, updated in place), a descendant counts only
    if it was there in the previous sample too. With `per_pid`, each counted process's
    resident bytes are stored there too.
    """
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, now = 0, [root], set()
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        now.add(pid)
        if seen is not None and pid != root and pid not in seen:
            continue
        try:
            with open(f"/proc/{pid}/statm", "rb") as statm:
                rss = int(statm.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        total += rss
        if per_pid is not None:
            per_pid[pid] = rss
    if seen is not None:
        seen.clear()
        seen.update(now)
    return total


def run_measured(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdout: IO[bytes] | int | None = subprocess.DEVNULL,
    stderr: IO[bytes] | int | None = subprocess.DEVNULL,
    interval: float = 0.05,
) -> Measured:
    """Run `cmd` to the end, sampling its process tree's RSS every `interval` seconds."""
    peak = 0
    peaks: dict[str, int] = {}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=stdout, stderr=stderr)
    done = threading.Event()

    def poll() -> None:
        nonlocal peak
        seen: set[int] = set()
        while not done.is_set():
            per_pid: dict[int, int] = {}
            peak = max(peak, tree_rss(proc.pid, seen, per_pid))
            now: dict[str, int] = {}
            for pid, rss in per_pid.items():
                name = label(pid)
                now[name] = now.get(name, 0) + rss
            for name, rss in now.items():
                peaks[name] = max(peaks.get(name, 0), rss)
            done.wait(interval)

    sampler = threading.Thread(target=poll, daemon=True)
    sampler.start()
    returncode = proc.wait()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    return Measured(
        seconds=seconds,
        peak_rss_mib=peak / MIB,
        returncode=returncode,
        peaks_mib={name: rss / MIB for name, rss in peaks.items()},
    )
