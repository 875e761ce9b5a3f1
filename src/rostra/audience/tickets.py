"""Listener tickets: what a join hands out and every later listener call presents.

Audience plane. A ticket names a random listener id, a space, an issue time and an expiry, and is
signed with HMAC-SHA256 under a key derived from the deployment's signing secret (every gate node
shares it), so any worker verifies any ticket in microseconds without touching storage.

Token format: ``v1.<payload>.<tag>``, a signed token of signed_tokens.py under the label
KEY_LABEL. The payload's header is listener id (16 bytes), issue time (u64, seconds), time to live
(u32, seconds); the space id as ASCII follows it.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

from rostra.audience.signed_tokens import MAX_SPACE_ID_BYTES as MAX_SPACE_ID_BYTES
from rostra.audience.signed_tokens import TAG_BYTES as TAG_BYTES
from rostra.audience.signed_tokens import TokenKind, TokenSealer
from rostra.errors import TicketExpired, TicketInvalid, TicketWrongSpace
from rostra.log import redact

VERSION = "v1"
LISTENER_ID_BYTES = 16
MAX_TTL_S = 2**32 - 1
# A label makes the ticket key differ from every other key derived from the same signing secret.
KEY_LABEL = b"rostra/audience/ticket/v1"

TICKET = TokenKind(
    version=VERSION,
    label=KEY_LABEL,
    header=struct.Struct(">16sQI"),
    noun="ticket",
    name="a Rostra listener ticket",
    invalid=TicketInvalid,
)
MAX_TOKEN_CHARS = TICKET.max_chars


@dataclass(frozen=True, slots=True)
class Ticket:
    """What a verified ticket says: who (an anonymous listener id), where, and until when."""

    listener_id: str
    space_id: str
    issued_at_s: int
    expires_at_s: int

    def remaining_s(self, now_s: float) -> float:
        return self.expires_at_s - now_s


@dataclass(frozen=True, slots=True)
class IssuedTicket:
    token: str
    ticket: Ticket


def new_listener_id() -> str:
    return secrets.token_hex(LISTENER_ID_BYTES)


class TicketSigner:
    """Issues and verifies listener tickets under the deployment's signing secret."""

    def __init__(self, secret: str) -> None:
        self._sealer = TokenSealer(secret, TICKET)

    def issue(
        self, space_id: str, *, now_s: float, ttl_s: int, listener_id: str | None = None
    ) -> IssuedTicket:
        """A new ticket; pass the listener id of a ticket being renewed to keep the listener one."""
        if not 0 < ttl_s <= MAX_TTL_S:
            raise ValueError(f"ticket ttl_s must be 1 to {MAX_TTL_S} seconds, not {ttl_s}")
        listener = listener_id if listener_id is not None else new_listener_id()
        listener_raw = bytes.fromhex(listener)
        if len(listener_raw) != LISTENER_ID_BYTES:
            raise ValueError(f"listener id must be {LISTENER_ID_BYTES} bytes in hex")
        issued_at_s = int(now_s)
        token = self._sealer.seal(space_id, listener_raw, issued_at_s, ttl_s)
        ticket = Ticket(listener_raw.hex(), space_id, issued_at_s, issued_at_s + ttl_s)
        return IssuedTicket(token=token, ticket=ticket)

    def renew(self, ticket: Ticket, *, now_s: float, ttl_s: int) -> IssuedTicket:
        """A fresh ticket for the same listener in the same space."""
        return self.issue(ticket.space_id, now_s=now_s, ttl_s=ttl_s, listener_id=ticket.listener_id)

    def verify(self, token: str, space_id: str, *, now_s: float) -> Ticket:
        """The ticket a token carries for this space, or a typed error saying why not."""
        ticket = self._open(token)
        if now_s >= ticket.expires_at_s:
            raise TicketExpired(f"ticket {redact(token)} expired; join the space again")
        if ticket.space_id != space_id:
            raise TicketWrongSpace(
                f"ticket {redact(token)} belongs to another space, not {space_id!r}"
            )
        return ticket

    def _open(self, token: str) -> Ticket:
        opened = self._sealer.open(token)
        listener, issued_at_s, ttl_s = opened.fields
        return Ticket(listener.hex(), opened.space_id, issued_at_s, issued_at_s + ttl_s)
