"""SQLite presence store: one count shared by every worker process of one machine, no service.

Storage plane. The same sketches as the in-process store (Apache DataSketches HLL_4, precision 15,
0.57 % relative error), kept in a SQLite file in the data folder: one row per (space, slice) holds
the slice's compact sketch, updated read-modify-write inside `BEGIN IMMEDIATE`, so writers of
several processes never lose each other's ids (HLL registers only grow). A count unions the slices
of the window; the admissions sketch and the peak sit in one row per space, and the peak is raised
with `MAX` in one statement, so a worker's low count never lowers it. Slices older than the window
are deleted on every write and spaces untouched for a week with them: bounded whatever the input.
WAL mode: reads never wait for the writer; writers wait up to `busy_timeout_s`, then the call
raises PresenceUnavailable and the gate retries its batch.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import datasketches

from rostra.store.presence import (
    PresenceBatch,
    PresenceCount,
    PresenceUnavailable,
    SlidingWindow,
    hll_relative_error,
)
from rostra.store.presence_memory import PRECISION_BITS

_T = TypeVar("_T")
_SKETCH_TYPE = datasketches.tgt_hll_type.HLL_4
DEFAULT_BUSY_TIMEOUT_S = 2.0
# Admissions and peak outlive any event: a space's row goes a week after its last write.
DEFAULT_SPACE_TTL_S = 7 * 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS presence_slices (
  space_id TEXT NOT NULL,
  slice_start_ms INTEGER NOT NULL,
  sketch BLOB NOT NULL,
  PRIMARY KEY (space_id, slice_start_ms)
);
CREATE INDEX IF NOT EXISTS presence_slices_by_start ON presence_slices(slice_start_ms);
CREATE TABLE IF NOT EXISTS presence_spaces (
  space_id TEXT PRIMARY KEY,
  admitted BLOB,
  peak INTEGER NOT NULL DEFAULT 0,
  touched_at_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS presence_spaces_by_touch ON presence_spaces(touched_at_s);
"""


def _new_sketch() -> Any:
    return datasketches.hll_sketch(PRECISION_BITS, _SKETCH_TYPE)


def _updated(blob: bytes | None, listener_ids: Collection[str]) -> bytes:
    sketch = datasketches.hll_sketch.deserialize(blob) if blob is not None else _new_sketch()
    for listener_id in listener_ids:
        sketch.update(listener_id)
    return bytes(sketch.serialize_compact())


def _estimate(blob: bytes | None) -> int:
    if blob is None:
        return 0
    return round(float(datasketches.hll_sketch.deserialize(blob).get_estimate()))


WAL_RETRY_S = 0.01


def enable_wal(db: sqlite3.Connection, timeout_s: float) -> None:
    """Turn WAL on. Two processes opening a new file together may be told "database is locked"
    at once, the busy timeout not waited out (SQLite does not wait while changing the journal
    mode): tried again until `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(WAL_RETRY_S)


def open_database(path: Path, busy_timeout_s: float, schema: str) -> sqlite3.Connection:
    """A connection in autocommit mode with WAL on; the schema made if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(
        str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
    )
    enable_wal(db, busy_timeout_s)
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)
    return db


class SqlitePresenceStore:
    """Presence shared by the processes that open the same file (one machine: WAL needs it)."""

    def __init__(
        self,
        path: Path,
        window: SlidingWindow | None = None,
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        space_ttl_s: float = DEFAULT_SPACE_TTL_S,
    ) -> None:
        self._window = window or SlidingWindow()
        self._space_ttl_s = space_ttl_s
        self._error = hll_relative_error(PRECISION_BITS)
        self._path = path
        # one connection writes, one reads: a count never queues behind this process's flush
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._writer = self._call("opening", lambda: open_database(path, busy_timeout_s, _SCHEMA))
        self._reader = self._call("opening", lambda: open_database(path, busy_timeout_s, ""))

    @property
    def window(self) -> SlidingWindow:
        return self._window

    def _call(self, what: str, operation: Callable[[], _T]) -> _T:
        try:
            return operation()
        except sqlite3.OperationalError as exc:
            raise PresenceUnavailable(
                f"presence database {self._path} is unavailable for {what}: {exc}"
            ) from exc

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """`BEGIN IMMEDIATE` on the writer: other processes' writers wait, readers do not."""
        db = self._writer
        with self._write_lock:
            self._call(what, lambda: db.execute("BEGIN IMMEDIATE"))
            try:
                yield db
                self._call(what, lambda: db.execute("COMMIT"))
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def add_heartbeats(self, space_id: str, listener_ids: Sequence[str], now_s: float) -> None:
        self.add_batches([PresenceBatch(space_id, listener_ids, (), now_s)])

    def add_admissions(self, space_id: str, listener_ids: Sequence[str], now_s: float) -> None:
        self.add_batches([PresenceBatch(space_id, (), listener_ids, now_s)])

    def add_batches(self, batches: Sequence[PresenceBatch]) -> None:
        batches = [batch for batch in batches if batch.heartbeats or batch.admissions]
        if not batches:
            return
        latest_s = max(batch.at_s for batch in batches)
        with self._transaction("writes") as db:
            self._call("writes", lambda: self._write(db, batches, latest_s))

    def _write(
        self, db: sqlite3.Connection, batches: Sequence[PresenceBatch], now_s: float
    ) -> None:
        for batch in batches:
            db.execute(
                "INSERT INTO presence_spaces (space_id, touched_at_s) VALUES (?, ?) "
                "ON CONFLICT (space_id) DO UPDATE SET "
                "touched_at_s = MAX(touched_at_s, excluded.touched_at_s)",
                (batch.space_id, batch.at_s),
            )
            if batch.heartbeats:
                self._add_to_slice(db, batch)
            if batch.admissions:
                (admitted,) = db.execute(
                    "SELECT admitted FROM presence_spaces WHERE space_id = ?", (batch.space_id,)
                ).fetchone()
                db.execute(
                    "UPDATE presence_spaces SET admitted = ? WHERE space_id = ?",
                    (_updated(admitted, batch.admissions), batch.space_id),
                )
        oldest_ms = self._window.start_ms(self._window.counted(now_s).start)
        db.execute("DELETE FROM presence_slices WHERE slice_start_ms < ?", (oldest_ms,))
        db.execute(
            "DELETE FROM presence_spaces WHERE touched_at_s < ?", (now_s - self._space_ttl_s,)
        )

    def _add_to_slice(self, db: sqlite3.Connection, batch: PresenceBatch) -> None:
        start_ms = self._window.start_ms(self._window.slice_of(batch.at_s))
        row = db.execute(
            "SELECT sketch FROM presence_slices WHERE space_id = ? AND slice_start_ms = ?",
            (batch.space_id, start_ms),
        ).fetchone()
        db.execute(
            "INSERT INTO presence_slices (space_id, slice_start_ms, sketch) VALUES (?, ?, ?) "
            "ON CONFLICT (space_id, slice_start_ms) DO UPDATE SET sketch = excluded.sketch",
            (batch.space_id, start_ms, _updated(row[0] if row else None, batch.heartbeats)),
        )

    def _window_ms(self, now_s: float) -> tuple[int, int]:
        counted = self._window.counted(now_s)
        return self._window.start_ms(counted.start), self._window.start_ms(counted.stop - 1)

    def _read(self, space_id: str, now_s: float) -> tuple[list[bytes], tuple[Any, int] | None]:
        """The window's slice sketches and the space's (admitted, peak), from one snapshot."""
        first_ms, last_ms = self._window_ms(now_s)
        with self._read_lock:
            self._reader.execute("BEGIN")
            try:
                slices = self._reader.execute(
                    "SELECT sketch FROM presence_slices "
                    "WHERE space_id = ? AND slice_start_ms BETWEEN ? AND ?",
                    (space_id, first_ms, last_ms),
                ).fetchall()
                space = self._reader.execute(
                    "SELECT admitted, peak FROM presence_spaces WHERE space_id = ?", (space_id,)
                ).fetchone()
            finally:
                self._reader.execute("COMMIT")
        return [row[0] for row in slices], (space[0], space[1]) if space else None

    def _raise_peak(self, space_id: str, listeners: int) -> int:
        """The stored peak raised to `listeners`; if the file stays locked, the next count will."""
        try:
            with self._write_lock:
                rows = self._writer.execute(  # fetched whole: the statement ends, it commits
                    "UPDATE presence_spaces SET peak = MAX(peak, ?) WHERE space_id = ? "
                    "RETURNING peak",
                    (listeners, space_id),
                ).fetchall()
        except sqlite3.OperationalError:
            return listeners
        return int(rows[0][0]) if rows else listeners

    def count(self, space_id: str, now_s: float) -> PresenceCount:
        slices, space = self._call("a count", lambda: self._read(space_id, now_s))
        if space is None:
            return PresenceCount(0, self._error, 0, 0, counted_at_s=now_s)
        union = datasketches.hll_union(PRECISION_BITS)
        for blob in slices:
            union.update(datasketches.hll_sketch.deserialize(blob))
        listeners = round(union.get_estimate())
        admitted_blob, peak = space
        if listeners > peak:
            peak = self._raise_peak(space_id, listeners)
        return PresenceCount(
            listeners=listeners,
            error=self._error,
            admitted=_estimate(admitted_blob),
            peak=peak,
            counted_at_s=now_s,
        )

    def memory_bytes(self, space_id: str, now_s: float) -> int:
        first_ms, last_ms = self._window_ms(now_s)

        def read() -> int:
            with self._read_lock:
                (size,) = self._reader.execute(
                    "SELECT COALESCE(SUM(LENGTH(sketch)), 0) FROM presence_slices "
                    "WHERE space_id = ? AND slice_start_ms BETWEEN ? AND ?",
                    (space_id, first_ms, last_ms),
                ).fetchone()
            return int(size)

        return self._call("memory usage", read)

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._writer.close()
            self._reader.close()
