"""The STUN/TURN servers a WHIP server names to its clients. Which host addresses ICE offers
(loopback included) is decided in the foundation module `rostra.ice_hosts`, re-exported here.

Media plane.
"""

from __future__ import annotations

from dataclasses import dataclass

# the client needs these too (rehearse/ must not import media/): they live in the foundation
from rostra.ice_hosts import LOOPBACK_NAMES, is_loopback, restrict_ice_host_addresses

__all__ = ["LOOPBACK_NAMES", "IceServer", "is_loopback", "restrict_ice_host_addresses"]


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
