"""What every simulated user of one load-generating process shares: the rehearsal's settings,
the observations they fill, and the number of simulated listeners live (the truth).

Rehearsal plane (a client). No Locust here, so a scenario, a runner or a report can build and
read these without loading gevent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rostra.rehearse.observations import Observations

PROGRESSIVE_KINDS = ("aac", "opus")
# how a simulated HLS listener plays: low-latency (parts, blocking reload) as the listener
# page's hls.js does, or as a legacy player (the playlist each target duration, whole segments)
HLS_MODES = ("ll", "legacy")


@dataclass(frozen=True, slots=True)
class AudienceSettings:
    """How the simulated audience behaves.

    - `space_id`: the space listened to; media and gate calls go to the Locust host.
    - `start_buffer_s`: media a player buffers before it plays (and again after a stall);
      `live_sync_segments`: how far behind the live edge a player starts, in segments (hls.js
      starts 3 target durations back).
    - `reactions_per_min`, `hands_per_hour`: an interactive listener's rates (Poisson arrivals).
    - `progressive_kind`: `aac` or `opus` (`stream.aac` / `stream.opus`).
    - `hls_mode`: `ll` (parts and blocking reloads, as the listener page plays) or `legacy`.
    - `attack_interval_s`: an attacker's pause between attacks; `slow_send_s`: how long a slow
      connection dribbles its request headers.
    - `timeout_s`: every request's connect and read timeout.
    - `behind_s`: a step starting this late is counted `behind` (the generator's fault).
    """

    space_id: str
    start_buffer_s: float = 2.0
    live_sync_segments: int = 3
    reactions_per_min: float = 6.0
    hands_per_hour: float = 30.0
    progressive_kind: str = "aac"
    hls_mode: str = "ll"
    attack_interval_s: float = 0.5
    slow_send_s: float = 3.0
    timeout_s: float = 10.0
    behind_s: float = 0.5

    def __post_init__(self) -> None:
        if self.progressive_kind not in PROGRESSIVE_KINDS:
            raise ValueError(
                f"progressive kind {self.progressive_kind!r} is not one of {PROGRESSIVE_KINDS}"
            )
        if self.hls_mode not in HLS_MODES:
            raise ValueError(f"HLS mode {self.hls_mode!r} is not one of {HLS_MODES}")
        if self.start_buffer_s <= 0 or self.live_sync_segments < 1:
            raise ValueError("a player needs a positive start buffer and at least one segment")


@dataclass(slots=True)
class AudienceRun:
    """One process's share of a rehearsal: what its users were told, and what they saw."""

    settings: AudienceSettings
    observations: Observations = field(default_factory=Observations)
    live: int = 0  # simulated listeners of this process holding a ticket and playing
