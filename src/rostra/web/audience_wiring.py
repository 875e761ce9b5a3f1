"""Builds the audience plane for a process: the gate with its stores, on Redis when configured
(every gate worker and node share one count), else in one SQLite file in the data folder (every
worker process of the machine shares one count, its reactions and its hands).

Web plane (composition root).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from rostra.audience.admission import AdmissionControl, ArrivalSigner
from rostra.audience.challenge import ChallengeBook, PowPolicy, ProofOfWork
from rostra.audience.defense import DefenseService, PowMode, SpaceDefense
from rostra.audience.gate import Gate
from rostra.audience.presence import PresenceService
from rostra.audience.tickets import TicketSigner
from rostra.clock import Clock
from rostra.config import Settings
from rostra.errors import RostraError
from rostra.store.admission_bucket import AdmissionStore
from rostra.store.admission_defense import DefenseStore
from rostra.store.base import SpaceStore
from rostra.store.challenge_spent import SpentSolutions
from rostra.store.presence import PresenceStore, SlidingWindow
from rostra.store.presence_sqlite import SqlitePresenceStore
from rostra.store.reactions import ReactionStore
from rostra.store.reactions_sqlite import SqliteReactionStore
from rostra.store.revocations import RevocationList, RevocationLog
from rostra.store.revocations_sqlite import SqliteRevocationLog
from rostra.store.status import SpaceStatusStore, SpaceStoreStatus

log = logging.getLogger(__name__)

# presence sketches, reactions and hands of the workers of one machine (no Redis)
AUDIENCE_DATABASE_NAME = "audience.sqlite3"


@dataclass(slots=True)
class AudienceParts:
    gate: Gate
    presence_store: PresenceStore
    reactions: ReactionStore
    statuses: SpaceStatusStore
    # where the origin publishes statuses for gates on other nodes (None: they share the store)
    status_publisher: SpaceStatusStore | None
    revocation_log: RevocationLog | None = None
    spent_solutions: SpentSolutions | None = None

    def close(self) -> None:
        self.presence_store.close()
        self.reactions.close()
        if self.gate.admission is not None:
            self.gate.admission.close()
        if self.gate.defenses is not None:
            self.gate.defenses.close()
        if self.spent_solutions is not None:
            self.spent_solutions.close()
        if self.revocation_log is not None:
            self.revocation_log.close()


FLUSH_INTERVAL_S = 0.1
# flush 0.1 s + this cache + state.json's 1 s at an edge + the page's poll stay under 5 s
COUNT_CACHE_S = 0.5


async def run_flusher(gate: Gate, interval_s: float = FLUSH_INTERVAL_S) -> None:
    """Batched writes leave each worker about every 100 ms, off the event loop."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(gate.flush)
        except RostraError as error:  # the store is away: the next flush tries again
            log.warning("flush failed", extra={"error": error.detail})


def wire_proof_of_work(settings: Settings, clock: Clock, gate: Gate) -> SpentSolutions:
    """The join's proof-of-work: spent solutions in Redis, else in the machine's SQLite file;
    `auto`'s triggers are per worker, the deployment's divided by this machine's workers."""
    spent: SpentSolutions
    if settings.redis:
        from rostra.store.challenge_redis import RedisSpentSolutions

        spent = RedisSpentSolutions(settings.redis)
    else:
        from rostra.store.challenge_sqlite import SqliteSpentSolutions

        spent = SqliteSpentSolutions(settings.data / AUDIENCE_DATABASE_NAME)
    workers = settings.gate_workers if settings.gate_workers > 1 else settings.workers
    counters = gate.counters
    policy = PowPolicy(
        clock,
        worker_share=1.0 / max(1, workers),
        bad_tickets=lambda: sum(n for k, n in list(counters.items()) if k.startswith("rejected:")),
        bad_tickets_per_s=settings.pow_bad_tickets_per_s,
    )
    gate.challenge = ProofOfWork(
        ChallengeBook(settings.signing_secret, spent, clock), policy, mode=PowMode(settings.pow)
    )
    return spent


def wire_admission(settings: Settings, clock: Clock, gate: Gate) -> None:
    """The joins' token bucket and line, and each space's defence: in Redis (every gate node),
    else in the machine's SQLite file (every listener worker admits from one bucket)."""
    admissions: AdmissionStore
    defenses: DefenseStore
    if settings.redis:
        from rostra.store.admission_redis import RedisAdmissionStore, RedisDefenseStore

        admissions = RedisAdmissionStore(settings.redis)
        defenses = RedisDefenseStore(settings.redis)
    else:
        from rostra.store.admission_sqlite import SqliteAdmissionStore, SqliteDefenseStore

        admissions = SqliteAdmissionStore(settings.data / AUDIENCE_DATABASE_NAME)
        defenses = SqliteDefenseStore(settings.data / AUDIENCE_DATABASE_NAME)
    defaults = SpaceDefense(
        PowMode(settings.pow), settings.admission_rate, settings.admission_burst
    )
    gate.defenses = DefenseService(defenses, defaults, clock)
    gate.admission = AdmissionControl(admissions, ArrivalSigner(settings.signing_secret), clock)


def build_audience(settings: Settings, clock: Clock, spaces: SpaceStore | None) -> AudienceParts:
    window = SlidingWindow(window_s=settings.presence_window, slices=settings.presence_slices)
    presence_store: PresenceStore
    reactions: ReactionStore
    statuses: SpaceStatusStore
    revocation_log: RevocationLog
    publisher: SpaceStatusStore | None = None
    if settings.redis:
        from rostra.store.presence_redis import RedisPresenceStore
        from rostra.store.reactions_redis import RedisReactionStore, RedisSpaceStatus
        from rostra.store.revocations_redis import RedisRevocationLog

        presence_store = RedisPresenceStore(settings.redis, window)
        reactions = RedisReactionStore(settings.redis)
        revocation_log = RedisRevocationLog(settings.redis)
        publisher = RedisSpaceStatus(settings.redis)
        statuses = publisher
    else:
        if spaces is None:
            raise ValueError("a gate without Redis needs the space store")
        presence_store = SqlitePresenceStore(settings.data / AUDIENCE_DATABASE_NAME, window)
        reactions = SqliteReactionStore(settings.data / AUDIENCE_DATABASE_NAME)
        revocation_log = SqliteRevocationLog(settings.data / AUDIENCE_DATABASE_NAME)
        statuses = SpaceStoreStatus(spaces)
    gate = Gate(
        tickets=TicketSigner(settings.signing_secret),
        presence=PresenceService(presence_store, clock, count_ttl_s=COUNT_CACHE_S),
        reactions=reactions,
        statuses=statuses,
        clock=clock,
        ticket_ttl_s=settings.ticket_ttl_s,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        reactions_per_10s=settings.reactions_per_10s,
        revocations=RevocationList(revocation_log),
    )
    wire_admission(settings, clock, gate)
    spent = wire_proof_of_work(settings, clock, gate)
    gate.returned = spent  # a returning listener's ticket is exchanged once, like a solution
    return AudienceParts(
        gate=gate,
        presence_store=presence_store,
        reactions=reactions,
        statuses=statuses,
        status_publisher=publisher,
        revocation_log=revocation_log,
        spent_solutions=spent,
    )
