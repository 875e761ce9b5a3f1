"""A space's defence settings as stored: only what a host or admin set (the rest follows the
deployment's defaults); the port and the in-process store.

Storage plane. SQLite (the workers of one machine) and Redis (gate nodes) stores sit beside the
admission stores in admission_sqlite.py and admission_redis.py.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DefenseOverrides:
    """None: the deployment's default applies."""

    pow: str | None = None
    admission_rate: float | None = None
    admission_burst: int | None = None

    def merged(self, update: DefenseOverrides) -> DefenseOverrides:
        """These settings with every field `update` sets replaced."""
        changes = {
            name: value
            for name in ("pow", "admission_rate", "admission_burst")
            if (value := getattr(update, name)) is not None
        }
        return replace(self, **changes)


class DefenseStore(Protocol):
    def get(self, space_id: str) -> DefenseOverrides:
        """What was set for the space (all None when nothing was)."""

    def update(self, space_id: str, update: DefenseOverrides) -> DefenseOverrides:
        """Set the fields `update` sets, atomically; the space's settings after."""

    def close(self) -> None: ...


class MemoryDefenseStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings: dict[str, DefenseOverrides] = {}

    def get(self, space_id: str) -> DefenseOverrides:
        with self._lock:
            return self._settings.get(space_id, DefenseOverrides())

    def update(self, space_id: str, update: DefenseOverrides) -> DefenseOverrides:
        with self._lock:
            merged = self._settings.get(space_id, DefenseOverrides()).merged(update)
            self._settings[space_id] = merged
            return merged

    def close(self) -> None:
        return None
