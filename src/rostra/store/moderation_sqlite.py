"""SQLite moderation store: blocked devices, hands' devices and the moderation log of every
worker process of one machine.

Storage plane. Same file and locking as the other audience stores; every write also deletes what
expired and what lies past the per-space bounds.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rostra.store.moderation import (
    MAX_BLOCKS_PER_SPACE,
    MAX_HAND_DEVICES_PER_SPACE,
    MAX_LOG_ENTRIES,
    LogEntry,
)
from rostra.store.presence_sqlite import DEFAULT_BUSY_TIMEOUT_S, open_database
from rostra.store.reactions_sqlite import StoreUnavailable

RETRY_AFTER_S = 1.0
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS moderation_blocks (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  space_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  until_s REAL NOT NULL,
  UNIQUE (space_id, device_id)
);
CREATE TABLE IF NOT EXISTS moderation_hand_devices (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  space_id TEXT NOT NULL,
  listener_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  until_s REAL NOT NULL,
  UNIQUE (space_id, listener_id)
);
CREATE TABLE IF NOT EXISTS moderation_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  space_id TEXT NOT NULL,
  entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS moderation_log_by_space ON moderation_log(space_id, seq);
"""


class SqliteModerationStore:
    def __init__(self, path: Path, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        self._path = path
        self._lock = threading.Lock()
        try:
            self._db = open_database(path, busy_timeout_s, _SCHEMA)
        except sqlite3.OperationalError as exc:
            raise self._unavailable("opening", exc) from exc

    def _unavailable(self, what: str, exc: sqlite3.OperationalError) -> StoreUnavailable:
        return StoreUnavailable(
            f"the audience database {self._path.name} did not answer ({what}): {exc}",
            retry_after_s=RETRY_AFTER_S,
        )

    def _run(self, what: str, work: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            try:
                return work(self._db)
            except sqlite3.OperationalError as exc:
                raise self._unavailable(what, exc) from exc

    def _write(self, what: str, statements: list[tuple[str, tuple[object, ...]]]) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    db.execute(sql, params)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

        self._run(what, work)

    def block(self, space_id: str, device_id: str, until_s: float, now_s: float) -> None:
        self._write(
            "blocking a device",
            [
                (
                    "INSERT OR REPLACE INTO moderation_blocks (space_id, device_id, until_s) "
                    "VALUES (?, ?, ?)",
                    (space_id, device_id, until_s),
                ),
                ("DELETE FROM moderation_blocks WHERE until_s <= ?", (now_s,)),
                (
                    "DELETE FROM moderation_blocks WHERE space_id = ? AND seq NOT IN (SELECT seq "
                    "FROM moderation_blocks WHERE space_id = ? ORDER BY seq DESC LIMIT ?)",
                    (space_id, space_id, MAX_BLOCKS_PER_SPACE),
                ),
            ],
        )

    def is_blocked(self, space_id: str, device_id: str, now_s: float) -> bool:
        row = self._run(
            "reading a block",
            lambda db: db.execute(
                "SELECT 1 FROM moderation_blocks WHERE space_id = ? AND device_id = ? "
                "AND until_s > ?",
                (space_id, device_id, now_s),
            ).fetchone(),
        )
        return row is not None

    def blocked_devices(self, space_id: str, now_s: float) -> frozenset[str]:
        rows = self._run(
            "reading blocks",
            lambda db: db.execute(
                "SELECT device_id FROM moderation_blocks WHERE space_id = ? AND until_s > ? "
                "LIMIT ?",
                (space_id, now_s, MAX_BLOCKS_PER_SPACE),
            ).fetchall(),
        )
        return frozenset(str(row[0]) for row in rows)

    def remember_hand_device(
        self, space_id: str, listener_id: str, device_id: str, until_s: float
    ) -> None:
        self._write(
            "remembering a hand's device",
            [
                (
                    "INSERT OR REPLACE INTO moderation_hand_devices "
                    "(space_id, listener_id, device_id, until_s) VALUES (?, ?, ?, ?)",
                    (space_id, listener_id, device_id, until_s),
                ),
                (
                    "DELETE FROM moderation_hand_devices WHERE space_id = ? AND seq NOT IN "
                    "(SELECT seq FROM moderation_hand_devices WHERE space_id = ? "
                    "ORDER BY seq DESC LIMIT ?)",
                    (space_id, space_id, MAX_HAND_DEVICES_PER_SPACE),
                ),
            ],
        )

    def hand_device(self, space_id: str, listener_id: str, now_s: float) -> str | None:
        row = self._run(
            "reading a hand's device",
            lambda db: db.execute(
                "SELECT device_id FROM moderation_hand_devices WHERE space_id = ? "
                "AND listener_id = ? AND until_s > ?",
                (space_id, listener_id, now_s),
            ).fetchone(),
        )
        return str(row[0]) if row is not None else None

    def append(self, space_id: str, entry: LogEntry) -> None:
        self._write(
            "writing the moderation log",
            [
                (
                    "INSERT INTO moderation_log (space_id, entry) VALUES (?, ?)",
                    (space_id, entry.encode()),
                ),
                (
                    "DELETE FROM moderation_log WHERE space_id = ? AND seq NOT IN (SELECT seq "
                    "FROM moderation_log WHERE space_id = ? ORDER BY seq DESC LIMIT ?)",
                    (space_id, space_id, MAX_LOG_ENTRIES),
                ),
            ],
        )

    def entries(self, space_id: str) -> list[LogEntry]:
        rows = self._run(
            "reading the moderation log",
            lambda db: db.execute(
                "SELECT entry FROM moderation_log WHERE space_id = ? ORDER BY seq LIMIT ?",
                (space_id, MAX_LOG_ENTRIES),
            ).fetchall(),
        )
        return [LogEntry.decode(str(row[0])) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
