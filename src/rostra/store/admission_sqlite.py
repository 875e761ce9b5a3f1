"""SQLite join queues and defence settings: shared by every worker process of one machine, so
two listener workers admit at the space's rate, not twice it.

Storage plane. Same file as the presence store (WAL, `busy_timeout`). A join is one
`BEGIN IMMEDIATE` transaction: read the space's row, apply the rules of admission_bucket.py,
write it back. Spent arrival numbers are rows kept for the life of an arrival token, deleted on
later writes: bounded by the admission rate times that life.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rostra.errors import Unavailable
from rostra.store.admission_bucket import (
    QUEUE_TTL_S,
    QueueSnapshot,
    QueueState,
    QueueVerdict,
    decide_join,
    new_state,
    snapshot_of,
    spent_verdict,
    state_from,
)
from rostra.store.admission_defense import DefenseOverrides
from rostra.store.presence_sqlite import DEFAULT_BUSY_TIMEOUT_S, open_database

RETRY_AFTER_S = 1.0
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS admission_queues (
  space_id TEXT PRIMARY KEY,
  arrivals INTEGER NOT NULL,
  watermark REAL NOT NULL,
  tokens REAL NOT NULL,
  updated_at_s REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS admission_queues_by_update ON admission_queues(updated_at_s);
CREATE TABLE IF NOT EXISTS admission_spent (
  space_id TEXT NOT NULL,
  number INTEGER NOT NULL,
  spent_at_s REAL NOT NULL,
  PRIMARY KEY (space_id, number)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS admission_spent_by_age ON admission_spent(spent_at_s);
CREATE TABLE IF NOT EXISTS space_defense (
  space_id TEXT PRIMARY KEY,
  pow TEXT,
  admission_rate REAL,
  admission_burst INTEGER
) WITHOUT ROWID;
"""


class AdmissionUnavailable(Unavailable):
    """The admission database of this machine stayed locked or failed: try again shortly."""

    type_slug = "store-unavailable"
    title = "Store unavailable"


class _Database:
    """One connection, used by one thread at a time; writes in `BEGIN IMMEDIATE`."""

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._db = self.run("opening", lambda: open_database(path, busy_timeout_s, _SCHEMA))

    def run(self, what: str, operation: Callable[[], _T]) -> _T:
        try:
            return operation()
        except sqlite3.OperationalError as exc:
            raise AdmissionUnavailable(
                f"the audience database {self._path.name} did not answer ({what}): {exc}",
                retry_after_s=RETRY_AFTER_S,
            ) from exc

    def read(self, what: str, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            return self.run(what, lambda: operation(self._db))

    def write(self, what: str, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        def transaction(db: sqlite3.Connection) -> _T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = operation(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return result

        return self.read(what, transaction)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _state(db: sqlite3.Connection, space_id: str) -> QueueState | None:
    row = db.execute(
        "SELECT arrivals, watermark, tokens, updated_at_s FROM admission_queues WHERE space_id = ?",
        (space_id,),
    ).fetchone()
    return state_from(row) if row else None


class SqliteAdmissionStore:
    def __init__(self, path: Path, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        self._db = _Database(path, busy_timeout_s)

    def join(
        self,
        space_id: str,
        number: int | None,
        *,
        now_s: float,
        rate: float,
        burst: int,
        spent_ttl_s: float,
    ) -> QueueVerdict:
        def transaction(db: sqlite3.Connection) -> QueueVerdict:
            db.execute("DELETE FROM admission_spent WHERE spent_at_s < ?", (now_s - spent_ttl_s,))
            db.execute(
                "DELETE FROM admission_queues WHERE updated_at_s < ?", (now_s - QUEUE_TTL_S,)
            )
            if (
                number is not None
                and db.execute(
                    "SELECT 1 FROM admission_spent WHERE space_id = ? AND number = ?",
                    (space_id, number),
                ).fetchone()
            ):
                return spent_verdict(number)
            state = _state(db, space_id) or new_state(now_s, burst)
            verdict, spent = decide_join(state, number, now_s, rate, burst)
            db.execute(
                "INSERT OR REPLACE INTO admission_queues "
                "(space_id, arrivals, watermark, tokens, updated_at_s) VALUES (?, ?, ?, ?, ?)",
                (space_id, state.arrivals, state.watermark, state.tokens, state.updated_at_s),
            )
            if spent is not None:
                db.execute(
                    "INSERT OR REPLACE INTO admission_spent (space_id, number, spent_at_s) "
                    "VALUES (?, ?, ?)",
                    (space_id, spent, now_s),
                )
            return verdict

        return self._db.write("join", transaction)

    def snapshot(self, space_id: str, *, now_s: float, rate: float, burst: int) -> QueueSnapshot:
        state = self._db.read("queue", lambda db: _state(db, space_id))
        return snapshot_of(state, now_s, rate, burst)

    def close(self) -> None:
        self._db.close()


class SqliteDefenseStore:
    def __init__(self, path: Path, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        self._db = _Database(path, busy_timeout_s)

    @staticmethod
    def _row(db: sqlite3.Connection, space_id: str) -> DefenseOverrides:
        row = db.execute(
            "SELECT pow, admission_rate, admission_burst FROM space_defense WHERE space_id = ?",
            (space_id,),
        ).fetchone()
        if row is None:
            return DefenseOverrides()
        return DefenseOverrides(
            pow=row[0],
            admission_rate=float(row[1]) if row[1] is not None else None,
            admission_burst=int(row[2]) if row[2] is not None else None,
        )

    def get(self, space_id: str) -> DefenseOverrides:
        return self._db.read("defense", lambda db: self._row(db, space_id))

    def update(self, space_id: str, update: DefenseOverrides) -> DefenseOverrides:
        def transaction(db: sqlite3.Connection) -> DefenseOverrides:
            merged = self._row(db, space_id).merged(update)
            db.execute(
                "INSERT OR REPLACE INTO space_defense "
                "(space_id, pow, admission_rate, admission_burst) VALUES (?, ?, ?, ?)",
                (space_id, merged.pow, merged.admission_rate, merged.admission_burst),
            )
            return merged

        return self._db.write("defense", transaction)

    def close(self) -> None:
        self._db.close()
