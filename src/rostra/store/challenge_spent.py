"""Spent proof-of-work solutions: a solution counts once. The port, and the in-process adapter.

Storage plane. A solution is named by its challenge's signature (each challenge has a random nonce,
so its signature is unique) and remembered until the challenge expires: after that the challenge
itself is refused, so the record is no longer needed. Adapters: memory (one process, tests),
SQLite (the workers of one machine), Redis (`SET NX` with a TTL: every gate worker and node).
"""

from __future__ import annotations

import heapq
import threading
from typing import Protocol

# in-process records at most; past it the soonest to expire is forgotten first
MEMORY_MAX_SPENT = 1_000_000


class SpentSolutions(Protocol):
    def spend(self, key: str, expires_at_s: float, now_s: float) -> bool:
        """True the first time `key` is spent before `expires_at_s`; False ever after."""

    def close(self) -> None: ...


class MemorySpentSolutions:
    """Spent solutions of one process, pruned by expiry and bounded in number."""

    def __init__(self, max_entries: int = MEMORY_MAX_SPENT) -> None:
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._expiry_by_key: dict[str, float] = {}
        self._by_expiry: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._expiry_by_key)

    def spend(self, key: str, expires_at_s: float, now_s: float) -> bool:
        with self._lock:
            self._prune(now_s)
            if key in self._expiry_by_key:
                return False
            self._expiry_by_key[key] = expires_at_s
            heapq.heappush(self._by_expiry, (expires_at_s, key))
            while len(self._expiry_by_key) > self._max_entries:
                _, oldest = heapq.heappop(self._by_expiry)
                self._expiry_by_key.pop(oldest, None)
            return True

    def _prune(self, now_s: float) -> None:
        while self._by_expiry and self._by_expiry[0][0] <= now_s:
            _, key = heapq.heappop(self._by_expiry)
            self._expiry_by_key.pop(key, None)

    def close(self) -> None:
        return None
