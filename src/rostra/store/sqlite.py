"""SQLite space store: the embedded default, one file in the data folder.

Storage plane.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from pathlib import Path

from rostra.store.base import InviteRecord, SpaceRecord

# the space store's file in the data folder, shared by every process of a server
DATABASE_NAME = "rostra.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spaces (
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL,
  scheduled_at TEXT,
  started_at TEXT,
  ended_at TEXT
);
CREATE TABLE IF NOT EXISTS invites (
  id TEXT PRIMARY KEY,
  space_id TEXT NOT NULL REFERENCES spaces(id),
  name TEXT NOT NULL,
  uses_max INTEGER,
  uses_count INTEGER NOT NULL DEFAULT 0,
  is_revoked INTEGER NOT NULL DEFAULT 0,
  expires_at TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS invites_space ON invites(space_id);
"""

_SPACE_COLUMNS = "id, title, status, created_at, scheduled_at, started_at, ended_at"
_INVITE_COLUMNS = "id, space_id, name, uses_max, uses_count, is_revoked, expires_at, created_at"


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _space(row: sqlite3.Row) -> SpaceRecord:
    created = _parse(row["created_at"])
    assert created is not None
    return SpaceRecord(
        id=row["id"],
        title=row["title"],
        status=row["status"],
        created_at=created,
        scheduled_at=_parse(row["scheduled_at"]),
        started_at=_parse(row["started_at"]),
        ended_at=_parse(row["ended_at"]),
    )


def _invite(row: sqlite3.Row) -> InviteRecord:
    expires, created = _parse(row["expires_at"]), _parse(row["created_at"])
    assert expires is not None
    assert created is not None
    return InviteRecord(
        id=row["id"],
        space_id=row["space_id"],
        name=row["name"],
        uses_max=row["uses_max"],
        uses_count=row["uses_count"],
        is_revoked=bool(row["is_revoked"]),
        expires_at=expires,
        created_at=created,
    )


class SqliteSpaceStore:
    def __init__(self, path: Path | str) -> None:
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def add_space(self, space: SpaceRecord) -> None:
        with self._lock:
            self._db.execute(
                f"INSERT INTO spaces ({_SPACE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (
                    space.id,
                    space.title,
                    space.status,
                    _time(space.created_at),
                    _time(space.scheduled_at),
                    _time(space.started_at),
                    _time(space.ended_at),
                ),
            )

    def get_space(self, space_id: str) -> SpaceRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_SPACE_COLUMNS} FROM spaces WHERE id = ?",  # noqa: S608
                (space_id,),
            ).fetchone()
        return _space(row) if row is not None else None

    def list_spaces(self) -> list[SpaceRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_SPACE_COLUMNS} FROM spaces ORDER BY created_at DESC"  # noqa: S608
            ).fetchall()
        return [_space(row) for row in rows]

    def update_space(self, space: SpaceRecord) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE spaces SET title = ?, status = ?, scheduled_at = ?, started_at = ?,"
                " ended_at = ? WHERE id = ?",
                (
                    space.title,
                    space.status,
                    _time(space.scheduled_at),
                    _time(space.started_at),
                    _time(space.ended_at),
                    space.id,
                ),
            )

    def add_invite(self, invite: InviteRecord) -> None:
        with self._lock:
            self._db.execute(
                f"INSERT INTO invites ({_INVITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (
                    invite.id,
                    invite.space_id,
                    invite.name,
                    invite.uses_max,
                    invite.uses_count,
                    int(invite.is_revoked),
                    _time(invite.expires_at),
                    _time(invite.created_at),
                ),
            )

    def get_invite(self, invite_id: str) -> InviteRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_INVITE_COLUMNS} FROM invites WHERE id = ?",  # noqa: S608
                (invite_id,),
            ).fetchone()
        return _invite(row) if row is not None else None

    def list_invites(self, space_id: str) -> list[InviteRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_INVITE_COLUMNS} FROM invites WHERE space_id = ?",  # noqa: S608
                (space_id,),
            ).fetchall()
        return [_invite(row) for row in rows]

    def use_invite(self, invite_id: str) -> InviteRecord | None:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE invites SET uses_count = uses_count + 1 WHERE id = ?"
                " AND (uses_max IS NULL OR uses_count < uses_max)",
                (invite_id,),
            )
            if cursor.rowcount == 0:
                return None
            row = self._db.execute(
                f"SELECT {_INVITE_COLUMNS} FROM invites WHERE id = ?",  # noqa: S608
                (invite_id,),
            ).fetchone()
        return _invite(row)

    def revoke_invite(self, invite_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE invites SET is_revoked = 1 WHERE id = ?", (invite_id,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
