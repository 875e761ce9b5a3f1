"""Fixtures of the stage's tests: a space store holding one live space, on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rostra.store import MemorySpaceStore, SpaceRecord, SpaceStore, SqliteSpaceStore

SECRET = "s" * 43
SPACE = "abcdefgh1234"


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SpaceStore]:
    """A space store, in memory or in a SQLite file, with the live space SPACE."""
    backend: SpaceStore = (
        MemorySpaceStore() if request.param == "memory" else SqliteSpaceStore(tmp_path / "db")
    )
    backend.add_space(SpaceRecord(id=SPACE, title="T", status="live", created_at=datetime.now(UTC)))
    yield backend
    backend.close()
