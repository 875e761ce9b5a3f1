"""The arrival curve as Locust asks for it once a second: how many users should run now and how
fast to get there, the attackers on top, and the listener kinds' weights from the mix.

Rehearsal plane (a client). Pure: the Locust `LoadTestShape` in `local_run` asks this.
"""

from __future__ import annotations

from dataclasses import dataclass

from rostra.rehearse.scenario import Audience

# users started (or stopped) per second, at least: a flat stretch still settles at once
MIN_SPAWN_RATE = 1.0
# a kind's share of the mix becomes an integer Locust weight out of this
WEIGHT_SCALE = 1000
# the listener kinds and the user classes that play them
KIND_CLASSES = {
    "hls": "HlsListener",
    "progressive": "ProgressiveListener",
    "interactive": "InteractiveListener",
}
ATTACKER_CLASS = "Attacker"


@dataclass(frozen=True, slots=True)
class ArrivalShape:
    """Users at each second of a rehearsal: the curve's listeners one second ahead (Locust
    reaches a target within the second at this spawn rate), plus a fixed number of attackers."""

    audience: Audience
    attackers: int = 0

    def users_at(self, run_time_s: float) -> int:
        """Users asked for at `run_time_s` (listeners aimed one second ahead, then attackers)."""
        if run_time_s < 0:
            return 0
        ahead_s = min(run_time_s + 1, self.audience.duration_s)
        return round(self.audience.listeners_at(ahead_s)) + self.attackers

    def tick(self, run_time_s: float) -> tuple[int, float] | None:
        """(users, spawn rate per second) at `run_time_s`; None once the curve is over."""
        if run_time_s >= self.audience.duration_s:
            return None
        users = self.users_at(run_time_s)
        before = self.users_at(run_time_s - 1)
        return users, max(MIN_SPAWN_RATE, float(abs(users - before)))

    def weights(self) -> dict[str, int]:
        """Integer Locust weights per listener class, from the mix (a kind with a share has at
        least 1; a kind without none)."""
        audience = self.audience
        shares = {
            KIND_CLASSES[kind]: getattr(audience, kind)
            for kind in ("hls", "progressive", "interactive")
        }
        total = sum(shares.values())
        return {
            name: max(1, round(share / total * WEIGHT_SCALE))
            for name, share in shares.items()
            if share > 0
        }
