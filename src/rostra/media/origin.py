"""The origin: every space's pipeline and the speaker connections on its stage.

Media plane. Takes orders (connect, go live, end) from the composition root in web/; knows no
HTTP or store. Its seat rules: the host's seat is always kept free for the host (speakers fill at
most all but one), a personal claim holds one session (a new one replaces it), a shared one at most
its seats.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rostra.clock import Clock
from rostra.errors import (
    InvalidSdp,
    InviteSeatsTaken,
    SourceAlreadyLive,
    SpeakerNotFound,
    StageFull,
)
from rostra.ids import new_session_id
from rostra.media.audio import Pcm
from rostra.media.health import PipelineHealth
from rostra.media.ice import IceServer, client_ice_servers, restrict_ice_host_addresses
from rostra.media.ingest import (
    DEFAULT_SPEAKER_BITRATE_BPS,
    PacketDropper,
    ReceiveStats,
    WhipConnection,
)
from rostra.media.pipeline import SpacePipeline, VoiceSource
from rostra.media.remux import remux_recording
from rostra.media.sdp_check import check_offer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StageMember:
    id: str
    name: str
    role: str
    invite_id: str | None
    is_muted: bool = False
    # muted by the host or a co-host, who forbade the speaker to unmute themselves
    is_locked: bool = False
    # the stable id the speaker's page keeps (empty when it sent none): what a block refuses
    device_id: str = ""
    joined_at: datetime = field(default_factory=lambda: datetime.now(UTC))


# A speaker whose packets stopped this long ago has gone (killed, network lost): free the seat
# sooner than ICE consent expiry (30 s) would.
SILENT_SPEAKER_S = 10.0
WATCH_INTERVAL_S = 2.0

# shutdown waits this long for downloads still being made (they are made again on demand)
REMUX_WAIT_S = 20.0

INGEST_COUNTERS = ("received", "lost", "recovered", "concealed", "late", "dropped", "underruns")


@dataclass(slots=True)
class SpeakerReceived:
    """What a space's speakers sent, as the origin received it: Opus payload bytes, RTP packets,
    and packets carrying in-band FEC (LBRR)."""

    payload_bytes: int = 0
    packets: int = 0
    fec_packets: int = 0

    def add(self, stats: ReceiveStats) -> None:
        self.payload_bytes += stats.payload_bytes
        self.packets += stats.packets
        self.fec_packets += stats.fec_packets


@dataclass(slots=True)
class _Session:
    member: StageMember
    connection: WhipConnection


@dataclass(frozen=True, slots=True)
class _Source:
    """A voice fed by broadcast software (Icecast source protocol): one per space."""

    member: StageMember
    # asks whoever feeds the voice to stop (the host removed it, or the space ended)
    stop: Callable[[], None]


HOST_ROLE = "host"
# a broadcast-software source sits on stage as a speaker
SOURCE_ROLE = "speaker"
# what aiortc raises on offers it cannot use (it asserts and indexes rather than reporting)
_AIORTC_OFFER_ERRORS = (AssertionError, AttributeError, ValueError, KeyError, IndexError, TypeError)


@dataclass(frozen=True, slots=True)
class SeatClaim:
    """Who asks for a seat: the host, a personal credential (one session, replaced by a new one),
    or a shared link holding at most `seats` sessions at once."""

    role: str
    invite_id: str | None = None
    seats: int | None = None

    @property
    def is_host(self) -> bool:
        return self.role == HOST_ROLE

    @property
    def is_personal(self) -> bool:
        return self.is_host or self.seats is None

    def owns(self, member: StageMember) -> bool:
        if self.is_host:
            return member.role == HOST_ROLE
        return member.invite_id is not None and member.invite_id == self.invite_id


def _no_return(mix_minus: Pcm) -> None:
    """A source hears nothing back: broadcast software has no return channel."""


class Origin:
    def __init__(
        self,
        media_root: Path,
        *,
        ice_servers: Sequence[str] = (),
        ice_host_addresses: Sequence[str] = (),
        max_voices: int = 13,
        turn_secret: str = "",
        turn_ttl_s: int = 3600,
        window_segments: int = 6,
        drop_rate: float = 0.0,
        drop_seed: int = 0,
        clock: Clock | None = None,
        is_self_clocked: bool = True,
        speaker_bitrate_bps: int = DEFAULT_SPEAKER_BITRATE_BPS,
        has_captions: bool = False,
    ) -> None:
        self._root = media_root
        self._has_captions = has_captions
        self._speaker_bitrate_bps = speaker_bitrate_bps
        self.ice_servers = tuple(IceServer.parse(entry) for entry in ice_servers)
        self._max_voices = max_voices
        self._turn_secret = turn_secret
        self._turn_ttl_s = turn_ttl_s
        self._window = window_segments
        self._drop_rate = drop_rate
        self._drop_seed = drop_seed
        # tests drive the pipelines' mixers by hand on a manual clock
        self._clock = clock
        self._is_self_clocked = is_self_clocked
        self._pipelines: dict[str, SpacePipeline] = {}
        self._sessions: dict[str, dict[str, _Session]] = {}
        self._sources: dict[str, _Source] = {}
        # members whose connection is being set up: they hold their seats meanwhile
        self._pending: dict[str, dict[str, StageMember]] = {}
        self._ingest_totals: dict[str, dict[str, int]] = {}
        self._received_totals: dict[str, SpeakerReceived] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        restrict_ice_host_addresses(ice_host_addresses)

    def media_dir(self, space_id: str) -> Path:
        return self._root / space_id

    def pipelines(self) -> dict[str, SpacePipeline]:
        return dict(self._pipelines)

    def pipeline(self, space_id: str) -> SpacePipeline | None:
        return self._pipelines.get(space_id)

    def stage(self, space_id: str) -> list[StageMember]:
        members = [s.member for s in self._sessions.get(space_id, {}).values()]
        if space_id in self._sources:
            members.append(self._sources[space_id].member)
        return sorted(members, key=lambda m: m.joined_at)

    def feed_listeners(self, space_id: str) -> int:
        pipeline = self._pipelines.get(space_id)
        if pipeline is None:
            return 0
        return pipeline.adts.listener_count + pipeline.opus.listener_count

    def _ensure_pipeline(self, space_id: str) -> SpacePipeline:
        pipeline = self._pipelines.get(space_id)
        if pipeline is None:
            pipeline = SpacePipeline(
                space_id,
                self.media_dir(space_id),
                asyncio.get_running_loop(),
                window_segments=self._window,
                clock=self._clock,
                is_self_clocked=self._is_self_clocked,
                has_captions=self._has_captions,
            )
            self._pipelines[space_id] = pipeline
        return pipeline

    def client_ice_servers(self, label: str) -> tuple[IceServer, ...]:
        """The ICE servers for one client, TURN credentials expiring where a secret is set."""
        return client_ice_servers(
            self.ice_servers,
            secret=self._turn_secret,
            label=label,
            now_s=time.time(),
            ttl_s=self._turn_ttl_s,
        )

    def _take_seat(self, space_id: str, claim: SeatClaim, member: StageMember) -> None:
        """Hold a seat for the member (a personal claim's own sessions do not count: the new one
        replaces them), or raise why not."""
        held = [s.member for s in self._sessions.get(space_id, {}).values()]
        held += self._pending.get(space_id, {}).values()
        held += [self._sources[space_id].member] if space_id in self._sources else []
        replaced = [m.id for m in held if claim.is_personal and claim.owns(m)]
        staying = [m for m in held if m.id not in replaced]
        if claim.is_host:
            limit, counted = self._max_voices, staying
        else:
            limit = self._max_voices - 1
            counted = [m for m in staying if m.role != HOST_ROLE]
        if len(counted) >= limit:
            kept = "" if claim.is_host else " (one seat is kept for the host)"
            raise StageFull(
                f"space '{space_id}' allows {self._max_voices} voices{kept};"
                f" {len(staying)} are on stage"
            )
        if claim.seats is not None:
            mine = [m for m in staying if claim.owns(m)]
            if len(mine) >= claim.seats:
                raise InviteSeatsTaken(
                    f"invite '{claim.invite_id}' holds at most {claim.seats} seats at once;"
                    f" {len(mine)} are taken: ask the host for another invite"
                )
        self._pending.setdefault(space_id, {})[member.id] = member

    async def connect(
        self, space_id: str, offer_sdp: str, *, name: str, claim: SeatClaim, device_id: str = ""
    ) -> tuple[StageMember, str]:
        """Put a speaker on stage: the SDP answer, once the connection is set up."""
        check_offer(offer_sdp)
        session_id = new_session_id()
        voices = len(self._sessions.get(space_id, {}))
        member = StageMember(
            id=session_id,
            name=name or f"Speaker {voices + 1}",
            role=claim.role,
            invite_id=claim.invite_id,
            device_id=device_id,
        )
        self._take_seat(space_id, claim, member)
        dropper = PacketDropper(self._drop_rate, self._drop_seed) if self._drop_rate else None
        connection = WhipConnection(
            asyncio.get_running_loop(),
            ice_servers=self.client_ice_servers(space_id),
            dropper=dropper,
            on_closed=lambda: self._forget(space_id, session_id),
            speaker_bitrate_bps=self._speaker_bitrate_bps,
        )
        try:
            answer = await connection.answer(offer_sdp)
        except _AIORTC_OFFER_ERRORS as exc:
            await connection.close()
            raise InvalidSdp(f"the SDP offer cannot be used: {type(exc).__name__}") from exc
        except BaseException:
            await connection.close()
            raise
        finally:
            self._release(space_id, session_id)
        pipeline = self._ensure_pipeline(space_id)
        self._sessions.setdefault(space_id, {})[session_id] = _Session(member, connection)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch_speakers())
        pipeline.add_voice(session_id, connection.jitter, connection.return_track.push_threadsafe)
        log.info("speaker joined", extra={"space": space_id, "session": session_id})
        await self._replace(space_id, claim, keep=session_id)
        return member, answer

    def _release(self, space_id: str, session_id: str) -> None:
        pending = self._pending.get(space_id, {})
        pending.pop(session_id, None)
        if not pending:
            self._pending.pop(space_id, None)

    async def _replace(self, space_id: str, claim: SeatClaim, *, keep: str) -> None:
        """A personal credential's new session ends its older ones (any made meanwhile too)."""
        if not claim.is_personal:
            return
        for session in list(self._sessions.get(space_id, {}).values()):
            if session.member.id != keep and claim.owns(session.member):
                log.info(
                    "speaker replaced", extra={"space": space_id, "session": session.member.id}
                )
                await session.connection.close()

    def ingest_totals(self, space_id: str) -> dict[str, int]:
        """Packet counts of every voice the space has had, by what became of them."""
        totals = dict(self._ingest_totals.get(space_id, {}))
        for session in self._sessions.get(space_id, {}).values():
            self._add_counts(totals, session.connection)
        return totals

    def speaker_received(self, space_id: str) -> SpeakerReceived:
        """What every speaker the space has had sent, as received (test drops included)."""
        ended = self._received_totals.get(space_id, SpeakerReceived())
        totals = SpeakerReceived(ended.payload_bytes, ended.packets, ended.fec_packets)
        for session in self._sessions.get(space_id, {}).values():
            totals.add(session.connection.hook.stats)
        return totals

    @staticmethod
    def _add_counts(totals: dict[str, int], connection: WhipConnection) -> None:
        stats = connection.jitter.stats
        for name in INGEST_COUNTERS:
            totals[name] = totals.get(name, 0) + int(getattr(stats, name))
        totals["test_dropped"] = (
            totals.get("test_dropped", 0) + connection.hook.stats.dropped_by_test
        )

    async def _watch_speakers(self) -> None:
        while any(self._sessions.values()):
            await asyncio.sleep(WATCH_INTERVAL_S)
            now = time.monotonic()
            for sessions in list(self._sessions.values()):
                for session in list(sessions.values()):
                    if now - session.connection.hook.stats.last_packet_s > SILENT_SPEAKER_S:
                        log.info("speaker gone silent", extra={"session": session.member.id})
                        await session.connection.close()

    def _forget(self, space_id: str, session_id: str) -> None:
        session = self._sessions.get(space_id, {}).pop(session_id, None)
        if session is not None:
            self._add_counts(self._ingest_totals.setdefault(space_id, {}), session.connection)
            received = self._received_totals.setdefault(space_id, SpeakerReceived())
            received.add(session.connection.hook.stats)
        pipeline = self._pipelines.get(space_id)
        if pipeline is not None:
            pipeline.remove_voice(session_id)
        if session is not None:
            log.info("speaker left", extra={"space": space_id, "session": session_id})

    def _session(self, space_id: str, session_id: str) -> _Session:
        session = self._sessions.get(space_id, {}).get(session_id)
        if session is None:
            raise SpeakerNotFound(f"space '{space_id}' has no speaker session '{session_id[:40]}'")
        return session

    def connection(self, space_id: str, session_id: str) -> WhipConnection:
        return self._session(space_id, session_id).connection

    def member(self, space_id: str, session_id: str) -> StageMember:
        source = self._sources.get(space_id)
        if source is not None and source.member.id == session_id:
            return source.member
        return self._session(space_id, session_id).member

    def set_muted(
        self, space_id: str, session_id: str, *, is_muted: bool, is_locked: bool
    ) -> StageMember:
        """Mute (locked or not) or unmute one voice: the program loses or regains it from the
        mixer's next tick (20 ms at most)."""
        member = self.member(space_id, session_id)
        member.is_muted = is_muted
        member.is_locked = is_muted and is_locked
        pipeline = self._pipelines.get(space_id)
        if pipeline is not None:
            pipeline.set_muted(session_id, is_muted)
        log.info(
            "speaker muted" if is_muted else "speaker unmuted",
            extra={"space": space_id, "session": session_id},
        )
        return member

    def set_muted_roles(
        self, space_id: str, roles: frozenset[str], *, is_muted: bool, is_locked: bool
    ) -> list[StageMember]:
        """Mute or unmute every voice on stage holding one of `roles` (one call, no await)."""
        members = [m for m in self.stage(space_id) if m.role in roles]
        for member in members:
            self.set_muted(space_id, member.id, is_muted=is_muted, is_locked=is_locked)
        return members

    async def disconnect(self, space_id: str, session_id: str) -> None:
        source = self._sources.get(space_id)
        if source is not None and source.member.id == session_id:
            source.stop()
            return
        await self.connection(space_id, session_id).close()

    def source_of(self, space_id: str) -> StageMember | None:
        """The space's broadcast-software voice, if one is on stage."""
        source = self._sources.get(space_id)
        return source.member if source is not None else None

    def add_source(
        self, space_id: str, name: str, voice: VoiceSource, *, stop: Callable[[], None]
    ) -> StageMember:
        """Put a decoded source on stage as a speaker: it takes a seat like one (the host's
        is kept) and hears no mix-minus. `stop` is called to end it (removed, space ended)."""
        if space_id in self._sources:
            raise SourceAlreadyLive(
                f"space '{space_id}' already has a source on stage"
                f" ('{self._sources[space_id].member.name}'): one at a time"
            )
        member = StageMember(id=new_session_id(), name=name, role=SOURCE_ROLE, invite_id=None)
        self._take_seat(space_id, SeatClaim(role=SOURCE_ROLE, seats=1), member)
        self._release(space_id, member.id)
        self._sources[space_id] = _Source(member, stop)
        self._ensure_pipeline(space_id).add_voice(member.id, voice, _no_return)
        log.info("source joined", extra={"space": space_id, "session": member.id})
        return member

    def stop_sources(self) -> None:
        """Ask every source to end (the process is stopping): their requests would otherwise
        hold the HTTP server's graceful stop until its timeout."""
        for source in list(self._sources.values()):
            source.stop()

    def remove_source(self, space_id: str, session_id: str) -> None:
        source = self._sources.get(space_id)
        if source is None or source.member.id != session_id:
            return
        del self._sources[space_id]
        pipeline = self._pipelines.get(space_id)
        if pipeline is not None:
            pipeline.remove_voice(session_id)
        log.info("source left", extra={"space": space_id, "session": session_id})

    async def disconnect_invite(self, space_id: str, invite_id: str) -> int:
        sessions = list(self._sessions.get(space_id, {}).values())
        matching = [s for s in sessions if s.member.invite_id == invite_id]
        for session in matching:
            await session.connection.close()
        return len(matching)

    async def go_live(self, space_id: str, started_at: datetime) -> None:
        self._ensure_pipeline(space_id).start_program(started_at)

    async def end(self, space_id: str) -> None:
        """End a space: its speakers leave, the final playlist and the replay are written; the
        single-file download is made afterwards, in the background."""
        await self._close_space(space_id)
        pipeline = self._pipelines.pop(space_id, None)
        self._ingest_totals.pop(space_id, None)
        self._received_totals.pop(space_id, None)
        if pipeline is None:
            return
        await asyncio.to_thread(pipeline.stop, is_ending=True)
        remux = asyncio.create_task(asyncio.to_thread(self._remux, space_id, pipeline.directory))
        self._background.add(remux)
        remux.add_done_callback(self._background.discard)

    @staticmethod
    def _remux(space_id: str, directory: Path) -> None:
        try:
            remux_recording(directory)
        except (OSError, ValueError, RuntimeError):
            log.exception("recording remux failed", extra={"space": space_id})

    async def _close_space(self, space_id: str) -> None:
        for session in list(self._sessions.get(space_id, {}).values()):
            await session.connection.close()
        self._sessions.pop(space_id, None)
        self._pending.pop(space_id, None)
        source = self._sources.pop(space_id, None)
        if source is not None:
            source.stop()

    async def shutdown(self) -> list[str]:
        """Stop without ending: each live space's segment in flight is cut and its live playlist
        left open, so the next start continues it. The ids of the spaces that were on air."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        on_air = [sid for sid, p in self._pipelines.items() if p.is_on_air]
        # speakers' connections are left to die with the process, never closed: a closed one
        # tells a client it was removed, a dead one that it should publish again
        self._sessions.clear()
        for space_id in list(self._pipelines):
            pipeline = self._pipelines.pop(space_id)
            await asyncio.to_thread(pipeline.stop, is_ending=False)
        if self._background:
            await asyncio.wait(self._background, timeout=REMUX_WAIT_S)
        return on_air

    def space_ids(self) -> list[str]:
        return list(self._pipelines)

    def health(self, space_id: str) -> PipelineHealth | None:
        pipeline = self._pipelines.get(space_id)
        return pipeline.health() if pipeline is not None else None
