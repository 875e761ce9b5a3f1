"""Space status for the gate: whether a space admits listeners, read from the store, never from
the origin process. Embedded: the space store itself; scale-out: Redis, written by the origin.

Storage plane.
"""

from __future__ import annotations

from typing import Protocol

from rostra.store.base import SpaceStore

STATUS_KEY = "rostra:space:{space_id}:status"
STATUS_TTL_S = 30 * 24 * 3600


class SpaceStatusStore(Protocol):
    def get_status(self, space_id: str) -> str | None:
        """`scheduled`, `live`, `ended`, or None for an unknown space."""

    def set_status(self, space_id: str, status: str) -> None: ...


class SpaceStoreStatus:
    """The embedded default: statuses straight from the space store (SQLite or memory)."""

    def __init__(self, spaces: SpaceStore) -> None:
        self._spaces = spaces

    def get_status(self, space_id: str) -> str | None:
        space = self._spaces.get_space(space_id)
        return space.status if space is not None else None

    def set_status(self, space_id: str, status: str) -> None:
        return None  # the space store already holds it
