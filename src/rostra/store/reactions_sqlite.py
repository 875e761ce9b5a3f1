"""SQLite reactions and raised hands: shared by every worker process of one machine, no service.

Storage plane. Reactions are summed per (space, second, emoji) row by an upsert, so a space holds at
most one row per emoji per second of the window whatever the number of workers; a tally sums the
window's rows, and older rows are deleted on every write. The hand queue is one row per raised hand,
ordered by raise time (a second raise keeps the first place), capped per space at HANDS_MAX as in
the in-process store (HandQueueFull past it); a hand expires a day after it was raised. Same file
as the presence store (WAL, `busy_timeout`); a write that waits longer raises StoreUnavailable.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rostra.errors import Unavailable
from rostra.store.presence_sqlite import DEFAULT_BUSY_TIMEOUT_S, open_database
from rostra.store.reactions import HANDS_MAX, REACTION_WINDOW_S, RaisedHand, hand_queue_full

RETRY_AFTER_S = 1.0
HAND_TTL_S = 24 * 3600

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reactions (
  space_id TEXT NOT NULL,
  second INTEGER NOT NULL,
  emoji TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (space_id, second, emoji)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reactions_by_second ON reactions(second);
CREATE TABLE IF NOT EXISTS hands (
  space_id TEXT NOT NULL,
  listener_id TEXT NOT NULL,
  raised_at_s REAL NOT NULL,
  PRIMARY KEY (space_id, listener_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS hands_in_order ON hands(space_id, raised_at_s);
CREATE INDEX IF NOT EXISTS hands_by_age ON hands(raised_at_s);
"""


class StoreUnavailable(Unavailable):
    """The audience database of this machine stayed locked or failed: try again shortly."""

    type_slug = "store-unavailable"
    title = "Store unavailable"


def _unavailable(path: Path, what: str, exc: sqlite3.OperationalError) -> StoreUnavailable:
    return StoreUnavailable(
        f"the audience database {path.name} did not answer ({what}): {exc}",
        retry_after_s=RETRY_AFTER_S,
    )


class SqliteReactionStore:
    """Reactions and hands of the spaces of one machine, in one SQLite file."""

    def __init__(
        self,
        path: Path,
        window_s: float = REACTION_WINDOW_S,
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        hands_max: int = HANDS_MAX,
    ) -> None:
        self._window_s = int(window_s)
        self._hands_max = hands_max
        self._path = path
        self._lock = threading.Lock()
        try:
            self._db = open_database(path, busy_timeout_s, _SCHEMA)
        except sqlite3.OperationalError as exc:
            raise _unavailable(path, "opening", exc) from exc

    def _read(self, what: str, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        """`operation` alone on the connection (WAL: it never waits for a writer)."""
        with self._lock:
            try:
                return operation(self._db)
            except sqlite3.OperationalError as exc:
                raise _unavailable(self._path, what, exc) from exc

    def _write(self, what: str, operation: Callable[[sqlite3.Connection], object]) -> None:
        """`operation` in one transaction that holds the write lock from its start."""

        def transaction(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                operation(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

        self._read(what, transaction)

    def add_reactions(self, space_id: str, counts: dict[str, int], now_s: float) -> None:
        second = int(now_s)

        def write(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO reactions (space_id, second, emoji, count) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (space_id, second, emoji) "
                "DO UPDATE SET count = count + excluded.count",
                [(space_id, second, emoji, count) for emoji, count in counts.items()],
            )
            db.execute("DELETE FROM reactions WHERE second <= ?", (second - self._window_s,))

        if counts:
            self._write("reactions", write)

    def tally(self, space_id: str, now_s: float) -> dict[str, int]:
        def read(db: sqlite3.Connection) -> list[tuple[str, int]]:
            return db.execute(
                "SELECT emoji, SUM(count) FROM reactions WHERE space_id = ? AND second > ? "
                "GROUP BY emoji",
                (space_id, int(now_s) - self._window_s),
            ).fetchall()

        return {emoji: int(count) for emoji, count in self._read("reactions", read)}

    def raise_hand(self, space_id: str, listener_id: str, now_s: float) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM hands WHERE raised_at_s < ?", (now_s - HAND_TTL_S,))
            is_queued = db.execute(
                "SELECT 1 FROM hands WHERE space_id = ? AND listener_id = ?",
                (space_id, listener_id),
            ).fetchone()
            if is_queued:
                return  # a second raise keeps the first place
            (queued,) = db.execute(
                "SELECT COUNT(*) FROM hands WHERE space_id = ?", (space_id,)
            ).fetchone()
            if queued >= self._hands_max:
                raise hand_queue_full(space_id, self._hands_max)
            db.execute(
                "INSERT INTO hands (space_id, listener_id, raised_at_s) VALUES (?, ?, ?)",
                (space_id, listener_id, now_s),
            )

        self._write("hands", write)

    def lower_hand(self, space_id: str, listener_id: str) -> None:
        self._write(
            "hands",
            lambda db: db.execute(
                "DELETE FROM hands WHERE space_id = ? AND listener_id = ?", (space_id, listener_id)
            ),
        )

    def hands(self, space_id: str) -> list[RaisedHand]:
        rows: list[tuple[str, float]] = self._read(
            "hands",
            lambda db: db.execute(
                "SELECT listener_id, raised_at_s FROM hands WHERE space_id = ? "
                "ORDER BY raised_at_s, listener_id",
                (space_id,),
            ).fetchall(),
        )
        return [RaisedHand(listener_id=lid, raised_at_s=at) for lid, at in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
