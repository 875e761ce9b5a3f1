"""A listener worker's parts, wired once: settings, stores, stage services, the audience, the
media files in the data folder, and the client of the origin process.

Web plane (composition root).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rostra.audience.icecast_count import IcecastCount
from rostra.clock import Clock, iso_utc
from rostra.config import Settings
from rostra.stage.invites import InviteService
from rostra.stage.spaces import SpaceService
from rostra.stage.tokens import TokenSigner
from rostra.store.base import SpaceRecord, SpaceStore
from rostra.web.audience_wiring import AudienceParts
from rostra.web.feeds import FeedHub
from rostra.web.origin_client import OriginClient
from rostra.web.origin_status import StatusReader


@dataclass(slots=True)
class Services:
    settings: Settings
    clock: Clock
    store: SpaceStore
    spaces: SpaceService
    invites: InviteService
    signer: TokenSigner
    origin: OriginClient
    feeds: FeedHub
    origin_status: StatusReader
    media_root: Path
    audience: AudienceParts
    # Icecast's listeners of each space's mounts (docs/relays.md); None without --icecast
    icecast_count: IcecastCount | None = None

    def media_dir(self, space_id: str) -> Path:
        return self.media_root / space_id

    def publish_status(self, space: SpaceRecord) -> None:
        """Gates on other nodes learn a space's status from the shared store."""
        if self.audience.status_publisher is not None:
            self.audience.status_publisher.set_status(space.id, space.status)

    def url(self, path: str) -> str:
        return self.settings.base_url + path

    def relay_url(self, space_id: str, kind: str) -> str | None:
        """The space's mount on the Icecast server it is fed to; None without --icecast."""
        base = self.settings.icecast_base_url
        return f"{base}/{space_id}.{kind}" if base else None

    def default_invite_token(self, space: SpaceRecord) -> str | None:
        """The reusable invite minted with the space: its link is part of the space's JSON."""
        candidates = [
            invite
            for invite in self.store.list_invites(space.id)
            if invite.uses_max is None and not invite.is_revoked and not invite.name
        ]
        if not candidates:
            return None
        first = min(candidates, key=lambda invite: invite.created_at)
        return self.signer.invite_token(space.id, first.id, first.expires_at)

    def speaker_invite_url(self, space_id: str, token: str) -> str:
        return self.url(f"/speak/{space_id}?invite={token}")

    def space_json(self, space: SpaceRecord, *, is_private: bool) -> dict[str, Any]:
        sid = space.id
        body: dict[str, Any] = {
            "id": sid,
            "title": space.title,
            "status": space.status,
            "created_at": iso_utc(space.created_at),
            "scheduled_at": iso_utc(space.scheduled_at),
            "started_at": iso_utc(space.started_at),
            "ended_at": iso_utc(space.ended_at),
            "whip_url": f"{self.settings.whip_base_url}/whip/{sid}",
            "listen_url": self.url(f"/listen/{sid}"),
            "hls_url": self.url(f"/live/{sid}/index.m3u8"),
            "stream_url": self.url(f"/live/{sid}/stream.aac"),
            "opus_stream_url": self.url(f"/live/{sid}/stream.opus"),
            "relay_stream_url": self.relay_url(sid, "aac"),
            "relay_opus_stream_url": self.relay_url(sid, "opus"),
            "state_url": self.url(f"/live/{sid}/state.json"),
            "replay_url": self.url(f"/replay/{sid}/index.m3u8"),
            "download_url": self.url(f"/replay/{sid}/audio.m4a"),
        }
        if space.scheduled_at is not None:
            body["event_url"] = self.url(f"/live/{sid}/event.ics")
        if is_private:
            host = self.invites.host_link(space)
            body["host_url"] = self.url(f"/host/{sid}?token={host.token}")
            body["host_expires_at"] = iso_utc(host.expires_at)
            invite = self.default_invite_token(space)
            body["speaker_invite_url"] = (
                self.speaker_invite_url(sid, invite) if invite is not None else None
            )
        return body
