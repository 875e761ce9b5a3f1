"""What a rehearsal's simulated audience saw, per wall-clock second: mergeable (a Locust worker
sends what it gathered to the master, which adds it up) and JSON-serialisable. Samples are kept
as log-spaced histogram buckets, so memory grows with seconds, never with listeners.

Rehearsal plane (a client). No Locust here: the report and the verdict read this without gevent.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# buckets grow by 5 % from 1 ms: a quantile is known to within 2.5 %
BUCKET_GROWTH = 1.05
BUCKET_BASE_S = 0.001
_LOG_GROWTH = math.log(BUCKET_GROWTH)
ZERO_BUCKET = -1  # values below BUCKET_BASE_S (and negative ones: clocks a little apart)


class Histogram:
    """Counts of values (seconds) in log-spaced buckets, with their count, sum and maximum."""

    __slots__ = ("buckets", "count", "max_s", "sum_s")

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.sum_s = 0.0
        self.max_s = 0.0

    def add(self, value_s: float) -> None:
        index = (
            ZERO_BUCKET
            if value_s < BUCKET_BASE_S
            else int(math.log(value_s / BUCKET_BASE_S) / _LOG_GROWTH)
        )
        self.buckets[index] += 1
        self.count += 1
        self.sum_s += value_s
        self.max_s = value_s if self.count == 1 else max(self.max_s, value_s)

    def merge(self, other: Histogram) -> None:
        if other.count == 0:
            return
        self.max_s = other.max_s if self.count == 0 else max(self.max_s, other.max_s)
        self.buckets.update(other.buckets)
        self.count += other.count
        self.sum_s += other.sum_s

    def quantile(self, q: float) -> float | None:
        """The value below which a fraction `q` of the samples lie (the bucket's middle)."""
        if self.count == 0:
            return None
        rank = q * self.count
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return min(_bucket_middle_s(index), self.max_s)
        return self.max_s

    @property
    def mean_s(self) -> float | None:
        return self.sum_s / self.count if self.count else None

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "sum_s": round(self.sum_s, 6),
            "max_s": round(self.max_s, 6),
            "buckets": {str(k): v for k, v in sorted(self.buckets.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Histogram:
        histogram = cls()
        histogram.count = int(data["count"])
        histogram.sum_s = float(data["sum_s"])
        histogram.max_s = float(data["max_s"])
        histogram.buckets = Counter({int(k): int(v) for k, v in data["buckets"].items()})
        return histogram


def _bucket_middle_s(index: int) -> float:
    if index == ZERO_BUCKET:
        return 0.0
    return float(BUCKET_BASE_S * BUCKET_GROWTH ** (index + 0.5))


HISTOGRAMS = ("ttfa", "pdt_lag", "latency", "progressive_ttfb")
COUNTERS = (
    "joins",
    "heartbeats",
    "media",
    "interactions",
    "attacks",
    "server_errors",
    "generator_errors",
    "players",
    "transfer",
)
TOTALS = (
    "stalls",
    "stall_s",
    "played_s",
    "progressive_gaps",
    "progressive_gap_s",
    "steps",
    "behind",
)


@dataclass(slots=True)
class Second:
    """One wall-clock second of a rehearsal, as the simulated audience saw it.

    - `live`: simulated listeners holding a ticket and playing (the truth the count is checked
      against), sampled once in the second by each load-generating process, and summed.
    - `joins`: join outcomes (`admitted`, `queued`, `challenged`, `rate-limited`,
      `error:<status>`, `transport`); `heartbeats`, `media`, `interactions`: `<kind>:<status>`;
      `attacks`: `<attack kind>:<status or what happened>`; `server_errors`: `<kind>:<status>`
      for every 5xx other than 503 (a bug at the server); `generator_errors`: exceptions
      raised in simulated users, by class name (a bug of the rehearsal, not of the server);
      `players`: by the second a ticketed listener started, `started` and `admitted-in-time`
      (admitted within the scenario's join target; kept by `rostra rehearse`'s users);
      `transfer`: for playlists and segments answered 200, `<kind>:count`, `<kind>:body`
      (bytes) and `<kind>:head` (bytes of status line and headers, as received).
    - `ttfa`: click to first segment; `pdt_lag`: that segment's age by its date-time;
      `latency`: wall clock minus the date-time of the audio being played (one sample per
      listener per second); `progressive_ttfb`: time to the first byte of a progressive stream.
    - `stalls`, `stall_s`, `played_s`: the simulated players; `progressive_gaps`,
      `progressive_gap_s`: silences of more than a second on a progressive stream.
    - `steps`: user steps taken; `behind`: those the load generator woke more than half a
      second after they were due (its fault, never the server's: a step delayed by a slow answer
      before it is not counted).
    """

    live: int = 0
    joins: Counter[str] = field(default_factory=Counter)
    heartbeats: Counter[str] = field(default_factory=Counter)
    media: Counter[str] = field(default_factory=Counter)
    interactions: Counter[str] = field(default_factory=Counter)
    attacks: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    generator_errors: Counter[str] = field(default_factory=Counter)
    players: Counter[str] = field(default_factory=Counter)
    transfer: Counter[str] = field(default_factory=Counter)
    ttfa: Histogram = field(default_factory=Histogram)
    pdt_lag: Histogram = field(default_factory=Histogram)
    latency: Histogram = field(default_factory=Histogram)
    progressive_ttfb: Histogram = field(default_factory=Histogram)
    stalls: int = 0
    stall_s: float = 0.0
    played_s: float = 0.0
    progressive_gaps: int = 0
    progressive_gap_s: float = 0.0
    steps: int = 0
    behind: int = 0

    def merge(self, other: Second) -> None:
        self.live += other.live
        for name in COUNTERS:
            getattr(self, name).update(getattr(other, name))
        for name in HISTOGRAMS:
            getattr(self, name).merge(getattr(other, name))
        for name in TOTALS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"live": self.live}
        for name in COUNTERS:
            data[name] = dict(getattr(self, name))
        for name in HISTOGRAMS:
            data[name] = getattr(self, name).to_json()
        for name in TOTALS:
            value = getattr(self, name)
            data[name] = round(value, 6) if isinstance(value, float) else value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Second:
        second = cls(live=int(data.get("live", 0)))
        for name in COUNTERS:
            getattr(second, name).update({str(k): int(v) for k, v in data.get(name, {}).items()})
        for name in HISTOGRAMS:
            if name in data:
                setattr(second, name, Histogram.from_json(data[name]))
        for name in TOTALS:
            kind = type(getattr(second, name))
            setattr(second, name, kind(data.get(name, 0)))
        return second


class Observations:
    """Seconds of a rehearsal keyed by Unix time (whole seconds)."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds: dict[int, Second] = {}

    def at(self, now_s: float) -> Second:
        """The record of the wall-clock second holding `now_s` (made when first asked)."""
        key = int(now_s)
        second = self.seconds.get(key)
        if second is None:
            second = self.seconds[key] = Second()
        return second

    def merge(self, other: Observations) -> None:
        for key, second in other.seconds.items():
            mine = self.seconds.get(key)
            if mine is None:
                self.seconds[key] = mine = Second()
            mine.merge(second)

    def take(self) -> Observations:
        """Everything gathered so far, leaving this empty (what a worker sends to the master)."""
        taken = Observations()
        taken.seconds, self.seconds = self.seconds, {}
        return taken

    def total(self) -> Second:
        """All seconds added up (`live` becomes the sum of the samples: use `live_series`)."""
        whole = Second()
        for second in self.seconds.values():
            whole.merge(second)
        return whole

    def live_series(self) -> list[tuple[int, int]]:
        """(second, simulated listeners live) in time order: the truth."""
        return [(key, self.seconds[key].live) for key in sorted(self.seconds)]

    def to_json(self) -> dict[str, Any]:
        return {"seconds": {str(k): self.seconds[k].to_json() for k in sorted(self.seconds)}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Observations:
        observations = cls()
        for key, second in data.get("seconds", {}).items():
            observations.seconds[int(key)] = Second.from_json(second)
        return observations
