"""Who owns each simulated wallet (``GET /polymarket/wallet``): EOA, proxy, handle.

Every simulated wallet is a proxy wallet (what ``user=`` on orders and activity takes) with an
EOA that controls it; most have a Polymarket handle (every fourth wallet, counting from the
second, has none). All of it is derived from the seed and the address, so it is stable.
Lookups are case-insensitive; a handle's leading ``@`` is ignored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["WalletDirectory"]

_ADJECTIVES = ("Glorious", "Quiet", "Bold", "Lucky", "Swift", "Clever", "Gentle", "Brave")
_ANIMALS = ("Rabbit", "Falcon", "Otter", "Panda", "Lynx", "Heron", "Badger", "Koala")


def _hash(seed: int, *parts: str) -> str:
    return hashlib.sha256(":".join(("dome-sim", str(seed), *parts)).encode()).hexdigest()


class WalletDirectory:
    """The wallet mappings of one simulator, indexed by proxy, EOA and handle."""

    def __init__(self, seed: int, wallets: Iterable[str], roles: Mapping[str, str]) -> None:
        role_of = {address: role for role, address in roles.items()}
        self._by_proxy: dict[str, dict[str, Any]] = {}
        for index, proxy in enumerate(wallets):
            proxy = proxy.lower()
            digest = _hash(seed, "owner", proxy)
            name = role_of.get(proxy) or f"w{index}"
            handle = None if index % 4 == 1 else f"sim-{name.replace('_', '-')}-{digest[:4]}"
            self._by_proxy[proxy] = {
                "eoa": "0x" + _hash(seed, "eoa", proxy)[:40],
                "proxy": proxy,
                "wallet_type": "safe" if int(digest[4:6], 16) % 3 == 0 else "proxy",
                "handle": handle,
                "pseudonym": (
                    f"{_ADJECTIVES[int(digest[6], 16) % 8]}-{_ANIMALS[int(digest[7], 16) % 8]}"
                ),
                "image": (
                    f"https://polymarket-upload.s3.us-east-2.amazonaws.com/profile-{digest[8:20]}.png"
                    if handle
                    else None
                ),
            }
        self._by_eoa = {m["eoa"]: m for m in self._by_proxy.values()}
        self._by_handle = {m["handle"].lower(): m for m in self._by_proxy.values() if m["handle"]}

    def mappings(self) -> list[dict[str, Any]]:
        """Every mapping, in wallet order (copies)."""
        return [dict(m) for m in self._by_proxy.values()]

    def find(self, kind: str, value: str) -> dict[str, Any] | None:
        """The mapping for ``kind`` (eoa, proxy or handle) = ``value``, or None."""
        key = value.strip().lower()
        if kind == "handle":
            found = self._by_handle.get(key.removeprefix("@"))
        elif kind == "eoa":
            found = self._by_eoa.get(key)
        else:
            found = self._by_proxy.get(key)
        return dict(found) if found is not None else None
