"""Spent proof-of-work solutions in SQLite: shared by the worker processes of one machine.

Storage plane. One row per spent solution, keyed by its challenge's signature; `INSERT OR IGNORE`
says whether this worker was the first to spend it. Rows past their challenge's expiry are deleted
at most once a second, so the table holds at most (solutions per second x challenge lifetime) rows.
Same file and settings as the presence store (WAL, `busy_timeout`).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from rostra.errors import Unavailable
from rostra.store.presence_sqlite import DEFAULT_BUSY_TIMEOUT_S, open_database

RETRY_AFTER_S = 1.0
PRUNE_INTERVAL_S = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spent_solutions (
  key TEXT PRIMARY KEY,
  expires_at_s REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spent_solutions_by_expiry ON spent_solutions(expires_at_s);
"""


class SpentStoreUnavailable(Unavailable):
    """The database of spent solutions stayed locked or failed: try again shortly."""

    type_slug = "store-unavailable"
    title = "Store unavailable"


class SqliteSpentSolutions:
    """Spent solutions of the spaces of one machine, in the audience database file."""

    def __init__(self, path: Path, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._pruned_at_s = float("-inf")
        try:
            self._db = open_database(path, busy_timeout_s, _SCHEMA)
        except sqlite3.OperationalError as exc:
            raise self._unavailable("opening", exc) from exc

    def _unavailable(self, what: str, exc: sqlite3.OperationalError) -> SpentStoreUnavailable:
        return SpentStoreUnavailable(
            f"the audience database {self._path.name} did not answer ({what}): {exc}",
            retry_after_s=RETRY_AFTER_S,
        )

    def spend(self, key: str, expires_at_s: float, now_s: float) -> bool:
        with self._lock:
            try:
                if now_s - self._pruned_at_s >= PRUNE_INTERVAL_S:
                    self._db.execute(
                        "DELETE FROM spent_solutions WHERE expires_at_s <= ?", (now_s,)
                    )
                    self._pruned_at_s = now_s
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO spent_solutions (key, expires_at_s) VALUES (?, ?)",
                    (key, expires_at_s),
                )
            except sqlite3.OperationalError as exc:
                raise self._unavailable("spending a solution", exc) from exc
            return cursor.rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._db.close()
