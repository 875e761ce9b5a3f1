"""How a simulated user reads the gate's answers: the join outcome a status and problem type
stand for, the Retry-After to obey, and the ALTCHA proof-of-work a join may ask for.

Rehearsal plane (a client). No Locust here: answers are read through a small Protocol.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Protocol

import altcha

DEFAULT_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 60.0
CHALLENGE_TIMEOUT_S = 30.0
TRANSPORT = "transport"


class Answer(Protocol):
    """What a user needs of an HTTP answer (Locust's FastResponse has it)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Any: ...

    @property
    def text(self) -> str | None: ...


def problem_type(answer: Answer) -> str:
    """The last part of an application/problem+json `type` ("" when there is none)."""
    try:
        body = json.loads(answer.text or "")
    except ValueError:
        return ""
    kind = body.get("type") if isinstance(body, dict) else None
    return kind.rsplit("/", 1)[-1] if isinstance(kind, str) else ""


def join_outcome(answer: Answer) -> str:
    """`admitted`, `queued` (waiting room), `challenged` (proof-of-work asked),
    `rate-limited`, `transport` (no answer) or `error:<status>`."""
    status = answer.status_code
    if status == 0:
        return TRANSPORT
    if status == 201:
        return "admitted"
    if status == 503 and problem_type(answer) == "waiting-room":
        return "queued"
    if status == 401 and problem_type(answer) == "challenge-required":
        return "challenged"
    if status == 429:
        return "rate-limited"
    return f"error:{status}"


def note_status(counter: Counter[str], kind: str, status: int) -> None:
    counter[f"{kind}:{status}" if status else f"{kind}:{TRANSPORT}"] += 1


def retry_after_s(answer: Answer) -> float:
    """The answer's Retry-After in seconds (delta-seconds form), within sane bounds."""
    headers = answer.headers
    raw = headers.get("retry-after") if headers is not None else None
    try:
        value = float(raw) if raw is not None else DEFAULT_RETRY_AFTER_S
    except ValueError:
        value = DEFAULT_RETRY_AFTER_S
    return min(max(value, 0.0), MAX_RETRY_AFTER_S)


def solve_challenge(challenge: dict[str, Any]) -> str:
    """The ALTCHA payload (base64) that answers a join's challenge, as the listener page sends
    it in `{"altcha": payload}`. ValueError when it cannot be solved in time."""
    parsed = altcha.Challenge.from_dict(challenge)
    solution = altcha.solve_challenge(parsed, timeout=CHALLENGE_TIMEOUT_S)
    if solution is None:
        raise ValueError("the join's proof-of-work challenge was not solved in time")
    return str(altcha.Payload(parsed, solution).to_base64())
