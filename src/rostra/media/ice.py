"""The STUN/TURN servers a WHIP server names to its clients. Which host addresses ICE offers
(loopback included) is decided in the foundation module `rostra.ice_hosts`, re-exported here.
TURN servers named without a password get coturn's time-limited credentials (`use-auth-secret`).

Media plane.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, replace

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

    @property
    def is_turn(self) -> bool:
        return self.url.startswith(("turn:", "turns:"))

    def with_time_limited_credential(self, secret: str, label: str, expires_at_s: int) -> IceServer:
        """coturn's TURN REST credential: username `EXPIRY:LABEL`, password
        base64(HMAC-SHA1(secret, username)); servers with their own password are left alone."""
        if not self.is_turn or self.username is not None or not secret:
            return self
        username = f"{expires_at_s}:{label}"
        return replace(self, username=username, credential=turn_password(secret, username))

    def link_header(self) -> str:
        """RFC 9725 §4.6: how a WHIP server tells its clients which ICE servers to use."""
        value = f'<{self.url}>; rel="ice-server"'
        if self.username is not None:
            value += f'; username="{self.username}"; credential="{self.credential}"'
            value += '; credential-type="password"'
        return value


def turn_password(secret: str, username: str) -> str:
    """The password coturn computes for a `use-auth-secret` username."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def client_ice_servers(
    servers: tuple[IceServer, ...], *, secret: str, label: str, now_s: float, ttl_s: int
) -> tuple[IceServer, ...]:
    """The ICE servers to name to one client (or to use here), with credentials expiring in
    `ttl_s` where the TURN secret provides them."""
    expires_at_s = int(now_s) + ttl_s
    return tuple(s.with_time_limited_credential(secret, label, expires_at_s) for s in servers)
