"""SQLite incident log: the per-second counters of every process of one machine in one file of the
data folder (listener workers add their requests, the origin its health), no service.

Storage plane. Counts and prefix counts are added (`ON CONFLICT … count + excluded.count`), so
workers flushing the same second sum up; gauges are replaced (every writer samples the same value).
Rows older than the retention are pruned. WAL mode: the report's reads never wait for a flush.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from rostra.store.incident import (
    CountRow,
    GaugeRow,
    IncidentRows,
    IncidentStoreUnavailable,
    PrefixRow,
)
from rostra.store.presence_sqlite import open_database

DATABASE_NAME = "incident.db"
BUSY_TIMEOUT_S = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incident_counts (
  space_id TEXT NOT NULL, second INTEGER NOT NULL, endpoint TEXT NOT NULL, verdict TEXT NOT NULL,
  count INTEGER NOT NULL, PRIMARY KEY (space_id, second, endpoint, verdict)
);
CREATE TABLE IF NOT EXISTS incident_prefixes (
  space_id TEXT NOT NULL, second INTEGER NOT NULL, prefix TEXT NOT NULL,
  count INTEGER NOT NULL, PRIMARY KEY (space_id, second, prefix)
);
CREATE TABLE IF NOT EXISTS incident_gauges (
  space_id TEXT NOT NULL, second INTEGER NOT NULL, name TEXT NOT NULL,
  value REAL NOT NULL, PRIMARY KEY (space_id, second, name)
);
CREATE INDEX IF NOT EXISTS incident_counts_by_second ON incident_counts(second);
CREATE INDEX IF NOT EXISTS incident_prefixes_by_second ON incident_prefixes(second);
CREATE INDEX IF NOT EXISTS incident_gauges_by_second ON incident_gauges(second);
"""


class SqliteIncidentStore:
    """Shared by the processes that open the same file; calls block: run them off the loop."""

    def __init__(self, path: Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self._lock = threading.Lock()
        try:
            self._db = open_database(path, busy_timeout_s, _SCHEMA)
        except sqlite3.Error as exc:
            raise IncidentStoreUnavailable(f"incident database {path}: {exc}") from exc

    def add(self, rows: IncidentRows) -> None:
        if not rows:
            return
        try:
            self._add(rows)
        except sqlite3.Error as exc:
            raise IncidentStoreUnavailable(f"incident database unavailable: {exc}") from exc

    def _add(self, rows: IncidentRows) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO incident_counts VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE "
                    "SET count = count + excluded.count",
                    [(r.space_id, r.second, r.endpoint, r.verdict, r.count) for r in rows.counts],
                )
                db.executemany(
                    "INSERT INTO incident_prefixes VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE "
                    "SET count = count + excluded.count",
                    [(r.space_id, r.second, r.prefix, r.count) for r in rows.prefixes],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO incident_gauges VALUES (?, ?, ?, ?)",
                    [(r.space_id, r.second, r.name, r.value) for r in rows.gauges],
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def read(self, space_id: str) -> IncidentRows:
        try:
            return self._read(space_id)
        except sqlite3.Error as exc:
            raise IncidentStoreUnavailable(f"incident database unavailable: {exc}") from exc

    def _read(self, space_id: str) -> IncidentRows:
        with self._lock:
            db = self._db
            counts = db.execute(
                "SELECT space_id, second, endpoint, verdict, count FROM incident_counts "
                "WHERE space_id = ? ORDER BY second",
                (space_id,),
            ).fetchall()
            prefixes = db.execute(
                "SELECT space_id, second, prefix, count FROM incident_prefixes "
                "WHERE space_id = ? ORDER BY second",
                (space_id,),
            ).fetchall()
            gauges = db.execute(
                "SELECT space_id, second, name, value FROM incident_gauges "
                "WHERE space_id = ? ORDER BY second",
                (space_id,),
            ).fetchall()
        return IncidentRows(
            counts=[CountRow(*row) for row in counts],
            prefixes=[PrefixRow(*row) for row in prefixes],
            gauges=[GaugeRow(*row) for row in gauges],
        )

    def prune(self, before_s: int) -> None:
        try:
            self._prune(before_s)
        except sqlite3.Error as exc:
            raise IncidentStoreUnavailable(f"incident database unavailable: {exc}") from exc

    def _prune(self, before_s: int) -> None:
        with self._lock:
            for table in ("incident_counts", "incident_prefixes", "incident_gauges"):
                self._db.execute(f"DELETE FROM {table} WHERE second < ?", (before_s,))  # noqa: S608 - table names are constants

    def close(self) -> None:
        with self._lock:
            self._db.close()
