"""SQLite space store: the embedded default, one file in the data folder.

Storage plane.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from rostra.errors import SpaceUnreadable
from rostra.store.base import InviteRecord, SpaceRecord
from rostra.store.presence_sqlite import enable_wal

log = logging.getLogger(__name__)

# the space store's file in the data folder, shared by every process of a server
DATABASE_NAME = "rostra.sqlite3"
# how long a write waits for another process's (and WAL for being turned on)
SPACE_STORE_TIMEOUT_S = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spaces (
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL,
  scheduled_at TEXT,
  started_at TEXT,
  ended_at TEXT,
  host_generation INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS invites (
  id TEXT PRIMARY KEY,
  space_id TEXT NOT NULL REFERENCES spaces(id),
  name TEXT NOT NULL,
  uses_max INTEGER,
  uses_count INTEGER NOT NULL DEFAULT 0,
  is_revoked INTEGER NOT NULL DEFAULT 0,
  expires_at TEXT NOT NULL,
  created_at TEXT NOT NULL,
  seats INTEGER
);
CREATE INDEX IF NOT EXISTS invites_space ON invites(space_id);
"""

# columns added after the first release: a data folder made before them gains them on open
_MIGRATIONS = (
    ("spaces", "host_generation", "INTEGER NOT NULL DEFAULT 0"),
    ("invites", "seats", "INTEGER"),
)

_SPACE_COLUMNS = (
    "id, title, status, created_at, scheduled_at, started_at, ended_at, host_generation"
)
_INVITE_COLUMNS = (
    "id, space_id, name, uses_max, uses_count, is_revoked, expires_at, created_at, seats"
)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: str | None) -> datetime | None:
    """A stored time in UTC; ValueError/OverflowError when it cannot be one (e.g. year 9999 with
    an offset, stored before scheduled times were bounded: every answer would fail on it)."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _space(row: sqlite3.Row) -> SpaceRecord:
    """The space of a row; SpaceUnreadable names the space and the value that cannot be read."""
    try:
        created = _parse(row["created_at"])
        if created is None:
            raise ValueError("created_at is empty")
        return SpaceRecord(
            id=row["id"],
            title=row["title"],
            status=row["status"],
            created_at=created,
            scheduled_at=_parse(row["scheduled_at"]),
            started_at=_parse(row["started_at"]),
            ended_at=_parse(row["ended_at"]),
            host_generation=int(row["host_generation"]),
        )
    except (ValueError, OverflowError, TypeError) as exc:
        raise SpaceUnreadable(
            f"space '{str(row['id'])[:40]}' has a stored value that cannot be read: {exc}"
        ) from exc


def _readable_spaces(rows: list[sqlite3.Row]) -> list[SpaceRecord]:
    """Every space that can be read; one that cannot is left out with a warning, so one bad
    row never takes the whole listing down."""
    spaces = []
    for row in rows:
        try:
            spaces.append(_space(row))
        except SpaceUnreadable as error:
            log.warning("space left out of the list", extra={"error": error.detail})
    return spaces


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
        seats=row["seats"],
    )


class SqliteSpaceStore:
    def __init__(self, path: Path | str) -> None:
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(path), timeout=SPACE_STORE_TIMEOUT_S, check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        enable_wal(self._db, SPACE_STORE_TIMEOUT_S)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            for table, column, declaration in _MIGRATIONS:
                present = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    try:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
                    except sqlite3.OperationalError:
                        # another process of the same server added it a moment ago
                        present = {
                            row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")
                        }
                        if column not in present:
                            raise

    def add_space(self, space: SpaceRecord) -> None:
        with self._lock:
            self._db.execute(
                f"INSERT INTO spaces ({_SPACE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (
                    space.id,
                    space.title,
                    space.status,
                    _time(space.created_at),
                    _time(space.scheduled_at),
                    _time(space.started_at),
                    _time(space.ended_at),
                    space.host_generation,
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
        return _readable_spaces(rows)

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
                f"INSERT INTO invites ({_INVITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (
                    invite.id,
                    invite.space_id,
                    invite.name,
                    invite.uses_max,
                    invite.uses_count,
                    int(invite.is_revoked),
                    _time(invite.expires_at),
                    _time(invite.created_at),
                    invite.seats,
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

    def refund_invite(self, invite_id: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE invites SET uses_count = uses_count - 1 WHERE id = ? AND uses_count > 0",
                (invite_id,),
            )

    def rotate_host_generation(self, space_id: str) -> SpaceRecord | None:
        with self._lock:
            self._db.execute(
                "UPDATE spaces SET host_generation = host_generation + 1 WHERE id = ?",
                (space_id,),
            )
            row = self._db.execute(
                f"SELECT {_SPACE_COLUMNS} FROM spaces WHERE id = ?",  # noqa: S608
                (space_id,),
            ).fetchone()
        return _space(row) if row is not None else None

    def revoke_invite(self, invite_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE invites SET is_revoked = 1 WHERE id = ?", (invite_id,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
