"""Storage plane: one small interface, adapters side by side."""

from rostra.store.base import InviteRecord, SpaceRecord, SpaceStore
from rostra.store.memory import MemorySpaceStore
from rostra.store.sqlite import SqliteSpaceStore

__all__ = ["InviteRecord", "MemorySpaceStore", "SpaceRecord", "SpaceStore", "SqliteSpaceStore"]
