"""The simulated audience as Locust users: an HLS listener that behaves like a player, a
progressive-stream listener, an interactive listener (reactions, hands) and an attacker. Each
records what a person would notice into the process's `AudienceRun` (see `attach`).

Rehearsal plane (a client). Imports Locust, hence gevent, which patches the interpreter: only
the rehearsal's own processes import this module, never a server process or the CLI at start.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

from locust import task
from locust.contrib.fasthttp import FastResponse

from rostra.rehearse.attacker import Attacker
from rostra.rehearse.audience_run import AudienceSettings
from rostra.rehearse.hls_player import PlayerBuffer, parse_live_playlist
from rostra.rehearse.locust_wiring import attach
from rostra.rehearse.user_base import ERROR_RETRY_S, AudienceUser, bearer
from rostra.rehearse.user_calls import join_outcome, note_status, retry_after_s, solve_challenge

__all__ = [
    "Attacker",
    "AudienceSettings",
    "HlsListener",
    "InteractiveListener",
    "ProgressiveListener",
    "attach",
]

REACTIONS = ("👏", "❤️", "😂", "🔥", "👍")
RETRY_JITTER = (1.0, 1.5)  # a waiting-room wait is stretched by U(1, 1.5), as the page does
PROGRESSIVE_CHUNK_BYTES = 2048
PROGRESSIVE_GAP_S = 1.0


class HlsListener(AudienceUser):
    """Joins the gate (waiting room, proof-of-work and limits obeyed), then plays the live HLS
    as a player does: the media playlist once per target duration, each new segment once, a
    heartbeat at the interval the server gives; leaves when stopped."""

    abstract = False

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.ticket: str | None = None
        self._clicked_s: float | None = None
        self._join_body: dict[str, str] | None = None
        self._media_playlist: str | None = None
        self._last_sequence = -1
        self._last_playlist = ""
        self._target_s = 1.0
        self._next_playlist_s = 0.0
        self._next_heartbeat_s = 0.0
        self._heartbeat_interval_s = 20.0
        self._player: PlayerBuffer | None = None
        self._has_audio = False

    # the step: join until admitted, then play
    @task
    def step(self) -> None:
        now_s = self.begin_step()
        if self.ticket is None:
            self._join(now_s)
            return
        if now_s >= self._next_playlist_s:
            self._poll_playlist(now_s)
        if time.time() >= self._next_heartbeat_s:
            self._heartbeat()
        self._observe_player()
        self._due_s = min(self._next_playlist_s, self._next_heartbeat_s, *self.extra_due())

    def extra_due(self) -> tuple[float, ...]:
        return ()

    def on_stop(self) -> None:
        self._observe_player()
        if self.ticket is None:
            return
        response = self.call(
            "POST", f"{self.base}/leave", "leave", headers=bearer(self.ticket), data=b""
        )
        note_status(self.second().heartbeats, "leave", response.status_code)
        self._lose_ticket()

    def _join(self, now_s: float) -> None:
        if self._clicked_s is None:
            self._clicked_s = now_s
        response = self.call("POST", f"{self.base}/join", "join", json=self._join_body)
        outcome = join_outcome(response)
        self.second().joins[outcome] += 1
        if outcome == "admitted":
            body = response.json()
            self.ticket = str(body["ticket"])
            self._heartbeat_interval_s = float(body["heartbeat_interval_s"])
            # as the listener page does: the first heartbeat once audio plays, then each interval
            self._next_heartbeat_s = time.time() if self._has_audio else math.inf
            self._join_body = None
            self.audience.live += 1
            self._due_s = time.time()
        elif outcome == "queued":
            arrival = _json_field(response, "arrival")
            self._join_body = {"arrival": arrival} if arrival else None
            self._due_s = time.time() + retry_after_s(response) * _jitter()
        elif outcome == "challenged":
            self._join_body = {"altcha": solve_challenge(response.json()["challenge"])}
            self._due_s = time.time()
        elif outcome == "rate-limited":
            self._due_s = time.time() + retry_after_s(response) * _jitter()
        else:
            self._join_body = None
            self._due_s = time.time() + ERROR_RETRY_S * _jitter()

    def _lose_ticket(self) -> None:
        if self.ticket is not None:
            self.ticket = None
            self.audience.live -= 1

    def _heartbeat(self) -> None:
        assert self.ticket is not None
        response = self.call(
            "POST", f"{self.base}/heartbeat", "heartbeat", headers=bearer(self.ticket), data=b""
        )
        status = response.status_code
        note_status(self.second().heartbeats, "heartbeat", status)
        if status == 200:
            self.ticket = str(response.json()["ticket"])  # renewed: adopt it
        elif status in (401, 403):
            self._lose_ticket()  # join again at the next step
            return
        self._next_heartbeat_s = time.time() + self._heartbeat_interval_s

    def _poll_playlist(self, now_s: float) -> None:
        if self._media_playlist is None:
            self._media_playlist = self._find_media_playlist()
            if self._media_playlist is None:
                self._next_playlist_s = now_s + ERROR_RETRY_S
                return
        response = self.call("GET", self._media_playlist, "playlist")
        if response.status_code != 200:
            note_status(self.second().media, "playlist", response.status_code)
            self._next_playlist_s = now_s + ERROR_RETRY_S
            return
        text = response.text or ""
        if text == self._last_playlist:
            self._next_playlist_s = now_s + self._target_s
            return
        self._last_playlist = text
        playlist = parse_live_playlist(text)
        self._target_s = playlist.target_duration_s
        self._next_playlist_s = now_s + playlist.target_duration_s
        segments = playlist.segments
        if self._last_sequence < 0:
            if playlist.init_uri is not None:
                self._fetch(playlist.init_uri, "init")
            segments = segments[-self.settings.live_sync_segments :]
        for segment in segments:
            if segment.sequence_number <= self._last_sequence:
                continue
            if not self._fetch(segment.uri, "segment"):
                break
            self._last_sequence = segment.sequence_number
            self._received(segment.duration_s, segment.program_date_time_s)

    def _find_media_playlist(self) -> str | None:
        response = self.call("GET", f"{self.media_base}index.m3u8", "master playlist")
        if response.status_code != 200:
            note_status(self.second().media, "master playlist", response.status_code)
            return None
        for line in (response.text or "").splitlines():
            if line.strip() and not line.startswith("#"):
                return self._resolve(line.strip())
        return None

    def _resolve(self, uri: str) -> str:
        return uri if "://" in uri or uri.startswith("/") else self.media_base + uri

    def _fetch(self, uri: str, name: str) -> bool:
        response = self.call("GET", self._resolve(uri), name)
        if response.status_code != 200:
            note_status(self.second().media, name, response.status_code)
            return False
        return True

    def _received(self, duration_s: float, program_date_time_s: float | None) -> None:
        now_s = time.time()
        if self._player is None:
            self._player = PlayerBuffer(self.settings.start_buffer_s, now_s=now_s)
        self._player.add(duration_s, program_date_time_s, now_s=now_s)
        if not self._has_audio and self._clicked_s is not None:
            self._has_audio = True
            self._next_heartbeat_s = now_s  # counted from now on
            second = self.second()
            second.ttfa.add(now_s - self._clicked_s)
            if program_date_time_s is not None:
                second.pdt_lag.add(now_s - program_date_time_s)

    def _observe_player(self) -> None:
        if self._player is None:
            return
        now_s = time.time()
        latency_s = self._player.latency_to_live_s(now_s)
        tally = self._player.take()
        second = self.audience.observations.at(now_s)
        if latency_s is not None:
            second.latency.add(latency_s)
        second.stalls += tally.stalls
        second.stall_s += tally.stall_s
        second.played_s += tally.played_s


class InteractiveListener(HlsListener):
    """An HLS listener that also reacts and raises (then lowers) a hand at the configured rates."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._next_reaction_s = time.time() + self._reaction_gap_s()
        self._next_hand_s = time.time() + self._hand_gap_s()
        self._is_hand_up = False

    def _reaction_gap_s(self) -> float:
        return _poisson_gap_s(self.settings.reactions_per_min / 60)

    def _hand_gap_s(self) -> float:
        return _poisson_gap_s(self.settings.hands_per_hour / 3600)

    def extra_due(self) -> tuple[float, ...]:
        now_s = time.time()
        if self.ticket is not None and now_s >= self._next_reaction_s:
            self._react()
            self._next_reaction_s = now_s + self._reaction_gap_s()
        if self.ticket is not None and now_s >= self._next_hand_s:
            self._hand()
            self._next_hand_s = now_s + self._hand_gap_s()
        return (self._next_reaction_s, self._next_hand_s)

    def _react(self) -> None:
        assert self.ticket is not None
        response = self.call(
            "POST",
            f"{self.base}/reactions",
            "reaction",
            headers=bearer(self.ticket),
            json={"emoji": random.choice(REACTIONS)},  # noqa: S311 (not a secret)
        )
        note_status(self.second().interactions, "reaction", response.status_code)

    def _hand(self) -> None:
        assert self.ticket is not None
        method, name = ("DELETE", "lower hand") if self._is_hand_up else ("POST", "hand")
        response = self.call(method, f"{self.base}/hand", name, headers=bearer(self.ticket))
        note_status(self.second().interactions, name, response.status_code)
        if response.status_code == 204:
            self._is_hand_up = not self._is_hand_up


class ProgressiveListener(AudienceUser):
    """Plays `stream.aac` (or `stream.opus`) as a plain player does: one long GET read as it
    comes. Records time to first byte and gaps (no byte for more than a second)."""

    abstract = False

    @task
    def listen(self) -> None:
        self.begin_step()
        started_s = time.time()
        path = f"{self.media_base}stream.{self.settings.progressive_kind}"
        response = self.call("GET", path, "progressive", stream=True)
        if response.status_code != 200:
            note_status(self.second().media, "progressive", response.status_code)
            self._due_s = time.time() + ERROR_RETRY_S
            return
        last_s: float | None = None
        for chunk in response.iter_content(  # type: ignore[no-untyped-call] # Locust leaves it untyped
            PROGRESSIVE_CHUNK_BYTES, decode_content=False
        ):
            now_s = time.time()
            if not chunk:
                continue
            second = self.audience.observations.at(now_s)
            if last_s is None:
                second.progressive_ttfb.add(now_s - started_s)
            elif now_s - last_s > PROGRESSIVE_GAP_S:
                second.progressive_gaps += 1
                second.progressive_gap_s += now_s - last_s
            last_s = now_s
        note_status(self.second().media, "progressive ended", response.status_code)
        self._due_s = time.time() + ERROR_RETRY_S


def _poisson_gap_s(rate_per_s: float) -> float:
    """The wait to the next of events arriving at random at `rate_per_s` (never, at 0)."""
    if rate_per_s <= 0:
        return float("inf")
    return random.expovariate(rate_per_s)


def _jitter() -> float:
    """A wait's stretch, so a crowd told the same Retry-After does not come back in step."""
    return random.uniform(*RETRY_JITTER)  # noqa: S311 (spreads load; not a secret)


def _json_field(response: FastResponse, name: str) -> str | None:
    try:
        value = response.json().get(name)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
