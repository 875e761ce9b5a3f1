"""Spaces: scheduled, live, ended; created, started and ended by their host or an admin.

Stage plane: uses the store port, knows nothing of HTTP or media.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from enum import StrEnum

from rostra.clock import Clock, iso_utc
from rostra.errors import InvalidFields, SpaceEnded, SpaceNotFound
from rostra.ids import is_space_id, new_space_id
from rostra.store.base import SpaceRecord, SpaceStore

MAX_TITLE_CHARS = 200


class SpaceStatus(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


class SpaceService:
    def __init__(self, store: SpaceStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def create(
        self, title: str, *, scheduled_at: datetime | None = None, is_live: bool = False
    ) -> SpaceRecord:
        clean = title.strip()
        if not clean:
            raise InvalidFields("title must not be empty")
        if len(clean) > MAX_TITLE_CHARS:
            raise InvalidFields(f"title has {len(clean)} characters; at most {MAX_TITLE_CHARS}")
        if scheduled_at is not None and scheduled_at.tzinfo is None:
            raise InvalidFields("scheduled_at must carry a timezone (ISO 8601, e.g. …Z)")
        now = self._clock.now()
        space = SpaceRecord(
            id=new_space_id(),
            title=clean,
            status=SpaceStatus.LIVE if is_live else SpaceStatus.SCHEDULED,
            created_at=now,
            scheduled_at=scheduled_at,
            started_at=now if is_live else None,
        )
        self._store.add_space(space)
        return space

    def get(self, space_id: str) -> SpaceRecord:
        space = self._store.get_space(space_id) if is_space_id(space_id) else None
        if space is None:
            raise SpaceNotFound(f"no space has id '{space_id[:40]}'")
        return space

    def list(self) -> list[SpaceRecord]:
        return self._store.list_spaces()

    def start(self, space_id: str) -> SpaceRecord:
        space = self.get(space_id)
        if space.status == SpaceStatus.ENDED:
            raise SpaceEnded(f"space '{space_id}' ended at {iso_utc(space.ended_at)}")
        if space.status == SpaceStatus.LIVE:
            return space
        live = replace(space, status=SpaceStatus.LIVE, started_at=self._clock.now())
        self._store.update_space(live)
        return live

    def end(self, space_id: str) -> SpaceRecord:
        space = self.get(space_id)
        if space.status == SpaceStatus.ENDED:
            return space
        ended = replace(space, status=SpaceStatus.ENDED, ended_at=self._clock.now())
        self._store.update_space(ended)
        return ended

    def require_open(self, space_id: str) -> SpaceRecord:
        """The space, if it can still take speakers (scheduled green room or live)."""
        space = self.get(space_id)
        if space.status == SpaceStatus.ENDED:
            raise SpaceEnded(f"space '{space_id}' has ended; it takes no more speakers")
        return space
