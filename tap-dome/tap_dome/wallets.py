"""Wallets as users know them: `@handle`s and owner EOAs, resolved to the proxy wallets.

Dome's `user=` filter wants the proxy (funder) wallet. A user often knows a Polymarket
handle or the EOA instead; GET /polymarket/wallet maps either to the proxy. This runs before
the sync: every entry that cannot be resolved is named in one error, and only proxies are
fetched and bookmarked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from tap_dome.concurrency import ordered_map
from tap_dome.errors import DomeConfigError
from tap_dome.settings import MAX_INVALID_SHOWN, WALLET_RE

# Lookups in flight at once unless the caller says (services.py sizes it from the tier).
LOOKUP_THREADS = 8


class WalletLookup(Protocol):
    """What resolving needs of the client (client.DomeClient)."""

    def wallet(self, **query: str) -> dict[str, Any] | None:
        """The mapping, or None when the API knows no such wallet."""


def resolve_wallets(
    entries: Sequence[str],
    *,
    as_eoas: bool,
    client: WalletLookup,
    logger: logging.Logger,
    width: int = LOOKUP_THREADS,
) -> tuple[str, ...]:
    """Proxy wallets for `entries` (order kept, de-duplicated), or one error naming all misses;
    up to `width` lookups in flight at once (the shared limiter sets their rate)."""

    def query(entry: str) -> dict[str, str] | None:
        if entry.startswith("@"):
            return {"handle": entry[1:]}
        return {"eoa": entry} if as_eoas else None

    def lookup(entry: str) -> str | None:
        wanted = query(entry)
        if wanted is None:
            return entry
        mapping = client.wallet(**wanted)
        proxy = (mapping or {}).get("proxy")
        if not isinstance(proxy, str) or not WALLET_RE.match(proxy):
            return None
        return proxy.lower()

    proxies = list(ordered_map(lookup, entries, width, "dome-wallet"))
    unknown = [entry for entry, proxy in zip(entries, proxies, strict=True) if proxy is None]
    if unknown:
        shown = ", ".join(unknown[:MAX_INVALID_SHOWN])
        more = len(unknown) - MAX_INVALID_SHOWN
        kind = "handles or EOAs" if as_eoas else "handles"
        raise DomeConfigError(
            f"{len(unknown)} wallet {kind} in `wallets`/`wallets_file` have no Polymarket "
            f"proxy wallet (the API answered 'No wallet mapping'): {shown}"
            + (f"; and {more} more" if more > 0 else ""),
        )
    looked_up = sum(1 for entry in entries if query(entry) is not None)
    logger.info("Resolved %d handle(s)/EOA(s) to proxy wallets", looked_up)
    return tuple(dict.fromkeys(p for p in proxies if p is not None))
