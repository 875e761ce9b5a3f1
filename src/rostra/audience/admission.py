"""Admission and the waiting room: joins pass a space's token bucket; above it a listener gets a
place in line (an arrival number, FIFO by first arrival) in a signed arrival token, and retries
with it until the line reaches them.

Audience plane. Arrival token format: ``a1.<payload>.<tag>``, a signed token of signed_tokens.py
under its own label (so a ticket is never an arrival token, nor the reverse). The payload's header
is number (u64), issue time (u64, seconds), time to live (u32, seconds); the space id as ASCII
follows it. Each answer from the line carries a fresh token for the same number: a listener who
keeps retrying keeps the place; one who leaves loses it.
"""

from __future__ import annotations

import logging
import math
import struct
from dataclasses import dataclass

from rostra.audience.defense import SpaceDefense
from rostra.audience.signed_tokens import MAX_SPACE_ID_BYTES as MAX_SPACE_ID_BYTES
from rostra.audience.signed_tokens import TAG_BYTES as TAG_BYTES
from rostra.audience.signed_tokens import TokenKind, TokenSealer
from rostra.clock import Clock
from rostra.errors import (
    ArrivalExpired,
    ArrivalInvalid,
    ArrivalSpent,
    ArrivalWrongSpace,
    Unavailable,
    WaitingRoom,
)
from rostra.log import redact
from rostra.store.admission_bucket import (
    AdmissionStore,
    MemoryAdmissionStore,
    QueueSnapshot,
    QueueVerdict,
)

log = logging.getLogger(__name__)

VERSION = "a1"
KEY_LABEL = b"rostra/audience/arrival/v1"
# a token's life; every answer from the line renews it, and a waiter retries well within it
ARRIVAL_TTL_S = 300
# the longest Retry-After asked of a waiter: a long line polls queue.json (at the edge) between
MAX_RETRY_AFTER_S = 60.0

ARRIVAL = TokenKind(
    version=VERSION,
    label=KEY_LABEL,
    header=struct.Struct(">QQI"),
    noun="arrival token",
    name="a Rostra arrival token",
    invalid=ArrivalInvalid,
)
MAX_TOKEN_CHARS = ARRIVAL.max_chars


@dataclass(frozen=True, slots=True)
class Arrival:
    """A verified place in a space's line."""

    space_id: str
    number: int
    issued_at_s: int
    expires_at_s: int


class ArrivalSigner:
    """Issues and verifies arrival tokens under the deployment's signing secret."""

    def __init__(self, secret: str) -> None:
        self._sealer = TokenSealer(secret, ARRIVAL)

    def issue(self, space_id: str, number: int, *, now_s: float, ttl_s: int) -> str:
        return self._sealer.seal(space_id, number, int(now_s), ttl_s)

    def verify(self, token: str, space_id: str, *, now_s: float) -> Arrival:
        opened = self._sealer.open(token)
        number, issued_at_s, ttl_s = opened.fields
        arrival = Arrival(opened.space_id, number, issued_at_s, issued_at_s + ttl_s)
        if now_s >= arrival.expires_at_s:
            raise ArrivalExpired(f"arrival token {redact(token)} expired; join again without it")
        if arrival.space_id != space_id:
            raise ArrivalWrongSpace(
                f"arrival token {redact(token)} holds a place in another space, not {space_id!r}"
            )
        return arrival


class AdmissionControl:
    """The token bucket and the line of each space, over a store shared by the gate workers."""

    def __init__(self, store: AdmissionStore, signer: ArrivalSigner, clock: Clock) -> None:
        self.store = store
        self._signer = signer
        self._clock = clock
        # while the shared store is away, this worker admits from its own bucket: the gate keeps
        # answering (at up to the rate per worker) rather than refusing every join
        self._local = MemoryAdmissionStore()
        self.fallbacks = 0

    def _now_s(self) -> float:
        return self._clock.now().timestamp()

    def verify_arrival(self, token: str, space_id: str) -> Arrival:
        """The place a token holds, or a typed error saying why not (no storage touched)."""
        return self._signer.verify(token, space_id, now_s=self._now_s())

    def admit(self, space_id: str, defense: SpaceDefense, arrival: Arrival | None) -> None:
        """Return when the join may have a ticket; else raise WaitingRoom (a place in line) or
        ArrivalSpent (that place was already admitted)."""
        now_s = self._now_s()
        verdict = self._join(space_id, defense, arrival, now_s)
        if verdict.is_spent:
            raise ArrivalSpent(
                f"arrival number {verdict.number} of space '{space_id}' was admitted already; "
                "join again without the arrival token"
            )
        if verdict.is_admitted:
            return
        retry_after_s = min(MAX_RETRY_AFTER_S, verdict.retry_after_s)
        token = self._signer.issue(space_id, verdict.number, now_s=now_s, ttl_s=ARRIVAL_TTL_S)
        raise WaitingRoom(
            f"space '{space_id}' admits {defense.admission_rate:g} listeners per second; "
            f"you are number {verdict.position} in line: retry in {math.ceil(retry_after_s)} s "
            "with the arrival token",
            position=verdict.position,
            number=verdict.number,
            arrival=token,
            retry_after_s=round(retry_after_s, 2),
        )

    def _join(
        self, space_id: str, defense: SpaceDefense, arrival: Arrival | None, now_s: float
    ) -> QueueVerdict:
        number = arrival.number if arrival is not None else None
        rate, burst = defense.admission_rate, defense.admission_burst
        try:
            return self.store.join(
                space_id, number, now_s=now_s, rate=rate, burst=burst, spent_ttl_s=ARRIVAL_TTL_S
            )
        except Unavailable as error:
            self.fallbacks += 1
            log.warning("admission store away: this worker's bucket", extra={"error": error.detail})
            return self._local.join(
                space_id, number, now_s=now_s, rate=rate, burst=burst, spent_ttl_s=ARRIVAL_TTL_S
            )

    def queue(self, space_id: str, defense: SpaceDefense) -> QueueSnapshot:
        return self.store.snapshot(
            space_id,
            now_s=self._now_s(),
            rate=defense.admission_rate,
            burst=defense.admission_burst,
        )

    def close(self) -> None:
        self.store.close()
