"""What the streams of one tap process share, built once and on first use.

The settings (resolved once), the wallets to read (handles and EOAs resolved to proxy
wallets before the first request for data), the one Dome client (and so one rate limiter),
the helper processes that write pages out, and what the per-wallet streams observed for
the streams that follow them: the markets their rows traded, the API's counts for the
audit, the bookmarks they reached.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from tap_dome.client import DomeClient
from tap_dome.codec import EncoderPool
from tap_dome.concurrency import ConcurrencyGate
from tap_dome.settings import RunSettings
from tap_dome.wallets import resolve_wallets
from tap_dome.windows import Window


@dataclass
class Observations:
    """Filled by the orders and activity streams as they run; read by markets and audits."""

    condition_ids: set[str] = field(default_factory=set)
    # Told of the condition ids each page brings (markets.py reads them ahead of its turn).
    on_new_markets: Callable[[list[str]], None] | None = None
    # wallet -> (window, the API's count for it, when that count came back)
    first_totals: dict[str, tuple[Window, int, float]] = field(default_factory=dict)
    # wallet -> the orders bookmark after this run (None: never read through anything)
    bookmarks: dict[str, int | None] = field(default_factory=dict)
    data_clock: int | None = None
    orders_synced: bool = False

    # Every value `add_condition_ids` was given, as given: a page mostly repeats markets
    # already seen, and one set difference skips them (a page's ids are ~1,000 strings).
    _given: set[Any] = field(default_factory=set, repr=False)

    def add_condition_ids(self, seen: Iterable[Any]) -> None:
        """Note the markets a page traded (its `condition_id` values, lower-cased)."""
        fresh = set(seen).difference(self._given)
        self._given.update(fresh)
        lowered = {c.lower() for c in fresh if c and isinstance(c, str)}
        new = [c for c in lowered if c not in self.condition_ids]
        self.condition_ids.update(new)
        if self.on_new_markets is not None:
            self.on_new_markets(new)  # even none: the reader sends what it can now


class Services:
    """The tap's shared machinery; `settings` is a callable so that discovery needs none."""

    def __init__(
        self,
        settings: Callable[[], RunSettings],
        api_key: str,
        logger: logging.Logger,
        streams: Callable[[], Mapping[str, Any]] = dict,
    ) -> None:
        self._settings = settings
        self._api_key = api_key
        self._logger = logger
        self._streams = streams  # the tap's streams, in the order they sync
        self.observations = Observations()

    def prefetch_after(self, name: str) -> None:
        """Start the fetching of the stream that syncs after `name`, if it is selected and
        reads per wallet (run.py: the end of one stream overlaps the next one's start), and
        let every selected stream after it that reads ahead of its turn begin (markets.py)."""
        names = list(self._streams())
        following = names[names.index(name) + 1 :] if name in names else []
        selected = [s for s in (self._streams()[n] for n in following) if s.selected]
        prefetch = getattr(selected[0], "prefetch", None) if selected else None
        if callable(prefetch):
            prefetch()
        for stream in selected:
            read_ahead = getattr(stream, "read_ahead", None)
            if callable(read_ahead):
                read_ahead()

    @property
    def settings(self) -> RunSettings:
        """The settings, resolved once per run."""
        return self._settings()

    @cached_property
    def client(self) -> DomeClient:
        """The run's one Dome client: every stream's requests share its rate limiter."""
        return DomeClient(self.settings, self._api_key, self._logger)

    @cached_property
    def encoders(self) -> EncoderPool | None:
        """The run's helper processes that write pages out (codec.py), or None for none.

        Started by the first stream that writes in bulk, before its fetch threads start."""
        return EncoderPool.start(self.settings.encode_processes, self._logger)

    @cached_property
    def wallets(self) -> tuple[str, ...]:
        """The proxy wallets to read: handles and EOAs resolved, in the configured order."""
        settings = self.settings
        if not settings.needs_lookup:
            return settings.wallets
        return resolve_wallets(
            settings.wallets,
            as_eoas=settings.wallets_are_eoas,
            client=self.client,
            logger=self._logger,
            width=self.lookups_in_flight,
        )

    @property
    def lookups_in_flight(self) -> int:
        """Independent requests (markets by id, wallet lookups) to keep in flight at once:
        what the tier's rate needs at a guessed latency, within `max_concurrency`."""
        limiter = self.client.limiter
        return ConcurrencyGate(limiter.burst_rate, self.settings.max_concurrency).limit
