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
    # host tokens carry this number; rotating the host link bumps it, so older tokens fail
    host_generation: int = 0


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
    # how many live stage sessions the invite may hold at once (None: personal, one, replaced)
    seats: int | None = None


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

    def refund_invite(self, invite_id: str) -> None:
        """Give back one counted use (a connection that failed); never below zero."""

    def revoke_invite(self, invite_id: str) -> None: ...

    def rotate_host_generation(self, space_id: str) -> SpaceRecord | None:
        """Bump the space's host generation (atomically); None when there is no such space."""

    def close(self) -> None: ...
