"""Listener tickets: what a join hands out and every later listener call presents.

Audience plane. A ticket names a random listener id, a space, an issue time and an expiry, and is
signed with HMAC-SHA256 under a key derived from the deployment's signing secret (every gate node
shares it), so any worker verifies any ticket in microseconds without touching storage.

Token format: ``v1.<payload>.<tag>``, both parts unpadded base64url. The payload is a fixed binary
layout — listener id (16 bytes), issue time (u64, seconds), time to live (u32, seconds), then the
space id as ASCII — and the tag is HMAC-SHA256 over the token text before the last dot, truncated to
16 bytes (RFC 2104 §5 allows truncation to half the hash length). The tag is compared as text, so
a change to any character of the token, padding bits included, is rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass

from rostra.errors import TicketExpired, TicketInvalid, TicketWrongSpace
from rostra.log import redact

VERSION = "v1"
LISTENER_ID_BYTES = 16
TAG_BYTES = 16
MAX_SPACE_ID_BYTES = 64
MAX_TTL_S = 2**32 - 1
# A label makes the ticket key differ from every other key derived from the same signing secret.
KEY_LABEL = b"rostra/audience/ticket/v1"

_HEADER = struct.Struct(">16sQI")
_PREFIX = VERSION + "."
_TAG_CHARS = len(base64.urlsafe_b64encode(bytes(TAG_BYTES)).rstrip(b"="))
_MAX_PAYLOAD_CHARS = len(
    base64.urlsafe_b64encode(bytes(_HEADER.size + MAX_SPACE_ID_BYTES)).rstrip(b"=")
)
MAX_TOKEN_CHARS = len(_PREFIX) + _MAX_PAYLOAD_CHARS + 1 + _TAG_CHARS


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


def _b64encode(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def _b64decode(text: bytes) -> bytes:
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


class TicketSigner:
    """Issues and verifies listener tickets under the deployment's signing secret."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("a ticket signer needs the deployment's signing secret")
        self._key = hmac.digest(secret.encode(), KEY_LABEL, hashlib.sha256)

    def _tag(self, signed: bytes) -> bytes:
        return _b64encode(hmac.digest(self._key, signed, hashlib.sha256)[:TAG_BYTES])

    def issue(
        self, space_id: str, *, now_s: float, ttl_s: int, listener_id: str | None = None
    ) -> IssuedTicket:
        """A new ticket; pass the listener id of a ticket being renewed to keep the listener one."""
        space = space_id.encode("ascii")
        if not 0 < len(space) <= MAX_SPACE_ID_BYTES:
            raise ValueError(f"space id must be 1 to {MAX_SPACE_ID_BYTES} ASCII characters")
        if not 0 < ttl_s <= MAX_TTL_S:
            raise ValueError(f"ticket ttl_s must be 1 to {MAX_TTL_S} seconds, not {ttl_s}")
        listener = listener_id if listener_id is not None else new_listener_id()
        listener_raw = bytes.fromhex(listener)
        if len(listener_raw) != LISTENER_ID_BYTES:
            raise ValueError(f"listener id must be {LISTENER_ID_BYTES} bytes in hex")
        issued_at_s = int(now_s)
        payload = _HEADER.pack(listener_raw, issued_at_s, ttl_s) + space
        signed = _PREFIX.encode() + _b64encode(payload)
        token = (signed + b"." + self._tag(signed)).decode("ascii")
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
        if len(token) > MAX_TOKEN_CHARS or not token.startswith(_PREFIX) or not token.isascii():
            raise TicketInvalid(f"ticket {redact(token)} is not a Rostra listener ticket")
        text = token.encode("ascii")
        signed, dot, tag = text.rpartition(b".")
        if not dot or not hmac.compare_digest(self._tag(signed), tag):
            raise TicketInvalid(f"ticket {redact(token)} is forged or tampered")
        # Only text this signer produced reaches here, so the payload decodes to our own layout.
        try:
            payload = _b64decode(signed[len(_PREFIX) :])
            listener, issued_at_s, ttl_s = _HEADER.unpack_from(payload)
            space_id = payload[_HEADER.size :].decode("ascii")
        except (binascii.Error, struct.error, UnicodeDecodeError) as exc:
            raise TicketInvalid(f"ticket {redact(token)} has a malformed payload") from exc
        return Ticket(listener.hex(), space_id, issued_at_s, issued_at_s + ttl_s)
