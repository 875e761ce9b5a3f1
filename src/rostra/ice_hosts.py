"""Which host addresses ICE offers, for servers and clients alike. aioice leaves out loopback; a
server bound to loopback, and tests that must keep their traffic on 127.0.0.1, offer exactly the
addresses they are given.

Foundation module: imports no plane; aioice is imported only when the addresses are restricted,
so a listener worker that asks `is_loopback` never loads it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def restrict_ice_host_addresses(addresses: Sequence[str]) -> None:
    """Offer only these host addresses as ICE candidates (process-wide: aioice has no option)."""
    if not addresses:
        return
    import aioice.ice  # here, not at the top: only clients and the origin need it

    chosen = list(addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses
