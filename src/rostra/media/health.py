"""A space's media health: the faults of the pipeline's parts (mixer, encoders, packager,
recorder), counted and aged on an injected clock, and read as one verdict.

Media plane. Thread-safe: the mixer and encoder threads record, any thread reads.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from rostra.clock import Clock

log = logging.getLogger(__name__)

# A problem with no new occurrence for this long has cleared: the space recovers to ok.
QUIET_S = 10.0
# Distinct (part, kind) problems remembered at once; past it the stalest is forgotten.
MAX_PROBLEMS = 32

FaultSink = Callable[[str, BaseException], None]
"""Told `(part, error)` when a part of the pipeline failed and carried on."""


@dataclass(frozen=True, slots=True)
class PipelineHealth:
    is_ok: bool
    problems: tuple[str, ...]
    last_segment_at_s: float | None
    segments_lost: int


@dataclass(slots=True)
class _Problem:
    count: int
    last_at_s: float


def describe(error: BaseException) -> str:
    """`OSError ENOSPC`, `ValueError`: the kind of an error, without its (unbounded) text."""
    name = type(error).__name__
    code = getattr(error, "errno", None)
    if isinstance(code, int) and code in errno.errorcode:
        return f"{name} {errno.errorcode[code]}"
    return name


class FaultLog:
    """Problems by (part, kind). The first occurrence of each is logged with its traceback; the
    rest only counted, so a fault that repeats 50 times a second does not flood the log."""

    def __init__(self, space_id: str, clock: Clock, *, quiet_s: float = QUIET_S) -> None:
        self._space_id = space_id
        self._clock = clock
        self._quiet_s = quiet_s
        self._lock = threading.Lock()
        self._problems: dict[tuple[str, str], _Problem] = {}

    def record(self, part: str, error: BaseException) -> None:
        if self._count(part, describe(error)):
            log.error(
                "media part failed",
                extra={"space": self._space_id, "part": part, "error": describe(error)},
                exc_info=error,
            )

    def note(self, part: str, kind: str) -> None:
        """A problem that is no exception (a frame dropped, a thread gone)."""
        if self._count(part, kind):
            log.warning(
                "media part degraded", extra={"space": self._space_id, "part": part, "error": kind}
            )

    def problems(self) -> tuple[str, ...]:
        now_s = self._clock.monotonic_s()
        with self._lock:
            self._forget_quiet(now_s)
            return tuple(
                f"{part}: {kind} ({p.count} time{'s' if p.count != 1 else ''}, "
                f"last {now_s - p.last_at_s:.0f} s ago)"
                for (part, kind), p in self._problems.items()
            )

    def _count(self, part: str, kind: str) -> bool:
        """Count one occurrence; True when it starts a new problem."""
        now_s = self._clock.monotonic_s()
        with self._lock:
            self._forget_quiet(now_s)
            problem = self._problems.get((part, kind))
            if problem is not None:
                problem.count += 1
                problem.last_at_s = now_s
                return False
            if len(self._problems) >= MAX_PROBLEMS:
                stalest = min(self._problems, key=lambda key: self._problems[key].last_at_s)
                del self._problems[stalest]
            self._problems[(part, kind)] = _Problem(count=1, last_at_s=now_s)
            return True

    def _forget_quiet(self, now_s: float) -> None:
        for key, problem in list(self._problems.items()):
            if now_s - problem.last_at_s >= self._quiet_s:
                del self._problems[key]
                log.info(
                    "media part recovered",
                    extra={"space": self._space_id, "part": key[0], "error": key[1]},
                )
