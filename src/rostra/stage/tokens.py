"""Signed tokens for hosts and speaker invites (JWT, HS256, the deployment's signing secret).

Both expire (`exp`). A host token also carries the space's host generation (`gen`): rotating the
host link bumps the generation in the store, and tokens of an older one are refused. A co-host's
invite carries `rol: "cohost"`; an invite without `rol` is a speaker's.

Stage plane.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

import jwt

from rostra.errors import (
    CredentialExpired,
    CredentialInvalid,
    CredentialMissing,
    CredentialWrongSpace,
)
from rostra.log import redact
from rostra.stage.roles import Role

ALGORITHM = "HS256"
HOST_TYPE = "host"
INVITE_TYPE = "invite"
COHOST_CLAIM = "cohost"
# derived ids (`derive_id`): hex characters of an HMAC-SHA256, 96 bits
DERIVED_ID_CHARS = 24


class TokenSigner:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def host_token(self, space_id: str, generation: int, expires_at: datetime) -> str:
        claims = {"typ": HOST_TYPE, "spc": space_id, "gen": generation, "exp": expires_at}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def invite_token(
        self, space_id: str, invite_id: str, expires_at: datetime, *, role: Role = Role.SPEAKER
    ) -> str:
        claims: dict[str, Any] = {
            "typ": INVITE_TYPE,
            "spc": space_id,
            "inv": invite_id,
            "exp": expires_at,
        }
        if role == Role.COHOST:
            claims["rol"] = COHOST_CLAIM
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def derive_id(self, label: str) -> str:
        """An id only this deployment can compute from `label` (the same label, the same id)."""
        key = hashlib.sha256(b"rostra derived id\x00" + self._secret.encode()).digest()
        return hmac.new(key, label.encode(), hashlib.sha256).hexdigest()[:DERIVED_ID_CHARS]

    def verify(self, token: str | None, space_id: str) -> tuple[Role, dict[str, Any]]:
        """The role and claims of a token for this space, or a typed error saying why not."""
        if not token:
            raise CredentialMissing("send the host or invite token as 'Authorization: Bearer …'")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], options={"require": ["typ", "spc"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise CredentialExpired(f"token {redact(token)} has expired") from exc
        except jwt.PyJWTError as exc:
            raise CredentialInvalid(
                f"token {redact(token)} is not a valid Rostra token (malformed or forged)"
            ) from exc
        kind = claims.get("typ")
        if kind not in (HOST_TYPE, INVITE_TYPE):
            raise CredentialInvalid(f"token {redact(token)} has an unknown type")
        if claims.get("spc") != space_id:
            raise CredentialWrongSpace(
                f"token {redact(token)} belongs to another space, not '{space_id}'"
            )
        if kind == HOST_TYPE and (
            not isinstance(claims.get("gen"), int) or not isinstance(claims.get("exp"), int)
        ):
            raise CredentialInvalid(
                f"host token {redact(token)} never expires: it is from an older release;"
                " ask the operator for a new host link"
            )
        if kind == HOST_TYPE:
            return Role.HOST, claims
        return (Role.COHOST if claims.get("rol") == COHOST_CLAIM else Role.SPEAKER), claims
