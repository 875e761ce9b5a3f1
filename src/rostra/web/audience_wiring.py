"""Builds the audience plane for a process: the gate with its stores, on Redis when configured
(every gate worker and node share one count), else in one SQLite file in the data folder (every
worker process of the machine shares one count, its reactions and its hands).

Web plane (composition root).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from rostra.audience.gate import Gate
from rostra.audience.presence import PresenceService
from rostra.audience.tickets import TicketSigner
from rostra.clock import Clock
from rostra.config import Settings
from rostra.errors import RostraError
from rostra.store.base import SpaceStore
from rostra.store.presence import PresenceStore, SlidingWindow
from rostra.store.presence_sqlite import SqlitePresenceStore
from rostra.store.reactions import ReactionStore
from rostra.store.reactions_sqlite import SqliteReactionStore
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

    def close(self) -> None:
        self.presence_store.close()
        self.reactions.close()


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


def build_audience(settings: Settings, clock: Clock, spaces: SpaceStore | None) -> AudienceParts:
    window = SlidingWindow(window_s=settings.presence_window, slices=settings.presence_slices)
    presence_store: PresenceStore
    reactions: ReactionStore
    statuses: SpaceStatusStore
    publisher: SpaceStatusStore | None = None
    if settings.redis:
        from rostra.store.presence_redis import RedisPresenceStore
        from rostra.store.reactions_redis import RedisReactionStore, RedisSpaceStatus

        presence_store = RedisPresenceStore(settings.redis, window)
        reactions = RedisReactionStore(settings.redis)
        publisher = RedisSpaceStatus(settings.redis)
        statuses = publisher
    else:
        if spaces is None:
            raise ValueError("a gate without Redis needs the space store")
        presence_store = SqlitePresenceStore(settings.data / AUDIENCE_DATABASE_NAME, window)
        reactions = SqliteReactionStore(settings.data / AUDIENCE_DATABASE_NAME)
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
    )
    return AudienceParts(
        gate=gate,
        presence_store=presence_store,
        reactions=reactions,
        statuses=statuses,
        status_publisher=publisher,
    )
