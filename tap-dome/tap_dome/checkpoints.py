"""Per-wallet bookmarks and when to write STATE: the tap's checkpoint policy in one place.

A bookmark (`replication_key_value`, Unix seconds) says "every fill of this wallet at or
before this second has been emitted". It moves only when a whole window has been emitted,
and only as far as the API's data is known to reach (`WindowDone.seen_through`), so a
crash costs at most the window in progress, and fills that the API had not indexed yet
are never skipped by the next run. A STATE message follows a completed window once
`every_seconds` or `every_fills` have passed since the previous one: with ten thousand
tiny wallets, one STATE per wallet would repeat the whole state map ten thousand times.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from decimal import Decimal
from typing import Any

from tap_dome.errors import DomeStateError

STATE_EVERY_SECONDS = 2.0
# A bookmark is a fill's time the API has shown, so it cannot lie far beyond the machine's
# clock; one that does (milliseconds, a typo) would make the wallet read nothing, run after
# run, in silence. The margin leaves room for a machine clock that is days behind.
MAX_BOOKMARK_AHEAD_SECONDS = 30 * 86400


def parse_bookmark(wallet: str, value: Any, now: Callable[[], float] = time.time) -> int | None:
    """A stored bookmark as Unix seconds; a clear error naming the wallet when it is not
    one, or lies more than MAX_BOOKMARK_AHEAD_SECONDS beyond `now`."""
    if value is None:
        return None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int | float):
        number = value
    else:
        try:
            number = float(str(value))
        except ValueError:
            number = None
    if number is None or number != number or number < 0:  # NaN or negative
        raise DomeStateError(
            f"State: the bookmark of wallet {wallet} is {value!r}, not a Unix timestamp in "
            "seconds. Fix it in the state, or clear that wallet's state to re-read it "
            "(`meltano state` commands).",
        )
    if number > now() + MAX_BOOKMARK_AHEAD_SECONDS:
        hint = " (milliseconds? bookmarks are seconds)" if number > now() * 100 else ""
        raise DomeStateError(
            f"State: the bookmark of wallet {wallet} is {value!r}, beyond the machine's "
            f"clock by more than {MAX_BOOKMARK_AHEAD_SECONDS // 86400} days{hint}: the "
            "wallet would read nothing. Fix it in the state, or clear that wallet's state "
            "to re-read it (`meltano state` commands).",
        )
    return int(number)


def check_state(state: Mapping[str, Any], stream: str) -> None:
    """Every stored bookmark of `stream` must be a number: one error naming all that aren't."""
    entry = state.get("bookmarks", {}).get(stream, {})
    partitions = entry.get("partitions", []) if isinstance(entry, Mapping) else []
    bad: list[str] = []
    for partition in partitions if isinstance(partitions, list) else []:
        if not isinstance(partition, Mapping):
            continue
        context = partition.get("context")
        wallet = str(context.get("wallet")) if isinstance(context, Mapping) else "?"
        raw = partition.get("replication_key_value")
        try:
            parse_bookmark(wallet, raw)
        except DomeStateError as exc:
            # The SDK reads numbers in the state as Decimal: shown as written.
            shown = str(raw).lower() if isinstance(raw, Decimal) else repr(raw)
            hint = " (milliseconds?)" if "milliseconds" in str(exc) else ""
            bad.append(f"{wallet}: {shown}{hint}")
    if bad:
        shown = "; ".join(bad[:20]) + (f"; and {len(bad) - 20} more" if len(bad) > 20 else "")
        raise DomeStateError(
            f"State: {len(bad)} bookmark(s) of stream `{stream}` are not Unix timestamps in "
            f"seconds, or lie more than {MAX_BOOKMARK_AHEAD_SECONDS // 86400} days beyond "
            f"the machine's clock ({shown}). Fix them in the state, or clear those wallets' "
            "state to re-read them (`meltano state` commands).",
        )


class Checkpoints:
    """Owns the wallets' state dicts (the SDK's own, mutated in place) and the cadence."""

    def __init__(
        self,
        *,
        replication_key: str,
        every_fills: int,
        every_seconds: float = STATE_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = replication_key
        self._every_fills = max(1, every_fills)
        self._every_seconds = every_seconds
        self._clock = clock
        self._states: dict[str, MutableMapping[str, Any]] = {}
        self._bookmarks: dict[str, int | None] = {}
        self._fills_since = 0
        self._written_at = clock()

    def track(self, states: Iterable[tuple[str, Mapping[str, Any] | None]]) -> None:
        """Read the wallets' stored states (None: none yet); every bookmark is checked before
        anything is read. Bookmarks are written only into states given to `bind`."""
        for wallet, state in states:
            value = None if state is None else state.get("replication_key_value")
            self._bookmarks[wallet] = parse_bookmark(wallet, value)

    def bind(self, wallet: str, state: MutableMapping[str, Any]) -> None:
        """The SDK's own state dict of `wallet`, where its bookmark is written from now on
        (taken when the stream reaches the wallet, so that reading ahead adds no entry)."""
        self._states[wallet] = state

    def bookmark(self, wallet: str) -> int | None:
        """The wallet's bookmark as it stands (None: never read through anything)."""
        return self._bookmarks.get(wallet)

    def fills_emitted(self, count: int) -> None:
        """Count fills handed to the output since the last STATE."""
        self._fills_since += count

    def window_done(self, wallet: str, seen_through: int | None) -> bool:
        """Move the wallet's bookmark to `seen_through` (never back); True if STATE is due."""
        previous = self._bookmarks.get(wallet)
        if seen_through is not None and (previous is None or seen_through > previous):
            self._bookmarks[wallet] = seen_through
            state = self._states[wallet]
            state["replication_key"] = self._key
            state["replication_key_value"] = seen_through
        due = self._clock() - self._written_at >= self._every_seconds
        return due or self._fills_since >= self._every_fills

    def state_written(self) -> None:
        """A STATE message went out: restart the cadence."""
        self._written_at = self._clock()
        self._fills_since = 0
