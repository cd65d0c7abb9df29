"""The simulator's clock: the real wall clock plus an offset that only moves forward.

The offset decides which late-indexed fills are visible; it never makes the API
serve fills stamped after the real wall clock (the tap's walk ends there).
"""

from __future__ import annotations

import threading
import time

__all__ = ["SimClock"]


class SimClock:
    """``now() == time.time() + offset``; ``advance`` grows the offset."""

    def __init__(self, offset: float = 0.0) -> None:
        self._offset = float(offset)
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        """Seconds the simulator runs ahead of the wall clock."""
        return self._offset

    def now(self) -> float:
        """Simulator time, Unix seconds."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Move simulator time forward and return the new ``now()``."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0: the simulator's clock never goes back")
        with self._lock:
            self._offset += seconds
        return self.now()
