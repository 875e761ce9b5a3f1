"""The space store port: spaces and speaker invites, as plain records.

Storage plane: imports only the foundation; stage/ gives the records their meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SpaceRecord:
    id: str
    title: str
    status: str
    created_at: datetime
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class InviteRecord:
    id: str
    space_id: str
    name: str
    uses_max: int | None
    uses_count: int
    is_revoked: bool
    expires_at: datetime
    created_at: datetime


class SpaceStore(Protocol):
    def add_space(self, space: SpaceRecord) -> None: ...

    def get_space(self, space_id: str) -> SpaceRecord | None: ...

    def list_spaces(self) -> list[SpaceRecord]: ...

    def update_space(self, space: SpaceRecord) -> None: ...

    def add_invite(self, invite: InviteRecord) -> None: ...

    def get_invite(self, invite_id: str) -> InviteRecord | None: ...

    def list_invites(self, space_id: str) -> list[InviteRecord]: ...

    def use_invite(self, invite_id: str) -> InviteRecord | None:
        """Count one use if the invite has uses left; None when it has none (atomically)."""

    def revoke_invite(self, invite_id: str) -> None: ...

    def close(self) -> None: ...
