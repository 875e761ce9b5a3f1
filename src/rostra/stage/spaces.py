"""Spaces: scheduled, live, ended; created, started and ended by their host or an admin.

Stage plane: uses the store port, knows nothing of HTTP or media.
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from rostra.clock import Clock, iso_utc
from rostra.errors import InvalidFields, SpaceEnded, SpaceNotFound
from rostra.ids import is_space_id, new_space_id
from rostra.store.base import SpaceRecord, SpaceStore

MAX_TITLE_CHARS = 200
# a schedule is for an event people plan to attend: after now, at most a year ahead
MAX_SCHEDULE_AHEAD = timedelta(days=366)
# control characters, surrogates, line/paragraph separators: a title is one printable line
_CONTROL_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class SpaceStatus(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


def _require_printable(field: str, text: str) -> None:
    for char in text:
        if unicodedata.category(char) in _CONTROL_CATEGORIES or char in _BIDI_CONTROLS:
            raise InvalidFields(
                f"{field} must not contain control characters (found U+{ord(char):04X})"
            )


def _checked_schedule(scheduled_at: datetime, now: datetime) -> datetime:
    """The time in UTC, if it is timezone-aware, after now and at most a year ahead."""
    if scheduled_at.tzinfo is None or scheduled_at.utcoffset() is None:
        raise InvalidFields("scheduled_at must carry a timezone (ISO 8601, e.g. …Z)")
    latest = now + MAX_SCHEDULE_AHEAD
    rule = f"a space is scheduled after now ({iso_utc(now)}) and at most a year ahead"
    given = scheduled_at.isoformat()[:40]
    # the year first: converting a time near year 1 or 9999 to UTC may overflow
    if not now.year - 1 <= scheduled_at.year <= latest.year + 1:
        raise InvalidFields(f"scheduled_at {given} is out of range: {rule}")
    in_utc = scheduled_at.astimezone(UTC)
    if in_utc <= now:
        raise InvalidFields(f"scheduled_at {given} is out of range: it is past; {rule}")
    if in_utc > latest:
        raise InvalidFields(
            f"scheduled_at {given} is out of range: more than a year ahead; {rule}"
            f" ({iso_utc(latest)})"
        )
    return in_utc


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
        _require_printable("title", clean)
        now = self._clock.now()
        if scheduled_at is not None and is_live:
            raise InvalidFields("a space created live has no scheduled_at: give one or the other")
        if scheduled_at is not None:
            scheduled_at = _checked_schedule(scheduled_at, now)
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
