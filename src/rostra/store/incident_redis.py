"""Redis incident log: the per-second counters of every gate worker of a deployment.

Storage plane. One hash per (space, second) — fields `c|endpoint|verdict`, `p|prefix` (added with
HINCRBY) and `g|name` (set) — and one sorted set per space indexing its seconds. Every key carries
a TTL of the retention period, refreshed by each write: Redis prunes by itself.
"""

from __future__ import annotations

from collections import defaultdict
from typing import cast

import redis

from rostra.store.incident import (
    CountRow,
    GaugeRow,
    IncidentRows,
    IncidentStoreUnavailable,
    PrefixRow,
)
from rostra.store.redis_client import connect

KEY_PREFIX = "rostra:incident:"
_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)


def _second_key(space_id: str, second: int) -> str:
    return f"{KEY_PREFIX}{space_id}:{second}"


def _index_key(space_id: str) -> str:
    return f"{KEY_PREFIX}{space_id}:seconds"


class RedisIncidentStore:
    def __init__(self, url: str, *, retention_s: int) -> None:
        self._redis = connect(url, decode_responses=True)
        self._retention_s = retention_s

    def add(self, rows: IncidentRows) -> None:
        if not rows:
            return
        fields: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
        gauges: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
        for c in rows.counts:
            fields[(c.space_id, c.second)][f"c|{c.endpoint}|{c.verdict}"] = c.count
        for p in rows.prefixes:
            fields[(p.space_id, p.second)][f"p|{p.prefix}"] = p.count
        for g in rows.gauges:
            gauges[(g.space_id, g.second)][f"g|{g.name}"] = g.value
        pipe = self._redis.pipeline(transaction=False)
        for space_id, second in set(fields) | set(gauges):
            key = _second_key(space_id, second)
            for name, count in fields.get((space_id, second), {}).items():
                pipe.hincrby(key, name, count)
            for name, value in gauges.get((space_id, second), {}).items():
                pipe.hset(key, name, value)
            pipe.expire(key, self._retention_s)
            pipe.zadd(_index_key(space_id), {str(second): second})
            pipe.expire(_index_key(space_id), self._retention_s)
        try:
            pipe.execute()
        except _UNAVAILABLE as exc:
            raise IncidentStoreUnavailable(f"incident log in Redis unavailable: {exc}") from exc

    def read(self, space_id: str) -> IncidentRows:
        try:
            return self._read(space_id)
        except _UNAVAILABLE as exc:
            raise IncidentStoreUnavailable(f"incident log in Redis unavailable: {exc}") from exc

    def _read(self, space_id: str) -> IncidentRows:
        members = cast(list[str], self._redis.zrange(_index_key(space_id), 0, -1))
        seconds = [int(member) for member in members]
        pipe = self._redis.pipeline(transaction=False)
        for second in seconds:
            pipe.hgetall(_second_key(space_id, second))
        rows = IncidentRows()
        for second, values in zip(seconds, pipe.execute(), strict=True):
            for name, raw in values.items():
                kind, _, rest = name.partition("|")
                if kind == "c":
                    endpoint, _, verdict = rest.partition("|")
                    rows.counts.append(CountRow(space_id, second, endpoint, verdict, int(raw)))
                elif kind == "p":
                    rows.prefixes.append(PrefixRow(space_id, second, rest, int(raw)))
                elif kind == "g":
                    rows.gauges.append(GaugeRow(space_id, second, rest, float(raw)))
        return rows

    def prune(self, before_s: int) -> None:
        """Seconds expire by their TTL; only the index keeps entries to trim."""
        try:
            for key in self._redis.scan_iter(match=f"{KEY_PREFIX}*:seconds", count=500):
                self._redis.zremrangebyscore(key, "-inf", before_s - 1)
        except _UNAVAILABLE as exc:
            raise IncidentStoreUnavailable(f"incident log in Redis unavailable: {exc}") from exc

    def close(self) -> None:
        self._redis.close()
