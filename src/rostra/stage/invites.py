"""Speaker invites and host links: signed, expiring; invites revocable, host links rotatable.

An invite minted with a name is personal: it holds one stage session, and a new connection with it
replaces the old one. An invite minted without a name is a shared link: it holds at most `seats`
sessions at once (never the host's seat) and `uses` connections in all. A studio invite opens the
speak page in studio mode (for guests on headphones): the link's fragment says so, never the token.

Stage plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from rostra.clock import Clock
from rostra.config import Settings
from rostra.errors import (
    CredentialInvalid,
    HostLinkRotated,
    InvalidFields,
    InviteRevoked,
    InviteUsedUp,
    NotFound,
    RoleNotAllowed,
    SessionNotOwned,
)
from rostra.ids import new_invite_id
from rostra.stage.roles import Credential, Role
from rostra.stage.tokens import TokenSigner
from rostra.store.base import InviteRecord, SpaceRecord, SpaceStore

MAX_NAME_CHARS = 60
MAX_USES = 10_000
# a shared link's seats at once unless the host says otherwise
DEFAULT_SEATS = 4
DEFAULT_HOST_TTL_S = 30 * 24 * 3600
DEFAULT_MAX_VOICES = 13
# the invite link's fragment that opens the speak page in studio mode: a fragment stays in the
# browser (never sent to a server or logged), and the speaker may still change the mode
STUDIO_FRAGMENT = "studio"


@dataclass(frozen=True, slots=True)
class MintedInvite:
    record: InviteRecord
    token: str
    is_studio: bool = False

    def link_fragment(self) -> str:
        """What follows the invite URL: `#studio` for a studio invite, else nothing."""
        return f"#{STUDIO_FRAGMENT}" if self.is_studio else ""


@dataclass(frozen=True, slots=True)
class HostLink:
    token: str
    expires_at: datetime
    generation: int


def clean_name(name: str | None) -> str:
    text = " ".join((name or "").split())
    if len(text) > MAX_NAME_CHARS:
        raise InvalidFields(f"name has {len(text)} characters; at most {MAX_NAME_CHARS}")
    if any(not char.isprintable() for char in text):
        raise InvalidFields("name must contain printable characters only")
    return text


class InviteService:
    def __init__(
        self,
        store: SpaceStore,
        signer: TokenSigner,
        clock: Clock,
        ttl_s: int,
        *,
        host_ttl_s: int = DEFAULT_HOST_TTL_S,
        max_voices: int = DEFAULT_MAX_VOICES,
    ) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock
        self._ttl_s = ttl_s
        self._host_ttl_s = host_ttl_s
        # the host's seat is never an invite's
        self.max_seats = max(1, max_voices - 1)

    @classmethod
    def from_settings(
        cls, store: SpaceStore, signer: TokenSigner, clock: Clock, settings: Settings
    ) -> InviteService:
        return cls(
            store,
            signer,
            clock,
            settings.invite_ttl_s,
            host_ttl_s=settings.host_token_ttl_s,
            max_voices=settings.max_voices,
        )

    def _seats(self, name: str, seats: int | None) -> int | None:
        if name:
            if seats not in (None, 1):
                raise InvalidFields(
                    f"seats is {seats}; an invite with a name is personal and holds one seat"
                )
            return None
        if seats is None:
            return min(DEFAULT_SEATS, self.max_seats)
        if not 1 <= seats <= self.max_seats:
            raise InvalidFields(
                f"seats is {seats}; it must be between 1 and {self.max_seats}"
                " (the stage's voices less the host's seat)"
            )
        return seats

    def mint(
        self,
        space_id: str,
        *,
        name: str | None = None,
        uses: int | None = None,
        seats: int | None = None,
        is_studio: bool = False,
    ) -> MintedInvite:
        if uses is not None and not 1 <= uses <= MAX_USES:
            raise InvalidFields(f"uses is {uses}; it must be between 1 and {MAX_USES}")
        text = clean_name(name)
        now = self._clock.now()
        record = InviteRecord(
            id=new_invite_id(),
            space_id=space_id,
            name=text,
            uses_max=uses,
            uses_count=0,
            is_revoked=False,
            expires_at=now + timedelta(seconds=self._ttl_s),
            created_at=now,
            seats=self._seats(text, seats),
        )
        self._store.add_invite(record)
        token = self._signer.invite_token(space_id, record.id, record.expires_at)
        return MintedInvite(record=record, token=token, is_studio=is_studio)

    def authorize(self, token: str | None, space_id: str, *, consume: bool) -> Credential:
        """Check a host or invite token for this space; count one use of an invite if asked."""
        role, claims = self._signer.verify(token, space_id)
        if role == Role.HOST:
            return self._host(claims, space_id)
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
            space_id=space_id,
            role=Role.SPEAKER,
            invite_id=invite_id,
            name=record.name,
            # a nameless link from before seats were recorded holds the default
            seats=None if record.name else record.seats or min(DEFAULT_SEATS, self.max_seats),
        )

    def refund(self, credential: Credential) -> None:
        """Give back the use counted for a connection that did not come up."""
        if credential.invite_id is not None:
            self._store.refund_invite(credential.invite_id)

    def require_host(self, token: str | None, space_id: str) -> Credential:
        role, claims = self._signer.verify(token, space_id)
        if role != Role.HOST:
            raise RoleNotAllowed("only the host may do this; an invite token is not enough")
        return self._host(claims, space_id)

    def _host(self, claims: dict[str, object], space_id: str) -> Credential:
        space = self._store.get_space(space_id)
        if space is None:
            raise CredentialInvalid(f"space '{space_id}' is not known to this deployment")
        generation = claims.get("gen")
        if generation != space.host_generation:
            raise HostLinkRotated(
                f"this host link is of generation {generation}; space '{space_id}' rotated its"
                f" host link to generation {space.host_generation}: ask for the new one"
            )
        return Credential(space_id=space_id, role=Role.HOST, name="Host")

    @staticmethod
    def require_session_owner(
        credential: Credential, session_id: str, session_invite_id: str | None
    ) -> None:
        if not credential.may_end(session_invite_id):
            raise SessionNotOwned(
                f"stage session '{session_id[:40]}' was not made with this invite; only its own"
                " invite, the host or the admin may end it"
            )

    def host_link(self, space: SpaceRecord) -> HostLink:
        """A fresh host token of the space's current generation."""
        expires_at = self._clock.now() + timedelta(seconds=self._host_ttl_s)
        token = self._signer.host_token(space.id, space.host_generation, expires_at)
        return HostLink(token=token, expires_at=expires_at, generation=space.host_generation)

    def rotate_host_link(self, space_id: str) -> HostLink:
        """End every host token of the space: the new link is the only one that works."""
        space = self._store.rotate_host_generation(space_id)
        if space is None:
            raise NotFound(f"there is no space '{space_id[:40]}'")
        return self.host_link(space)

    def revoke(self, space_id: str, invite_id: str) -> InviteRecord:
        record = self._store.get_invite(invite_id)
        if record is None or record.space_id != space_id:
            raise NotFound(f"space '{space_id}' has no invite '{invite_id[:40]}'")
        self._store.revoke_invite(invite_id)
        return record
