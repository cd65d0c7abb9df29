"""tap-dome: Polymarket order fills from the Dome API, as a Singer tap."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import Any

from singer_sdk import Stream, Tap
from typing_extensions import override

from tap_dome.audits import WalletAuditsStream
from tap_dome.checkpoints import check_state
from tap_dome.markets import MarketsStream
from tap_dome.sdk_hooks import TapHooks
from tap_dome.services import Services
from tap_dome.settings import CONFIG_SCHEMA, RunSettings, resolve
from tap_dome.streams import ActivityStream, OrdersStream
from tap_dome.writer import BufferedMessageWriter

SYNC_ORDER = ("orders", "activity", "wallet_audits", "markets")


class TapDome(TapHooks, Tap):
    """Every fill of a list of wallets, resumable per wallet, concurrent within the tier."""

    name = "tap-dome"
    # msgspec serialization, buffered: one write per page of fills instead of one per fill.
    message_writer_class = BufferedMessageWriter
    config_jsonschema = CONFIG_SCHEMA
    # The tap's idea of "now" (Unix seconds): the default end of a run's reads. Tests put
    # the machine's clock ahead of the API's data by overriding it.
    clock: Callable[[], float] = staticmethod(time.time)

    @cached_property
    def settings(self) -> RunSettings:
        """The settings resolved once per run (the wallet file is read here, once)."""
        return resolve(self.config, now=self.clock())

    @cached_property
    def services(self) -> Services:
        """What the streams share: settings, resolved wallets, the one Dome client."""
        return Services(
            lambda: self.settings,
            str(self.config.get("api_key", "")),
            self.logger,
            streams=lambda: self.streams,
        )

    @override
    def load_state(self, state: dict[str, Any]) -> None:
        """Refuse a state whose bookmarks are not numbers, before anything is read or written."""
        for stream in (OrdersStream.name, ActivityStream.name):
            check_state(state, stream)
        super().load_state(state)

    @override
    @property
    def streams(self) -> dict[str, Stream]:
        """The streams in the order they must sync (the SDK sorts them by name).

        `sync_all` syncs them in this order: the audit and the markets use what orders and
        activity observed in the same run.
        """
        streams = super().streams
        order = {name: index for index, name in enumerate(SYNC_ORDER)}
        return {name: streams[name] for name in sorted(streams, key=lambda n: order.get(n, 99))}

    @override
    def discover_streams(self) -> list[Stream]:
        services, writer = self.services, self.message_writer
        return [
            OrdersStream(self, services=services, writer=writer),
            ActivityStream(self, services=services, writer=writer),
            WalletAuditsStream(self, services=services),
            MarketsStream(self, services=services),
        ]


def main() -> None:
    """The `tap-dome` command (see cli.py for how errors are reported)."""
    from tap_dome.cli import run

    run(TapDome)


if __name__ == "__main__":
    main()
