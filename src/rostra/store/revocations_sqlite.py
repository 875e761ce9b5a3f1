"""SQLite revocation log: the revoked tickets of every worker process of one machine.

Storage plane. One row per revocation, numbered in order (the cursor); rows whose tickets have
all expired are deleted on every write, and past MAX_REVOCATIONS the oldest rows go. Same file
and locking as the presence and reaction stores. A table made before rows carried `revoked_at_s`
gains the column; its old rows (NULL) revoke every ticket of their listener, as they meant then.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from rostra.store.presence_sqlite import DEFAULT_BUSY_TIMEOUT_S, open_database
from rostra.store.reactions_sqlite import StoreUnavailable
from rostra.store.revocations import MAX_REVOCATIONS, SYNC_BATCH, Revocation

RETRY_AFTER_S = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS revoked_tickets (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  listener_id TEXT NOT NULL,
  until_s REAL NOT NULL,
  revoked_at_s REAL
);
CREATE INDEX IF NOT EXISTS revoked_tickets_by_until ON revoked_tickets(until_s);
"""


def _add_revoked_at(db: sqlite3.Connection) -> None:
    """Give a table of an older data folder its `revoked_at_s` column (once, by any worker)."""
    columns = {str(row[1]) for row in db.execute("PRAGMA table_info(revoked_tickets)")}
    if "revoked_at_s" in columns:
        return
    try:
        db.execute("ALTER TABLE revoked_tickets ADD COLUMN revoked_at_s REAL")
    except sqlite3.OperationalError as exc:
        if "duplicate column" not in str(exc):  # another worker added it meanwhile
            raise


class SqliteRevocationLog:
    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        max_entries: int = MAX_REVOCATIONS,
    ) -> None:
        self._path = path
        self._max_entries = max_entries
        self._lock = threading.Lock()
        try:
            self._db = open_database(path, busy_timeout_s, _SCHEMA)
            _add_revoked_at(self._db)
        except sqlite3.OperationalError as exc:
            raise self._unavailable("opening", exc) from exc

    def _unavailable(self, what: str, exc: sqlite3.OperationalError) -> StoreUnavailable:
        return StoreUnavailable(
            f"the audience database {self._path.name} did not answer ({what}): {exc}",
            retry_after_s=RETRY_AFTER_S,
        )

    def revoke(self, revocation: Revocation, now_s: float) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute(
                        "INSERT INTO revoked_tickets (listener_id, until_s, revoked_at_s) "
                        "VALUES (?, ?, ?)",
                        (revocation.listener_id, revocation.until_s, revocation.revoked_at_s),
                    )
                    self._db.execute("DELETE FROM revoked_tickets WHERE until_s <= ?", (now_s,))
                    self._db.execute(
                        "DELETE FROM revoked_tickets WHERE seq <= "
                        "(SELECT MAX(seq) FROM revoked_tickets) - ?",
                        (self._max_entries,),
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                raise self._unavailable("revoking a ticket", exc) from exc

    def read_since(self, cursor: str, now_s: float) -> tuple[list[Revocation], str]:
        after = int(cursor or 0)
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT seq, listener_id, until_s, revoked_at_s FROM revoked_tickets "
                    "WHERE seq > ? "
                    "ORDER BY seq LIMIT ?",
                    (after, SYNC_BATCH),
                ).fetchall()
            except sqlite3.OperationalError as exc:
                raise self._unavailable("reading revocations", exc) from exc
        last = int(rows[-1][0]) if rows else after
        fresh = [
            Revocation(str(lid), float(until), float("inf") if at is None else float(at))
            for _, lid, until, at in rows
            if until > now_s
        ]
        return fresh, str(last)

    def close(self) -> None:
        with self._lock:
            self._db.close()
