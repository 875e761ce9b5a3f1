"""One suite, every space store backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rostra.store import InviteRecord, MemorySpaceStore, SpaceRecord, SpaceStore, SqliteSpaceStore

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SpaceStore]:
    backend: SpaceStore = (
        MemorySpaceStore() if request.param == "memory" else SqliteSpaceStore(tmp_path / "db")
    )
    yield backend
    backend.close()


def space(space_id: str = "abcdefgh1234", **changes: object) -> SpaceRecord:
    fields: dict[str, object] = {
        "id": space_id,
        "title": "T",
        "status": "scheduled",
        "created_at": NOW,
    }
    fields.update(changes)
    return SpaceRecord(**fields)  # type: ignore[arg-type]


def invite(invite_id: str = "inv1", uses_max: int | None = None) -> InviteRecord:
    return InviteRecord(
        id=invite_id,
        space_id="abcdefgh1234",
        name="",
        uses_max=uses_max,
        uses_count=0,
        is_revoked=False,
        expires_at=NOW + timedelta(days=1),
        created_at=NOW,
    )


def test_space_round_trips_with_times(store: SpaceStore) -> None:
    record = space(scheduled_at=NOW + timedelta(hours=1))
    store.add_space(record)
    assert store.get_space(record.id) == record
    live = space(status="live", started_at=NOW)
    store.update_space(live)
    assert store.get_space(record.id) == live
    assert store.get_space("missing12345") is None
    assert [s.id for s in store.list_spaces()] == [record.id]


def test_invite_uses_stop_at_the_limit(store: SpaceStore) -> None:
    store.add_space(space())
    store.add_invite(invite(uses_max=2))
    assert store.use_invite("inv1") is not None
    used = store.use_invite("inv1")
    assert used is not None
    assert used.uses_count == 2
    assert store.use_invite("inv1") is None


def test_unlimited_invite_and_revocation(store: SpaceStore) -> None:
    store.add_space(space())
    store.add_invite(invite())
    for _ in range(5):
        assert store.use_invite("inv1") is not None
    store.revoke_invite("inv1")
    revoked = store.get_invite("inv1")
    assert revoked is not None
    assert revoked.is_revoked
    assert [i.id for i in store.list_invites("abcdefgh1234")] == ["inv1"]
