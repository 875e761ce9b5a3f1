"""The incident log's rows and the port its stores implement: per-second counts of requests by
space, endpoint and verdict, counts of rejected requests by source prefix, and gauges.

Storage plane (the interface; incident_sqlite.py and incident_redis.py are the adapters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CountRow:
    space_id: str
    second: int
    endpoint: str
    verdict: str
    count: int


@dataclass(frozen=True, slots=True)
class PrefixRow:
    space_id: str
    second: int
    prefix: str
    count: int


@dataclass(frozen=True, slots=True)
class GaugeRow:
    space_id: str
    second: int
    name: str
    value: float


@dataclass(slots=True)
class IncidentRows:
    counts: list[CountRow] = field(default_factory=list)
    prefixes: list[PrefixRow] = field(default_factory=list)
    gauges: list[GaugeRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.counts or self.prefixes or self.gauges)

    def extend(self, other: IncidentRows) -> None:
        self.counts.extend(other.counts)
        self.prefixes.extend(other.prefixes)
        self.gauges.extend(other.gauges)


class IncidentStoreUnavailable(RuntimeError):
    """The store could not take a flush: the recorder drops that second's rows and logs it."""


class IncidentStore(Protocol):
    def add(self, rows: IncidentRows) -> None: ...

    def read(self, space_id: str) -> IncidentRows: ...

    def prune(self, before_s: int) -> None: ...

    def close(self) -> None: ...
