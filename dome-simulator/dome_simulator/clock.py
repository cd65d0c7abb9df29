"""The simulator's data clock: how far the API's indexer has got, apart from the wall clock.

The real API serves a fill only once its indexer has reached it, and the indexer can be
behind the wall clock (minutes when busy, days after an outage), as can a machine whose
clock runs ahead. The data clock ``now()`` models that moment:

- **live** (the default): ``wall clock - lag + offset``. It moves with the wall clock;
  ``advance`` grows ``offset`` (fast-forwards the indexer). With ``lag = 0`` this is the
  simulator's original real-time clock.
- **frozen**: a fixed Unix time that moves only when told (``advance`` or ``set``), for
  tests that must see exactly the same data at two moments.

A fill is served once the data clock has reached both its ``timestamp`` and its
``indexed_at``. The data clock never goes back: once served, a fill stays served.
Fills added while running are stamped at :meth:`DataClock.stamp_now`: the data clock, but
in live mode never after the real wall clock (a clock ahead of the wall only reveals late
fills sooner; it does not invent fills from the future).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["DataClock"]


@dataclass(frozen=True, slots=True)
class _Setting:
    """One immutable clock setting, swapped whole so readers need no lock."""

    lag: float = 0.0
    offset: float = 0.0
    frozen: float | None = None


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, not {value!r}")
    return float(value)


def _unix(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a Unix time in seconds, not {value!r}")
    return float(value)


class DataClock:
    """The moment through which the API has indexed data; see the module docstring."""

    def __init__(
        self,
        lag: float = 0.0,
        frozen_now: float | None = None,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if frozen_now is not None and lag:
            raise ValueError("give data_lag or frozen_now, not both")
        frozen = None if frozen_now is None else _unix("frozen_now", frozen_now)
        self._setting = _Setting(lag=_seconds("data_lag", lag), frozen=frozen)
        self._wall = wall
        self._lock = threading.Lock()

    @property
    def lag(self) -> float:
        """Seconds the live data clock runs behind the wall clock (before ``offset``)."""
        return self._setting.lag

    @property
    def offset(self) -> float:
        """Seconds that ``advance`` has moved the live data clock forward."""
        return self._setting.offset

    @property
    def frozen(self) -> bool:
        """True when the data clock moves only when told."""
        return self._setting.frozen is not None

    def now(self) -> float:
        """The data clock, Unix seconds: fills after it are not served yet."""
        return self._at(self._setting, self._wall())

    def stamp_now(self) -> float:
        """Where fills added now are stamped: the data clock, capped at the wall in live mode."""
        setting, wall = self._setting, self._wall()
        now = self._at(setting, wall)
        return now if setting.frozen is not None else min(now, wall)

    @staticmethod
    def _at(setting: _Setting, wall: float) -> float:
        if setting.frozen is not None:
            return setting.frozen
        return wall - setting.lag + setting.offset

    def advance(self, seconds: float) -> float:
        """Move the data clock forward by ``seconds``; returns the new ``now()``."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0: the data clock never goes back")
        step = _seconds("seconds", seconds)
        with self._lock:
            setting = self._setting
            if setting.frozen is not None:
                self._setting = replace(setting, frozen=setting.frozen + step)
            else:
                self._setting = replace(setting, offset=setting.offset + step)
        return self.now()

    def set(
        self, *, lag: float | None = None, frozen_now: float | None = None, freeze: bool = False
    ) -> float:
        """Switch mode: live with ``lag``, frozen at ``frozen_now``, or ``freeze`` where it is.

        Refuses a change that would move the data clock back (fills already served cannot
        be unserved). Returns the new ``now()``.
        """
        if sum((lag is not None, frozen_now is not None, bool(freeze))) != 1:
            raise ValueError("set exactly one of lag, frozen_now or freeze")
        with self._lock:
            old = self._setting
            wall = self._wall()
            current = self._at(old, wall)
            if freeze:
                new = replace(old, frozen=current)
            elif frozen_now is not None:
                new = replace(old, frozen=_unix("frozen_now", frozen_now))
            else:
                new = replace(old, lag=_seconds("lag", lag), frozen=None)
            target = self._at(new, wall)
            if target < current - 1e-6:
                raise ValueError(
                    f"the data clock never goes back: this would move it from {current:.0f} "
                    f"to {target:.0f}; advance it instead, or choose a later time"
                )
            self._setting = new
        return self.now()

    def describe(self) -> dict[str, Any]:
        """JSON-ready: the data clock, the wall clock, the mode and how far behind it is."""
        setting, wall = self._setting, self._wall()
        now = self._at(setting, wall)
        return {
            "data_now": now,
            "wall_now": wall,
            "mode": "frozen" if setting.frozen is not None else "live",
            "lag": setting.lag,
            "offset": setting.offset,
            "behind_wall": wall - now,
        }
