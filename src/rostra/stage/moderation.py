"""Moderation: who may mute whom (and unmute themselves), the devices a space refuses, and the
space's moderation log.

Stage plane. The decisions are pure (`decide_mute`, `check_device`); `ModerationService` keeps
the blocks and the log in the moderation store, and a per-worker copy of each space's blocked
devices for about a second (of BLOCKS_CACHE_SPACES spaces at most), so a join with a device reads
the store at most once a second. When the store does not answer, blocks fail open: what the
worker last read holds, and a device it never saw blocked is let in (logged once a second).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from enum import StrEnum

from rostra.clock import Clock, iso_utc
from rostra.errors import (
    DeviceBlocked,
    DeviceInvalid,
    InvalidFields,
    MuteLocked,
    RoleNotAllowed,
    SessionInvalid,
    Unavailable,
)
from rostra.ids import is_session_id
from rostra.stage.roles import Credential, Role, may_act_on, may_moderate
from rostra.store.moderation import BLOCK_TTL_S, LogEntry, ModerationStore

log = logging.getLogger(__name__)

# the id a page keeps in localStorage: 16 to 64 URL-safe characters (pages make 32 of base64url)
DEVICE_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"
DEVICE_RE = re.compile(DEVICE_PATTERN)
DEVICE_HEADER = "Rostra-Device"
BLOCKS_CACHE_S = 1.0
# spaces whose blocked devices a worker keeps a copy of
BLOCKS_CACHE_SPACES = 1_024


class Action(StrEnum):
    MUTE = "mute"
    UNMUTE = "unmute"
    LOCK = "lock"
    REMOVE = "remove"
    BLOCK = "block"
    INVITE = "invite"


def check_device(device_id: str | None) -> str | None:
    """A device id as sent, or None when absent; malformed ones are refused (422)."""
    if device_id is None or device_id == "":
        return None
    if not DEVICE_RE.fullmatch(device_id):
        raise DeviceInvalid(
            f"device id of {len(device_id)} characters is malformed: it must be 16 to 64"
            " letters, digits, '-' or '_'"
        )
    return device_id


def check_session(session_id: str) -> str:
    """A stage session id as the stage gives it, else 422: never looked up, never echoed (it may
    hold anything), never passed on to the origin's URL."""
    if not is_session_id(session_id):
        raise SessionInvalid(
            f"a stage session id is as state.json's stage[].id gives it; this one of"
            f" {len(session_id)} characters is not"
        )
    return session_id


def role_of(text: str) -> Role:
    """A stage member's role as the origin names it; anything unknown is a speaker."""
    try:
        return Role(text)
    except ValueError:
        return Role.SPEAKER


def owns_session(actor: Credential, role: Role, invite_id: str | None) -> bool:
    """The host's own session, or one made with the actor's own personal invite. A shared link
    owns none: its holders are several people, and one must not unmute (or mute) another."""
    if actor.role == Role.HOST:
        return role == Role.HOST
    is_personal = actor.seats is None
    return is_personal and actor.invite_id is not None and actor.invite_id == invite_id


def decide_mute(
    actor: Credential,
    *,
    session_id: str,
    target_role: Role,
    target_invite_id: str | None,
    is_locked_now: bool,
    muted: bool,
    locked: bool | None,
) -> Action | None:
    """What a mute request does, or why it is refused. None: a speaker muting or unmuting their
    own voice (not a moderation act, not logged)."""
    if locked and not muted:
        raise InvalidFields("locked is true with muted false: only a mute can be locked")
    if owns_session(actor, target_role, target_invite_id) and locked is None:
        if not muted and is_locked_now:
            raise MuteLocked(
                f"stage session '{session_id}' was muted and locked by the host or a co-host;"
                " only they may unmute it"
            )
        return None
    if not may_moderate(actor.role):
        raise RoleNotAllowed(
            f"only the host or a co-host may mute another voice or lock a mute; a {actor.role}"
            " may mute or unmute only their own session, and only with a personal invite (a"
            " shared link's holders ask the host)"
        )
    if not may_act_on(actor.role, target_role):
        raise RoleNotAllowed(
            f"a {actor.role} may not mute the {target_role} (session '{session_id}'):"
            " the host acts on anyone but the host, a co-host only on speakers"
        )
    if not muted:
        return Action.UNMUTE
    return Action.LOCK if locked else Action.MUTE


def require_may_act(actor: Credential, target_role: Role, what: str, whom: str) -> None:
    if not may_moderate(actor.role):
        raise RoleNotAllowed(f"only the host or a co-host may {what}")
    if not may_act_on(actor.role, target_role):
        raise RoleNotAllowed(
            f"a {actor.role} may not {what} the {target_role} ({whom}): the host acts on anyone"
            " but the host, a co-host only on speakers"
        )


class ModerationService:
    def __init__(self, store: ModerationStore, clock: Clock) -> None:
        self.store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._blocked: OrderedDict[str, tuple[float, frozenset[str]]] = OrderedDict()

    def _now_s(self) -> float:
        return self._clock.now().timestamp()

    def record(
        self, space_id: str, actor: Credential, action: Action, target: str, target_name: str = ""
    ) -> LogEntry:
        """Add an act to the space's moderation log (blocking: run it off the loop)."""
        entry = LogEntry(
            at=iso_utc(self._clock.now()) or "",
            actor=actor.name or str(actor.role),
            actor_role=str(actor.role),
            action=str(action),
            target=target,
            target_name=target_name,
        )
        self.store.append(space_id, entry)
        return entry

    def log(self, space_id: str) -> list[LogEntry]:
        return self.store.entries(space_id)

    def block(self, space_id: str, device_id: str) -> None:
        now_s = self._now_s()
        self.store.block(space_id, device_id, now_s + BLOCK_TTL_S, now_s)
        with self._lock:
            self._blocked.pop(space_id, None)  # this worker sees its own block at once

    def require_not_blocked(
        self, space_id: str, device_id: str | None, who: str, *, is_fresh: bool = False
    ) -> None:
        """DeviceBlocked when the space blocked this device (`who`: a listener, a speaker).
        With `is_fresh` the store is read now (a speaker's offer, rare), else this worker's copy
        of the space's blocks, at most a second old (a listener's join, frequent)."""
        if device_id is None:
            return
        if is_fresh:
            try:
                is_blocked = self.store.is_blocked(space_id, device_id, self._now_s())
            except Unavailable as error:
                log.warning("blocks not read", extra={"space": space_id, "error": error.detail})
                is_blocked = False
        else:
            is_blocked = device_id in self._blocked_devices(space_id)
        if is_blocked:
            raise DeviceBlocked(
                f"this device was blocked in space '{space_id}' by its host; it may not join"
                f" as a {who} for the rest of the space"
            )

    def is_cached(self, space_id: str) -> bool:
        """Whether this worker's copy of the space's blocks is fresh: then a check reads no
        store and needs no thread."""
        with self._lock:
            cached = self._blocked.get(space_id)
        return cached is not None and self._clock.monotonic_s() - cached[0] < BLOCKS_CACHE_S

    def _blocked_devices(self, space_id: str) -> frozenset[str]:
        now = self._clock.monotonic_s()
        with self._lock:
            cached = self._blocked.get(space_id)
        if cached is not None and now - cached[0] < BLOCKS_CACHE_S:
            return cached[1]
        try:
            devices = self.store.blocked_devices(space_id, self._now_s())
        except Unavailable as error:
            # the store is away: what this worker knew holds, and a device is let in rather
            # than every listener refused (fail open); kept as if read, so the store is tried
            # and this logged once a second per space, not once per join
            log.warning("blocks not read", extra={"space": space_id, "error": error.detail})
            devices = cached[1] if cached is not None else frozenset()
        with self._lock:
            self._blocked[space_id] = (now, devices)
            self._blocked.move_to_end(space_id)
            while len(self._blocked) > BLOCKS_CACHE_SPACES:
                self._blocked.popitem(last=False)
        return devices

    def remember_hand_device(
        self, space_id: str, listener_id: str, device_id: str, ticket_expires_at_s: float
    ) -> None:
        self.store.remember_hand_device(space_id, listener_id, device_id, ticket_expires_at_s)

    def hand_device(self, space_id: str, listener_id: str) -> str | None:
        return self.store.hand_device(space_id, listener_id, self._now_s())
