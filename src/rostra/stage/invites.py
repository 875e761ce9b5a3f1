"""Speaker invites: signed, expiring links, reusable unless limited; revocable by the host.

Stage plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from rostra.clock import Clock
from rostra.errors import (
    CredentialInvalid,
    InvalidFields,
    InviteRevoked,
    InviteUsedUp,
    NotFound,
    RoleNotAllowed,
)
from rostra.ids import new_invite_id
from rostra.stage.roles import Credential, Role
from rostra.stage.tokens import TokenSigner
from rostra.store.base import InviteRecord, SpaceStore

MAX_NAME_CHARS = 60
MAX_USES = 10_000


@dataclass(frozen=True, slots=True)
class MintedInvite:
    record: InviteRecord
    token: str


def clean_name(name: str | None) -> str:
    text = " ".join((name or "").split())
    if len(text) > MAX_NAME_CHARS:
        raise InvalidFields(f"name has {len(text)} characters; at most {MAX_NAME_CHARS}")
    if any(not char.isprintable() for char in text):
        raise InvalidFields("name must contain printable characters only")
    return text


class InviteService:
    def __init__(self, store: SpaceStore, signer: TokenSigner, clock: Clock, ttl_s: int) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock
        self._ttl_s = ttl_s

    def mint(
        self, space_id: str, *, name: str | None = None, uses: int | None = None
    ) -> MintedInvite:
        if uses is not None and not 1 <= uses <= MAX_USES:
            raise InvalidFields(f"uses is {uses}; it must be between 1 and {MAX_USES}")
        now = self._clock.now()
        record = InviteRecord(
            id=new_invite_id(),
            space_id=space_id,
            name=clean_name(name),
            uses_max=uses,
            uses_count=0,
            is_revoked=False,
            expires_at=now + timedelta(seconds=self._ttl_s),
            created_at=now,
        )
        self._store.add_invite(record)
        token = self._signer.invite_token(space_id, record.id, record.expires_at)
        return MintedInvite(record=record, token=token)

    def authorize(self, token: str | None, space_id: str, *, consume: bool) -> Credential:
        """Check a host or invite token for this space; count one use of an invite if asked."""
        role, claims = self._signer.verify(token, space_id)
        if role == Role.HOST:
            return Credential(space_id=space_id, role=Role.HOST, name="Host")
        invite_id = str(claims.get("inv", ""))
        record = self._store.get_invite(invite_id)
        if record is None:
            raise CredentialInvalid("this invite is not known to this deployment")
        if record.is_revoked:
            raise InviteRevoked(f"invite '{invite_id}' was revoked by the host")
        if consume:
            used = self._store.use_invite(invite_id)
            if used is None:
                raise InviteUsedUp(
                    f"invite '{invite_id}' allows {record.uses_max} uses; all are used"
                )
        return Credential(
            space_id=space_id, role=Role.SPEAKER, invite_id=invite_id, name=record.name
        )

    def require_host(self, token: str | None, space_id: str) -> Credential:
        role, _ = self._signer.verify(token, space_id)
        if role != Role.HOST:
            raise RoleNotAllowed("only the host may do this; an invite token is not enough")
        return Credential(space_id=space_id, role=Role.HOST, name="Host")

    def revoke(self, space_id: str, invite_id: str) -> InviteRecord:
        record = self._store.get_invite(invite_id)
        if record is None or record.space_id != space_id:
            raise NotFound(f"space '{space_id}' has no invite '{invite_id[:40]}'")
        self._store.revoke_invite(invite_id)
        return record
