"""Which host addresses ICE offers. aioice leaves out loopback; a server bound to loopback, and
tests that must keep their traffic on 127.0.0.1, offer exactly the addresses they are given.

Media plane.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import aioice.ice

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN/TURN server, from a config entry `stun:host:port` or `turn:user:pass@host:port`."""

    url: str
    username: str | None = None
    credential: str | None = None

    @classmethod
    def parse(cls, entry: str) -> IceServer:
        scheme, _, rest = entry.partition(":")
        if scheme not in ("stun", "stuns", "turn", "turns") or not rest:
            raise ValueError(f"ICE server '{entry[:80]}' must look like stun:HOST:PORT")
        if "@" not in rest:
            return cls(url=entry)
        credentials, _, address = rest.rpartition("@")
        username, _, credential = credentials.partition(":")
        return cls(url=f"{scheme}:{address}", username=username, credential=credential)

    def link_header(self) -> str:
        """RFC 9725 §4.6: how a WHIP server tells its clients which ICE servers to use."""
        value = f'<{self.url}>; rel="ice-server"'
        if self.username is not None:
            value += f'; username="{self.username}"; credential="{self.credential}"'
            value += '; credential-type="password"'
        return value


def restrict_ice_host_addresses(addresses: Sequence[str]) -> None:
    """Offer only these host addresses as ICE candidates (process-wide: aioice has no option)."""
    if not addresses:
        return
    chosen = list(addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses
