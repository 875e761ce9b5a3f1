"""Speaker invites and host links: signed, expiring; invites revocable, host links rotatable.

An invite minted with a name is personal: it holds one stage session, and a new connection with it
replaces the old one. An invite minted without a name is a shared link: it holds at most `seats`
sessions at once (never the host's seat) and `uses` connections in all. A studio invite opens the
speak page in studio mode (for guests on headphones): the link's fragment says so, never the token.
A co-host invite is personal and runs the stage with the host; a space has at most `MAX_COHOSTS`
alive (not revoked, not expired). A hand invite is the personal speaker invite of one listener
who raised a hand: its id is derived from the space and the listener, so inviting the same
listener again finds the same invite, and the listener's ticket finds it with no lookup table.

Stage plane.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from rostra.clock import Clock
from rostra.config import Settings
from rostra.errors import (
    CohostLimitReached,
    CredentialInvalid,
    HandInvalid,
    HandInviteRevoked,
    HostLinkRotated,
    InvalidFields,
    InviteRevoked,
    InviteUsedUp,
    NotFound,
    RoleNotAllowed,
    SessionNotOwned,
)
from rostra.ids import new_invite_id
from rostra.stage.roles import MAX_COHOSTS, Credential, Role, may_moderate
from rostra.stage.tokens import TokenSigner
from rostra.store.base import InviteRecord, SpaceRecord, SpaceStore
from rostra.store.reactions import RaisedHand

MAX_NAME_CHARS = 60
MAX_USES = 10_000
# a shared link's seats at once unless the host says otherwise
DEFAULT_SEATS = 4
DEFAULT_HOST_TTL_S = 30 * 24 * 3600
DEFAULT_MAX_VOICES = 13
# the invite link's fragment that opens the speak page in studio mode: a fragment stays in the
# browser (never sent to a server or logged), and the speaker may still change the mode
STUDIO_FRAGMENT = "studio"
# invite ids are lower-case letters and digits: these prefixes (with a hyphen) cannot be random
COHOST_INVITE_PREFIX = "cohost-"
HAND_INVITE_PREFIX = "hand-"
DEFAULT_COHOST_NAME = "Co-host"


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


# a raised hand's public id: the first characters of its listener's id (64 bits: no two hands of
# one queue share one), so the host never sees a whole listener id
HAND_ID_CHARS = 16


def hand_id(listener_id: str) -> str:
    return listener_id[:HAND_ID_CHARS]


HAND_ID_RE = re.compile(rf"[0-9a-f]{{{HAND_ID_CHARS}}}")


def check_hand(hand: str) -> str:
    """A hand id as `GET …/hands` gives it, else 422 (before any store is read; the id is not
    echoed: it may hold anything)."""
    if not HAND_ID_RE.fullmatch(hand):
        raise HandInvalid(
            f"a hand id is {HAND_ID_CHARS} lower-case hexadecimal characters, as"
            f" GET /api/v1/spaces/ID/hands gives it; this one has {len(hand)} characters"
        )
    return hand


def find_hand(queue: list[RaisedHand], hand: str) -> RaisedHand | None:
    """The raised hand of `queue` whose public id is `hand`, or None."""
    return next((raised for raised in queue if hand_id(raised.listener_id) == hand), None)


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
        role: Role = Role.SPEAKER,
        invite_id: str | None = None,
    ) -> MintedInvite:
        if uses is not None and not 1 <= uses <= MAX_USES:
            raise InvalidFields(f"uses is {uses}; it must be between 1 and {MAX_USES}")
        if role == Role.HOST:
            raise InvalidFields("role is 'host'; an invite is for a 'speaker' or a 'cohost'")
        text = clean_name(name)
        if role == Role.COHOST:
            if seats not in (None, 1):
                raise InvalidFields(
                    f"seats is {seats}; a co-host invite is personal and holds one seat"
                )
            text = text or DEFAULT_COHOST_NAME
            self._check_cohost_room(space_id)
            invite_id = COHOST_INVITE_PREFIX + new_invite_id()
        now = self._clock.now()
        record = InviteRecord(
            id=invite_id or new_invite_id(),
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
        token = self._signer.invite_token(space_id, record.id, record.expires_at, role=role)
        return MintedInvite(record=record, token=token, is_studio=is_studio)

    def alive_cohost_invites(self, space_id: str) -> list[InviteRecord]:
        now = self._clock.now()
        return [
            invite
            for invite in self._store.list_invites(space_id)
            if invite.id.startswith(COHOST_INVITE_PREFIX)
            and not invite.is_revoked
            and invite.expires_at > now
        ]

    def _check_cohost_room(self, space_id: str) -> None:
        alive = self.alive_cohost_invites(space_id)
        if len(alive) >= MAX_COHOSTS:
            names = ", ".join(f"'{invite.id}' ({invite.name})" for invite in alive)
            raise CohostLimitReached(
                f"space '{space_id}' allows {MAX_COHOSTS} co-hosts; {len(alive)} co-host invites"
                f" are alive ({names}): revoke one first"
            )

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
        # the signed claim and the store's id must agree: a co-host is both
        is_cohost = role == Role.COHOST and invite_id.startswith(COHOST_INVITE_PREFIX)
        return Credential(
            space_id=space_id,
            role=Role.COHOST if is_cohost else Role.SPEAKER,
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

    def require_moderator(self, token: str | None, space_id: str) -> Credential:
        """The host or a co-host of this space (a co-host's invite must still be alive)."""
        credential = self.authorize(token, space_id, consume=False)
        if not may_moderate(credential.role):
            raise RoleNotAllowed(
                "only the host or a co-host may do this; a speaker's invite is not enough"
            )
        return credential

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

    def hand_invite_id(self, space_id: str, listener_id: str) -> str:
        return HAND_INVITE_PREFIX + self._signer.derive_id(f"hand:{space_id}:{listener_id}")

    def invite_hand(self, space_id: str, listener_id: str, name: str) -> tuple[MintedInvite, bool]:
        """The personal speaker invite of the listener behind a raised hand, good for one
        connection, and whether this call gave that connection: inviting again while it is
        unused changes nothing (idempotent); once used (the listener went on stage and back),
        inviting again gives one more."""
        invite_id = self.hand_invite_id(space_id, listener_id)
        record = self._store.get_invite(invite_id)
        if record is None:
            try:
                return self.mint(space_id, name=name, uses=1, invite_id=invite_id), True
            except Exception:  # the store's own duplicate-key error: re-read below
                # a host and a co-host clicking the same hand at once, in two workers: the
                # first insert wins and the second finds its invite; anything else is raised
                record = self._store.get_invite(invite_id)
                if record is None:
                    raise
        if record.is_revoked:
            raise HandInviteRevoked(
                f"this listener's invite '{invite_id}' was revoked in space '{space_id}'; the"
                " hand queue does not invite them again"
            )
        is_used = record.uses_max is not None and record.uses_count >= record.uses_max
        if is_used:
            self._store.refund_invite(invite_id)
        token = self._signer.invite_token(space_id, record.id, record.expires_at)
        return MintedInvite(record=record, token=token), is_used

    def hand_invite(self, space_id: str, listener_id: str) -> MintedInvite | None:
        """The listener's hand invite if the host made one and its connection is unused."""
        record = self._store.get_invite(self.hand_invite_id(space_id, listener_id))
        if record is None or record.is_revoked or record.expires_at <= self._clock.now():
            return None
        if record.uses_max is not None and record.uses_count >= record.uses_max:
            return None
        token = self._signer.invite_token(space_id, record.id, record.expires_at)
        return MintedInvite(record=record, token=token)
