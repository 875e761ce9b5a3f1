"""Redis revocation log: the revoked tickets of every gate worker of a deployment.

Storage plane. A stream capped near MAX_REVOCATIONS entries (`XADD MAXLEN ~`), each entry a
listener id, the time its last ticket expires and the time it left (`r`; an entry without it
revokes every ticket of the listener); the stream itself expires when no revocation
was added for a ticket's lifetime, so an idle deployment keeps nothing. Workers read it from
their last entry id (`XRANGE` exclusive).
"""

from __future__ import annotations

import math
from typing import Any

from rostra.store.reactions_redis import _call
from rostra.store.redis_client import connect
from rostra.store.revocations import MAX_REVOCATIONS, SYNC_BATCH, Revocation

STREAM_KEY = "rostra:revoked-tickets"


class RedisRevocationLog:
    def __init__(self, url: str, *, max_entries: int = MAX_REVOCATIONS) -> None:
        self._client = connect(url, decode_responses=True)
        self._max_entries = max_entries

    def revoke(self, revocation: Revocation, now_s: float) -> None:
        ttl_s = max(1, math.ceil(revocation.until_s - now_s))

        def write() -> None:
            pipe = self._client.pipeline(transaction=False)
            pipe.xadd(
                STREAM_KEY,
                {
                    "l": revocation.listener_id,
                    "u": repr(revocation.until_s),
                    "r": repr(revocation.revoked_at_s),
                },
                maxlen=self._max_entries,
                approximate=True,
            )
            # the stream lives as long as its newest entry matters
            pipe.expire(STREAM_KEY, ttl_s, gt=True)
            pipe.expire(STREAM_KEY, ttl_s, nx=True)
            pipe.execute()

        _call("revocations", write)

    def read_since(self, cursor: str, now_s: float) -> tuple[list[Revocation], str]:
        start = f"({cursor}" if cursor else "-"

        def read() -> list[Any]:
            found: Any = self._client.xrange(STREAM_KEY, min=start, max="+", count=SYNC_BATCH)
            return list(found or [])

        entries = _call("revocations", read)
        if not entries:
            return [], cursor
        fresh = []
        for _entry_id, fields in entries:
            until_s = float(fields.get("u", 0))
            if until_s > now_s and fields.get("l"):
                revoked_at_s = float(fields.get("r", "inf"))
                fresh.append(Revocation(str(fields["l"]), until_s, revoked_at_s))
        return fresh, str(entries[-1][0])

    def close(self) -> None:
        self._client.close()
