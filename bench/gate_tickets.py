"""Tickets for the gate benchmark: signed in bulk for a space under the benchmark's signing
secret, the same tickets forged, and the in-process cost of checking and issuing one.

Used by bench/gate.py.
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rostra.audience.tickets import TicketSigner
from rostra.config import Settings
from rostra.errors import RostraError
from rostra.ids import new_space_id

SECRET = "bench-gate-signing-secret-0123456789abcdef"  # noqa: S105 - a throwaway deployment
TTL_S = Settings().ticket_ttl_s
VERIFY_NUMBER = 100_000
VERIFY_REPEAT = 5

Figures = dict[str, Any]


def ticket_check_us() -> Figures:
    """In-process TicketSigner cost (µs per call, best of VERIFY_REPEAT runs)."""
    signer = TicketSigner(SECRET)
    now_s = time.time()
    space_id = new_space_id()
    token = signer.issue(space_id, now_s=now_s, ttl_s=TTL_S).token
    forged = forge(token)

    def reject(bad: str) -> Callable[[], None]:
        def call() -> None:
            try:
                signer.verify(bad, space_id, now_s=now_s)
            except RostraError:
                return
            raise AssertionError("a bad ticket was accepted")

        return call

    other_space = signer.issue(new_space_id(), now_s=now_s, ttl_s=60).token

    calls = {
        "verify_valid": lambda: signer.verify(token, space_id, now_s=now_s),
        "verify_forged_tag": reject(forged),
        "verify_junk": reject("junk"),
        "verify_other_space": reject(other_space),
        "issue": lambda: signer.issue(space_id, now_s=now_s, ttl_s=TTL_S),
    }
    figures: Figures = {}
    for name, call in calls.items():
        best = min(timeit.repeat(call, number=VERIFY_NUMBER, repeat=VERIFY_REPEAT))
        figures[name] = round(best / VERIFY_NUMBER * 1e6, 2)
    figures["command"] = "timeit, best of 5 x 100,000 calls of TicketSigner in this process"
    return figures


def forge(token: str) -> str:
    """The same ticket with the last character of its tag changed: a full HMAC check, then 401."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def write_tickets(folder: Path, space_id: str, count: int) -> tuple[Path, Path]:
    """`count` valid tickets for the space, and the same tickets forged, one a line."""
    signer = TicketSigner(SECRET)
    now_s = time.time()
    tokens = [signer.issue(space_id, now_s=now_s, ttl_s=TTL_S).token for _ in range(count)]
    valid, forged = folder / f"{space_id}.txt", folder / f"{space_id}-forged.txt"
    valid.write_text("\n".join(tokens) + "\n")
    forged.write_text("\n".join(forge(token) for token in tokens) + "\n")
    return valid, forged
