"""The incident log's model: per-second counters per space of requests by endpoint and verdict,
the source prefixes behind rejected requests, and gauges (admission rate, difficulty, origin
health).

Audience plane. Pure: the web recorder fills a batch, the store adapters keep its rows, the
report reads them. Every key that comes from outside (paths, prefixes, space ids, problem types)
is bounded.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from rostra.ids import is_space_id
from rostra.store.incident import CountRow, IncidentRows, PrefixRow

# Requests that name no well-formed space (junk paths, the space list, /metrics).
SERVER_SPACE = "_"
# Prefixes kept per space and second: the top ones by rejected requests.
TOP_PREFIXES = 10
# Distinct spaces and prefixes held between two flushes; past them the rest are pooled.
MAX_SPACES_PER_BATCH = 64
MAX_PREFIXES_PER_SPACE = 1_024
OTHER_PREFIXES = "other"
_SLUG_RE = re.compile(r"^[a-z0-9-]{1,40}$")


class Verdict(StrEnum):
    ADMITTED = "admitted"  # join 201
    QUEUED = "queued"  # join 503: the waiting room
    OK = "ok"  # any other success
    BAD_TICKET = "bad-ticket"  # 401/403 on a ticket call
    RATE_LIMITED = "rate-limited"  # 429
    CHALLENGED = "challenged"  # 401 challenge-required
    PROOF_FAILED = "proof-failed"  # 401 challenge-failed
    PROOF_SPENT = "proof-spent"  # 401 challenge-spent
    SERVER_ERROR = "server-error"  # 5xx other than the waiting room


NOT_REJECTED = frozenset({Verdict.ADMITTED, Verdict.QUEUED, Verdict.OK})
TICKET_ENDPOINTS = frozenset({"heartbeat", "leave", "reactions", "hand"})
_API_ENDPOINTS = TICKET_ENDPOINTS | {"join"}
_PROOF_VERDICTS = {
    "challenge-required": Verdict.CHALLENGED,
    "challenge-failed": Verdict.PROOF_FAILED,
    "challenge-spent": Verdict.PROOF_SPENT,
}


def is_rejected(verdict: str) -> bool:
    return verdict not in NOT_REJECTED


def classify(endpoint: str, status: int, problem_slug: str | None) -> str:
    """A response's verdict: one of `Verdict`, or `4xx:<problem type>` for other refusals."""
    if status < 400:
        return Verdict.ADMITTED if endpoint == "join" and status == 201 else Verdict.OK
    if endpoint == "join" and status == 503:
        return Verdict.QUEUED
    if status == 429:
        return Verdict.RATE_LIMITED
    if problem_slug in _PROOF_VERDICTS:
        return _PROOF_VERDICTS[problem_slug]
    if status >= 500:
        return Verdict.SERVER_ERROR
    if status in (401, 403) and endpoint in TICKET_ENDPOINTS:
        return Verdict.BAD_TICKET
    slug = problem_slug if problem_slug and _SLUG_RE.fullmatch(problem_slug) else str(status)
    return f"4xx:{slug}"


def endpoint_of(path: str) -> tuple[str, str]:
    """`(space, endpoint)` of a request path; a path naming no well-formed space is the server's,
    and anything not served here is `other`."""
    parts = path.split("/")
    # ['', 'api', 'v1', 'spaces', ID, NAME, ...]
    if len(parts) >= 5 and parts[1:4] == ["api", "v1", "spaces"]:
        if not is_space_id(parts[4]):
            return SERVER_SPACE, "api"
        name = parts[5] if len(parts) > 5 else ""
        return parts[4], name if name in _API_ENDPOINTS else "api"
    if len(parts) >= 4 and parts[1] in ("live", "replay") and is_space_id(parts[2]):
        return parts[2], _media_endpoint(parts[1], parts[3])
    if len(parts) == 3 and parts[1] in ("listen", "host", "speak") and is_space_id(parts[2]):
        return parts[2], "page"
    if path.startswith("/api/"):
        return SERVER_SPACE, "api"
    if path in ("/healthz", "/metrics"):
        return SERVER_SPACE, "ops"
    if path == "/" or path.startswith("/static/"):
        return SERVER_SPACE, "page"
    return SERVER_SPACE, "other"


def _media_endpoint(kind: str, name: str) -> str:
    if kind == "replay":
        return "replay"
    if name in ("state.json", "queue.json"):
        return name.removesuffix(".json")
    if name.startswith("stream."):
        return "stream"
    if name.endswith(".m3u8"):
        return "playlist"
    return "segment"


@dataclass(slots=True)
class IncidentBatch:
    """Counts since the last flush, by second; bounded whatever the traffic."""

    _counts: Counter[tuple[str, int, str, str]] = field(default_factory=Counter)
    _prefixes: dict[tuple[str, int], Counter[str]] = field(default_factory=dict)
    _spaces: set[str] = field(default_factory=set)

    def add(self, second: int, space_id: str, endpoint: str, verdict: str, prefix: str) -> None:
        if space_id not in self._spaces:
            if len(self._spaces) >= MAX_SPACES_PER_BATCH:
                space_id, endpoint = SERVER_SPACE, "other"
            self._spaces.add(space_id)
        self._counts[(space_id, second, endpoint, verdict)] += 1
        if not is_rejected(verdict):
            return
        prefixes = self._prefixes.setdefault((space_id, second), Counter())
        if prefix not in prefixes and len(prefixes) >= MAX_PREFIXES_PER_SPACE:
            prefix = OTHER_PREFIXES
        prefixes[prefix] += 1

    @property
    def spaces(self) -> frozenset[str]:
        return frozenset(self._spaces)

    def drain(self) -> IncidentRows:
        rows = IncidentRows(
            counts=[CountRow(s, t, e, v, n) for (s, t, e, v), n in self._counts.items()],
            prefixes=[
                PrefixRow(space_id, second, prefix, n)
                for (space_id, second), counter in self._prefixes.items()
                for prefix, n in counter.most_common(TOP_PREFIXES)
            ],
        )
        self._counts = Counter()
        self._prefixes = {}
        self._spaces = set()
        return rows
