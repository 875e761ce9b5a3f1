"""A space's scheduled start: timezone-aware, after now, at most a year ahead, kept in UTC; a
space created live takes none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from rostra.clock import ManualClock
from rostra.errors import InvalidFields
from rostra.stage.spaces import MAX_SCHEDULE_AHEAD, SpaceService, SpaceStatus
from rostra.store import MemorySpaceStore

NOW = datetime(2026, 11, 29, 23, 0, tzinfo=UTC)


@pytest.fixture
def spaces() -> SpaceService:
    return SpaceService(MemorySpaceStore(), ManualClock(NOW))


def test_schedule_is_kept_in_utc(spaces: SpaceService) -> None:
    paris = timezone(timedelta(hours=1))
    space = spaces.create("Later", scheduled_at=datetime(2026, 11, 30, 19, 0, tzinfo=paris))

    assert space.status == SpaceStatus.SCHEDULED
    assert space.scheduled_at == datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
    assert space.scheduled_at.tzinfo == UTC


@pytest.mark.parametrize(
    ("scheduled_at", "words"),
    [
        (NOW, "is past"),
        (NOW - timedelta(seconds=1), "is past"),
        (datetime(1999, 12, 31, 23, 59, tzinfo=UTC), "out of range"),
        (NOW + MAX_SCHEDULE_AHEAD + timedelta(seconds=1), "more than a year ahead"),
        (datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-12))), "out of range"),
        (datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=12))), "out of range"),
        (datetime(2026, 12, 1, 18, 0), "timezone"),  # naive: refused
    ],
)
def test_schedule_outside_now_to_a_year_ahead_is_refused(
    spaces: SpaceService, scheduled_at: datetime, words: str
) -> None:
    with pytest.raises(InvalidFields, match=words) as refused:
        spaces.create("Later", scheduled_at=scheduled_at)
    if words != "timezone":
        assert "2026-11-29T23:00:00.000Z" in str(refused.value)  # the rule names now


def test_schedule_at_the_edges_is_accepted(spaces: SpaceService) -> None:
    soonest = spaces.create("Soon", scheduled_at=NOW + timedelta(seconds=1))
    latest = spaces.create("Latest", scheduled_at=NOW + MAX_SCHEDULE_AHEAD)

    assert soonest.scheduled_at == NOW + timedelta(seconds=1)
    assert latest.scheduled_at == NOW + MAX_SCHEDULE_AHEAD


def test_space_created_live_takes_no_schedule(spaces: SpaceService) -> None:
    with pytest.raises(InvalidFields, match="created live has no scheduled_at"):
        spaces.create("Now", scheduled_at=NOW + timedelta(hours=1), is_live=True)
