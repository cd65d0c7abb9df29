"""A window of one wallet as the scheduler walks it: one cursor chain, page by page.

The scheduler (scheduler.py) cuts, queues and fetches these jobs; the budget (budget.py)
counts the fills each holds. Both read the same fields, so they live here, apart from
either.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from tap_dome.pagination import DomePaginator
from tap_dome.rows import Rows
from tap_dome.spool import Parked
from tap_dome.windows import Window


class JobState(enum.Enum):
    """Where a window job stands."""

    PENDING = "pending"  # its first page is not in yet
    ACTIVE = "active"  # walking its cursor chain
    DONE = "done"  # every page fetched (some may still wait for the consumer)
    SPLIT = "split"  # replaced by its slices (its children)


@dataclass(eq=False)
class WindowJob:
    """One window of one wallet, walked page by page, one request at a time."""

    wallet: str
    window: Window
    # Place in emission order: the wallet's index in the plan, then slice indexes.
    order: tuple[int, ...]
    state: JobState = JobState.PENDING
    paginator: DomePaginator = field(default_factory=DomePaginator)
    pages: deque[Rows | Parked] = field(default_factory=deque)  # in memory or on disk
    children: list[WindowJob] = field(default_factory=list)
    estimate: int | None = None  # fills expected in the window (a slice: from its cut)
    expected: int = 0  # fills the request in flight is counted for in the budget
    # The API's data clock as known when this window's first request was sent, raised by
    # the window's own fills: the window is complete through min(end, this).
    data_clock: int | None = None

    def seen_through(self) -> int | None:
        """The newest second this window is known complete through (see WindowDone)."""
        return None if self.data_clock is None else min(self.window.end, self.data_clock)
