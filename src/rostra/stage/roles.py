"""Roles on the stage, and the credential a speaker presents.

Stage plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    HOST = "host"
    SPEAKER = "speaker"


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
