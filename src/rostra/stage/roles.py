"""Roles on the stage, and the credential a speaker presents.

Stage plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    HOST = "host"
    COHOST = "cohost"
    SPEAKER = "speaker"


# at most this many co-hosts at once in a space
MAX_COHOSTS = 2


def may_moderate(role: Role) -> bool:
    """Hosts and co-hosts run the stage: invite from the hand queue, mute, remove, block."""
    return role in (Role.HOST, Role.COHOST)


def may_act_on(actor: Role, target: Role) -> bool:
    """Whether `actor` may mute, remove or block someone holding `target`: the host anyone but
    the host; a co-host only speakers (never the host or another co-host); a speaker no one."""
    if actor == Role.HOST:
        return target != Role.HOST
    if actor == Role.COHOST:
        return target == Role.SPEAKER
    return False


@dataclass(frozen=True, slots=True)
class Credential:
    """Who a verified token says the bearer is, and the seats their credential may hold.

    A personal credential (the host token, an invite minted with a name) holds one stage session:
    a new one replaces it. A shared invite link holds up to `seats` sessions at once.
    """

    space_id: str
    role: Role
    invite_id: str | None = None
    name: str = ""
    seats: int | None = None

    def may_end(self, session_invite_id: str | None) -> bool:
        """The host ends any session; an invite ends only the sessions it made."""
        return self.role == Role.HOST or (
            self.invite_id is not None and self.invite_id == session_invite_id
        )
