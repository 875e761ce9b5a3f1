"""The simulated low-latency HLS listener: joins as an HLS listener does, then plays the live
playlist as hls.js does in low-latency mode (RFC 8216bis): PART-HOLD-BACK behind the live edge,
a blocking playlist reload for the next part, each part fetched once.

Rehearsal plane (a client). Imports Locust (gevent): only the rehearsal's processes load it.
"""

from __future__ import annotations

import time
from typing import Any

from locust.contrib.fasthttp import FastResponse

from rostra.rehearse.hls_player import (
    LivePart,
    LivePlaylist,
    PlayerBuffer,
    next_position,
    parse_live_playlist,
    parts_after,
    start_part,
)
from rostra.rehearse.user_base import ERROR_RETRY_S, head_bytes
from rostra.rehearse.user_calls import note_status
from rostra.rehearse.users import HlsListener, InteractiveListener

# the answers counted in `transfer` beside the playlists and segments the base class counts
PART_TRANSFER = "part"
# a part a player waits for after the one before it: a jump means it fell off the playlist
RESYNC = "part:resync"
# the answer to a blocking reload for a part too far ahead (a restarted origin)
BAD_REQUEST = 400


class LlHlsListener(HlsListener):
    """Joins the gate as an `HlsListener`, then plays as hls.js in low-latency mode: one plain
    playlist read, a start PART-HOLD-BACK behind the live edge, then a blocking reload
    (`_HLS_msn`, `_HLS_part`) for the next part and each new part fetched once; one request
    at a time. A playlist without parts (an older server, an ended space) is played as the
    legacy player plays it."""

    abstract = False

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._last_part: tuple[int, int] | None = None
        self._live: LivePlaylist | None = None  # the last playlist read, parsed
        self._is_legacy = False

    def call(self, method: str, path: str, name: str, **kwargs: Any) -> FastResponse:
        response = super().call(method, path, name, **kwargs)
        if name == PART_TRANSFER and response.status_code == 200:
            transfer = self.second().transfer
            transfer[f"{name}:count"] += 1
            transfer[f"{name}:body"] += len(response.content or b"")
            transfer[f"{name}:head"] += head_bytes(response)
        return response

    def _poll_playlist(self, now_s: float) -> None:
        if self._is_legacy:
            super()._poll_playlist(now_s)
            return
        if self._media_playlist is None:
            self._media_playlist = self._find_media_playlist()
            if self._media_playlist is None:
                self._next_playlist_s = now_s + ERROR_RETRY_S
                return
        playlist = self._reload()
        if playlist is None:
            self._next_playlist_s = time.time() + ERROR_RETRY_S
            return
        if not playlist.parts:
            self._is_legacy = True
            self._next_playlist_s = time.time() + playlist.target_duration_s
            return
        self._play(playlist)
        self._next_playlist_s = time.time()  # the next blocking reload paces the player

    def _reload(self) -> LivePlaylist | None:
        """The playlist: plain before the start, then blocking until the next part exists."""
        assert self._media_playlist is not None
        path = self._media_playlist
        if self._last_part is not None and self._live is not None:
            msn, part = next_position(self._live, self._last_part)
            path = f"{path}?_HLS_msn={msn}&_HLS_part={part}"
        response = self.call("GET", path, "playlist")
        if response.status_code != 200:
            note_status(self.second().media, "playlist", response.status_code)
            if response.status_code == BAD_REQUEST:
                self._last_part = None  # asked past the live edge: start again from it
            return None
        self._live = parse_live_playlist(response.text or "")
        return self._live

    def _play(self, playlist: LivePlaylist) -> None:
        if self._last_part is None:
            start = start_part(playlist)
            assert start is not None  # the playlist has parts
            if playlist.init_uri is not None and not self._fetch(playlist.init_uri, "init"):
                return
            self._start_player(playlist)
            new = parts_after(playlist, _before(start))
        else:
            new = parts_after(playlist, self._last_part)
            if new and not _follows(new[0], self._last_part):
                self.second().media[RESYNC] += 1  # the parts between fell off the playlist
        for part in new:
            if not self._fetch(part.uri, PART_TRANSFER):
                break
            self._last_part = part.position
            self._received(part.duration_s, part.program_date_time_s)

    def _start_player(self, playlist: LivePlaylist) -> None:
        """hls.js plays once the hold-back is buffered: its start buffer is under it by half a
        part, whatever the legacy player's start buffer."""
        if self._player is None:
            start_buffer_s = playlist.part_hold_back_s - playlist.part_target_s / 2
            start_buffer_s = min(self.settings.start_buffer_s, max(start_buffer_s, 0.001))
            self._player = PlayerBuffer(start_buffer_s, now_s=time.time())


class LlInteractiveListener(InteractiveListener, LlHlsListener):
    """A low-latency HLS listener that also reacts and raises a hand."""

    abstract = False


def _before(part: LivePart) -> tuple[int, int]:
    """A position just before `part`, so that `parts_after` includes it."""
    return part.sequence_number, part.index - 1


def _follows(part: LivePart, last: tuple[int, int]) -> bool:
    """True when `part` comes right after part `last`: the next of its segment, or the first of
    the next segment."""
    msn, index = last
    return part.position in ((msn, index + 1), (msn + 1, 0))
