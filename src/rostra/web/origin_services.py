"""The origin process's parts, and how it follows the space store: a space live in the store is on
air here, an ended one is ended, a revoked invite has no session — checked every second, so the
origin needs no order to recover after a restart.

Web plane (origin process composition root).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field

from rostra.clock import Clock
from rostra.config import Settings
from rostra.media.origin import Origin
from rostra.media.record import DOWNLOAD_NAME, INIT_NAME
from rostra.media.remux import remux_recording
from rostra.stage.invites import InviteService
from rostra.stage.spaces import SpaceService, SpaceStatus
from rostra.store.base import SpaceStore
from rostra.web.incident_recorder import OriginIncidentSampler
from rostra.web.origin_status import OriginStatus, StageEntry, write_status

log = logging.getLogger(__name__)

RECONCILE_INTERVAL_S = 1.0


@dataclass(slots=True)
class OriginServices:
    settings: Settings
    clock: Clock
    store: SpaceStore
    spaces: SpaceService
    invites: InviteService
    origin: Origin
    pid: int = field(default_factory=os.getpid)
    _published: dict[str, OriginStatus] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def sync_space(self, space_id: str) -> None:
        async with self._lock:
            await self._sync(space_id)

    async def _sync(self, space_id: str) -> None:
        space = self.store.get_space(space_id)
        is_here = space_id in self.origin.space_ids()
        if space is None or space.status == SpaceStatus.ENDED:
            if is_here:
                await self.origin.end(space_id)
                self.publish(space_id)
            return
        if space.status == SpaceStatus.LIVE and space.started_at is not None:
            pipeline = self.origin.pipeline(space_id)
            if pipeline is None or not pipeline.is_on_air:
                await self.origin.go_live(space_id, space.started_at)

    async def reconcile(self) -> None:
        """Every space the store holds as live is on air; every other pipeline is ended."""
        async with self._lock:
            live = {s.id for s in self.spaces.list() if s.status == SpaceStatus.LIVE}
            for space_id in live | set(self.origin.space_ids()):
                await self._sync(space_id)
            for space_id in self.origin.space_ids():
                await self._end_revoked_sessions(space_id)
                self.publish(space_id)

    async def _end_revoked_sessions(self, space_id: str) -> None:
        revoked = {i.id for i in self.store.list_invites(space_id) if i.is_revoked}
        for member in self.origin.stage(space_id):
            if member.invite_id in revoked:
                await self.origin.disconnect_invite(space_id, member.invite_id)

    def publish(self, space_id: str) -> None:
        """Write the space's stage and health for listener workers, when they changed."""
        health = self.origin.health(space_id)
        status = OriginStatus(
            stage=tuple(
                StageEntry(
                    id=m.id, name=m.name, role=m.role, is_muted=m.is_muted, is_locked=m.is_locked
                )
                for m in self.origin.stage(space_id)
            ),
            problems=health.problems if health is not None else (),
        )
        if self._published.get(space_id) == status:
            return
        try:
            write_status(self.origin.media_dir(space_id), status)
        except OSError:
            log.exception("origin status not written", extra={"space": space_id})
            return
        self._published[space_id] = status
        if space_id not in self.origin.space_ids():
            self._published.pop(space_id, None)

    async def finish_downloads(self) -> None:
        """Ended spaces whose single-file download was not made (a stop came first) get it."""
        for space in self.spaces.list():
            directory = self.origin.media_dir(space.id)
            if space.status != SpaceStatus.ENDED or (directory / DOWNLOAD_NAME).exists():
                continue
            if (directory / INIT_NAME).is_file():
                try:
                    await asyncio.to_thread(remux_recording, directory)
                except (OSError, ValueError, RuntimeError):
                    log.exception("recording remux failed", extra={"space": space.id})

    async def run(self) -> None:
        incident = OriginIncidentSampler(self.settings.data)  # media health, each second
        while True:
            try:
                await self.reconcile()
            except (OSError, RuntimeError, ValueError):
                log.exception("reconcile failed")
            await incident.sample(self.origin, self.clock.monotonic_s())
            await asyncio.sleep(RECONCILE_INTERVAL_S)
