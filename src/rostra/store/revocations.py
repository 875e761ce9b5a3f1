"""Revoked listener tickets: a listener that leaves gives its ticket back, and no worker accepts
a ticket of that listener issued up to that moment (`revoked_at_s`) until every such ticket has
expired. A ticket issued later for the same listener (a reloaded page returning) stays valid.

Storage plane. The port is a shared, ordered log of revocations (SQLite in the data folder when
embedded, a Redis stream with gate workers); each gate keeps the entries of that log that have not
expired in a bounded local list (`RevocationList`), synced with the batched writes, so checking a
ticket stays a dict lookup and never waits on storage. A revocation reaches other workers with
their next sync (about 100 ms).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

# revocations a worker (and the shared log) keeps at most; past it the soonest to expire go
# first. At 20 s heartbeats and an hour of ticket life, far more leaves than a space sees.
MAX_REVOCATIONS = 200_000
# entries read from the shared log per sync
SYNC_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Revocation:
    listener_id: str
    until_s: float  # no ticket of the listener can be valid past this
    # tickets of the listener issued at or before this are revoked; later ones are not
    revoked_at_s: float = float("inf")

    def covers(self, issued_at_s: float, now_s: float) -> bool:
        """Whether a ticket issued at `issued_at_s` is revoked by this, now."""
        return now_s < self.until_s and issued_at_s <= self.revoked_at_s


class RevocationLog(Protocol):
    def revoke(self, revocation: Revocation, now_s: float) -> None:
        """Add a revocation for every worker to read."""

    def read_since(self, cursor: str, now_s: float) -> tuple[list[Revocation], str]:
        """Revocations added after `cursor` ("" for all kept) that have not expired, and the
        cursor to pass next time."""

    def close(self) -> None: ...


class RevocationList:
    """This worker's copy of the revocations that have not expired, bounded."""

    def __init__(self, log: RevocationLog, max_entries: int = MAX_REVOCATIONS) -> None:
        self._log = log
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._latest: OrderedDict[str, Revocation] = OrderedDict()
        self._cursor = ""

    def __len__(self) -> int:
        return len(self._latest)

    def is_revoked(
        self, listener_id: str, now_s: float, issued_at_s: float = float("-inf")
    ) -> bool:
        """Whether the listener's ticket issued at `issued_at_s` (any of theirs by default) was
        given back."""
        revocation = self._latest.get(listener_id)
        return revocation is not None and revocation.covers(issued_at_s, now_s)

    def revoke(self, revocation: Revocation, now_s: float) -> None:
        """Revoked here at once, and in the shared log for the other workers."""
        self._remember([revocation], now_s)
        self._log.revoke(revocation, now_s)

    def sync(self, now_s: float) -> None:
        """Read what other workers revoked since the last sync (a thread calls this)."""
        revocations, cursor = self._log.read_since(self._cursor, now_s)
        self._cursor = cursor
        self._remember(revocations, now_s)

    def _remember(self, revocations: list[Revocation], now_s: float) -> None:
        with self._lock:
            for revocation in revocations:
                before = self._latest.pop(revocation.listener_id, None)
                if before is not None:  # the latest leave and the longest life both hold
                    revocation = Revocation(
                        revocation.listener_id,
                        max(before.until_s, revocation.until_s),
                        max(before.revoked_at_s, revocation.revoked_at_s),
                    )
                self._latest[revocation.listener_id] = revocation
            # entries arrive about in expiry order: the oldest are the first to go
            while self._latest and (
                len(self._latest) > self._max_entries
                or next(iter(self._latest.values())).until_s <= now_s
            ):
                self._latest.popitem(last=False)


class MemoryRevocationLog:
    """The log of one process (tests, a single worker)."""

    def __init__(self, max_entries: int = MAX_REVOCATIONS) -> None:
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: list[tuple[int, Revocation]] = []
        self._next = 1

    def revoke(self, revocation: Revocation, now_s: float) -> None:
        with self._lock:
            self._entries.append((self._next, revocation))
            self._next += 1
            self._entries = [e for e in self._entries if e[1].until_s > now_s][-self._max_entries :]

    def read_since(self, cursor: str, now_s: float) -> tuple[list[Revocation], str]:
        after = int(cursor or 0)
        with self._lock:
            fresh = [e for e in self._entries if e[0] > after][:SYNC_BATCH]
        last = fresh[-1][0] if fresh else after
        return [r for _, r in fresh if r.until_s > now_s], str(last)

    def close(self) -> None:
        return None
