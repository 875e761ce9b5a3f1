"""Processes (here threads, each with its own connection) opening a new SQLite file at the same
instant: every one gets it in WAL mode. SQLite answers "database is locked" at once to some of
them while the journal mode changes, without waiting out the busy timeout; a worker of a fresh
deployment must not die of it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from rostra.store import SqliteSpaceStore
from rostra.store.presence_sqlite import open_database

OPENERS = 6
ROUNDS = 30
SCHEMA = "CREATE TABLE IF NOT EXISTS t (a INTEGER);"


def open_together(open_one: Callable[[Path], object], path: Path) -> list[BaseException]:
    barrier = threading.Barrier(OPENERS)
    errors: list[BaseException] = []

    def opener() -> None:
        barrier.wait()
        try:
            open_one(path)
        except Exception as error:  # noqa: BLE001 - what the test counts
            errors.append(error)

    threads = [threading.Thread(target=opener) for _ in range(OPENERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_a_new_file_opened_by_many_at_once_is_in_wal_mode_for_every_one(tmp_path: Path) -> None:
    for round_number in range(ROUNDS):
        path = tmp_path / f"audience-{round_number}.sqlite3"
        assert open_together(lambda p: open_database(p, 5.0, SCHEMA), path) == []
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
        path = tmp_path / f"rostra-{round_number}.sqlite3"
        assert open_together(lambda p: SqliteSpaceStore(p).close(), path) == []
