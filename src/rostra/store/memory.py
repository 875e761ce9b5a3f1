"""In-memory space store: for tests and throwaway servers.

Storage plane.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from rostra.store.base import InviteRecord, SpaceRecord


class MemorySpaceStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spaces: dict[str, SpaceRecord] = {}
        self._invites: dict[str, InviteRecord] = {}

    def add_space(self, space: SpaceRecord) -> None:
        with self._lock:
            self._spaces[space.id] = space

    def get_space(self, space_id: str) -> SpaceRecord | None:
        return self._spaces.get(space_id)

    def list_spaces(self) -> list[SpaceRecord]:
        return sorted(self._spaces.values(), key=lambda space: space.created_at, reverse=True)

    def update_space(self, space: SpaceRecord) -> None:
        with self._lock:
            # the host generation changes only by rotation, never by a stale record's update
            current = self._spaces.get(space.id)
            generation = current.host_generation if current is not None else space.host_generation
            self._spaces[space.id] = replace(space, host_generation=generation)

    def add_invite(self, invite: InviteRecord) -> None:
        with self._lock:
            self._invites[invite.id] = invite

    def get_invite(self, invite_id: str) -> InviteRecord | None:
        return self._invites.get(invite_id)

    def list_invites(self, space_id: str) -> list[InviteRecord]:
        return [invite for invite in self._invites.values() if invite.space_id == space_id]

    def use_invite(self, invite_id: str) -> InviteRecord | None:
        with self._lock:
            invite = self._invites.get(invite_id)
            if invite is None:
                return None
            if invite.uses_max is not None and invite.uses_count >= invite.uses_max:
                return None
            used = replace(invite, uses_count=invite.uses_count + 1)
            self._invites[invite_id] = used
            return used

    def refund_invite(self, invite_id: str) -> None:
        with self._lock:
            invite = self._invites.get(invite_id)
            if invite is not None and invite.uses_count > 0:
                self._invites[invite_id] = replace(invite, uses_count=invite.uses_count - 1)

    def rotate_host_generation(self, space_id: str) -> SpaceRecord | None:
        with self._lock:
            space = self._spaces.get(space_id)
            if space is None:
                return None
            rotated = replace(space, host_generation=space.host_generation + 1)
            self._spaces[space_id] = rotated
            return rotated

    def revoke_invite(self, invite_id: str) -> None:
        with self._lock:
            invite = self._invites.get(invite_id)
            if invite is not None:
                self._invites[invite_id] = replace(invite, is_revoked=True)

    def close(self) -> None:
        return None
