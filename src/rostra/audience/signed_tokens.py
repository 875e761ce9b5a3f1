"""Compact signed tokens: the one format under listener tickets and arrival tokens.

Audience plane. A token is ``<version>.<payload>.<tag>``, both parts unpadded base64url. The
payload is a fixed binary header (a struct layout each kind of token names) then the space id as
ASCII; the tag is HMAC-SHA256 over the token text before the last dot, truncated to 16 bytes (RFC
2104 §5 allows truncation to half the hash length), under a key derived from the deployment's
signing secret with the kind's own label, so a token of one kind is never a token of another. The
tag is compared as text in constant time: a change to any character, padding bits included, is
rejected. Each kind keeps its own typed error; this module raises the one the kind names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Any

from rostra.errors import Unauthorized
from rostra.log import redact

TAG_BYTES = 16
MAX_SPACE_ID_BYTES = 64


def _b64encode(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def _b64decode(text: bytes) -> bytes:
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def derive_key(secret: str, label: bytes) -> bytes:
    """The key of one kind of token: the signing secret itself never keys a token."""
    return hmac.digest(secret.encode(), label, hashlib.sha256)


@dataclass(frozen=True, slots=True)
class TokenKind:
    """One kind of token: its version, key label and header layout, and how errors name it."""

    version: str
    label: bytes
    header: struct.Struct
    # how an error names one token ("ticket") and what a genuine one is ("a Rostra …")
    noun: str
    name: str
    # raised for any text that is not a genuine token of this kind
    invalid: type[Unauthorized]

    @property
    def prefix(self) -> str:
        return self.version + "."

    @property
    def max_chars(self) -> int:
        """The longest token of this kind: its space id at MAX_SPACE_ID_BYTES."""
        payload = _b64encode(bytes(self.header.size + MAX_SPACE_ID_BYTES))
        return len(self.prefix) + len(payload) + 1 + len(_b64encode(bytes(TAG_BYTES)))


@dataclass(frozen=True, slots=True)
class Opened:
    """What a genuine token carries: the header's fields, in layout order, and the space id."""

    fields: tuple[Any, ...]
    space_id: str


class TokenSealer:
    """Seals and opens the tokens of one kind under the deployment's signing secret."""

    def __init__(self, secret: str, kind: TokenKind) -> None:
        if not secret:
            raise ValueError(f"signing {kind.noun}s needs the deployment's signing secret")
        self.kind = kind
        self.max_chars = kind.max_chars
        self._prefix = kind.prefix.encode("ascii")
        self._key = derive_key(secret, kind.label)

    def _tag(self, signed: bytes) -> bytes:
        return _b64encode(hmac.digest(self._key, signed, hashlib.sha256)[:TAG_BYTES])

    def seal(self, space_id: str, *fields: Any) -> str:
        """The token of the header's `fields` (in layout order) for a space."""
        space = space_id.encode("ascii")
        if not 0 < len(space) <= MAX_SPACE_ID_BYTES:
            raise ValueError(f"space id must be 1 to {MAX_SPACE_ID_BYTES} ASCII characters")
        signed = self._prefix + _b64encode(self.kind.header.pack(*fields) + space)
        return (signed + b"." + self._tag(signed)).decode("ascii")

    def open(self, token: str) -> Opened:
        """What a genuine token of this kind carries; else the kind's `invalid` error."""
        kind = self.kind
        if len(token) > self.max_chars or not token.startswith(kind.prefix) or not token.isascii():
            raise kind.invalid(f"{kind.noun} {redact(token)} is not {kind.name}")
        signed, dot, tag = token.encode("ascii").rpartition(b".")
        if not dot or not hmac.compare_digest(self._tag(signed), tag):
            raise kind.invalid(f"{kind.noun} {redact(token)} is forged or tampered")
        # Only text this sealer produced reaches here, so the payload decodes to the kind's layout.
        try:
            payload = _b64decode(signed[len(self._prefix) :])
            fields = kind.header.unpack_from(payload)
            space_id = payload[kind.header.size :].decode("ascii")
        except (binascii.Error, struct.error, UnicodeDecodeError) as exc:
            raise kind.invalid(f"{kind.noun} {redact(token)} has a malformed payload") from exc
        return Opened(fields, space_id)
