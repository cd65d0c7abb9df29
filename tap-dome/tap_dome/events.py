"""What the fetch scheduler hands the stream, in emission order, one wallet at a time.

Two kinds of event, so a consumer matches on type instead of guessing from shapes:
`FillsFetched` carries one page of fills to emit; `WindowDone` says every fill of a window
has been handed over, and how far the API's data reached when it was read.
"""

from __future__ import annotations

from dataclasses import dataclass

from tap_dome.rows import Rows
from tap_dome.windows import Window


@dataclass(frozen=True, slots=True)
class FillsFetched:
    """One page of fills of the window being emitted (their JSON text: rows.py)."""

    fills: Rows


@dataclass(frozen=True, slots=True)
class WindowDone:
    """Every fill of `window` has been handed over in earlier `FillsFetched` events.

    `seen_through` is the newest second this window is known complete through: the window's
    end, capped by the API's data clock (the newest fill timestamp any response of this run
    had shown when this window was read, its own fills included). None when the run has seen
    no fill at all yet: then nothing proves the API's data reached anywhere, and the bookmark
    must not move.
    """

    window: Window
    seen_through: int | None


Event = FillsFetched | WindowDone
