"""The rehearsal's watchers: once a second, the space's `state.json` through the media URL (the
count the audience is shown) and `/healthz` on the gate URL, each second's reading kept for the
count check and the origin-health target.

Rehearsal plane (a client): plain threads and httpx in the orchestrator, no gevent.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx

WATCH_INTERVAL_S = 1.0
WATCH_TIMEOUT_S = 2.0
DOWN = "down"
DEGRADED = "degraded"
UNREACHABLE = "unreachable"
TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class StateReading:
    """What `state.json` said in one second (None: it could not be read)."""

    listeners: int | None
    error: float | None
    is_stale: bool
    health: str | None
    stage: int = 0  # voices on stage


@dataclass(frozen=True, slots=True)
class HealthReading:
    """`/healthz` in one second: `ok`, `degraded` (503, `failed` names the check; or no answer
    within WATCH_TIMEOUT_S, `failed` = `timeout`) or `down` (no connection, or another status)."""

    health: str
    failed: str | None


class Watcher:
    """Two threads reading `state.json` and `/healthz` once a second until stopped; readings
    keyed by the Unix second they were taken in."""

    def __init__(self, state_url: str, healthz_url: str) -> None:
        self.state_url = state_url
        self.healthz_url = healthz_url
        self.states: dict[int, StateReading] = {}
        self.healths: dict[int, HealthReading] = {}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(self._read_state,), daemon=True),
            threading.Thread(target=self._loop, args=(self._read_health,), daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=WATCH_TIMEOUT_S + 1)

    def _loop(self, read: object) -> None:
        assert callable(read)
        with httpx.Client(timeout=WATCH_TIMEOUT_S) as client:
            while not self._stop.is_set():
                started_s = time.time()
                read(client, int(started_s))
                self._stop.wait(max(0.0, int(started_s) + WATCH_INTERVAL_S - time.time()))

    def _read_state(self, client: httpx.Client, second: int) -> None:
        self.states[second] = read_state(client, self.state_url)

    def _read_health(self, client: httpx.Client, second: int) -> None:
        self.healths[second] = read_health(client, self.healthz_url)


def read_state(client: httpx.Client, url: str) -> StateReading:
    try:
        response = client.get(url, headers={"Cache-Control": "no-cache"})
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        body = None
    if not isinstance(body, dict):
        return StateReading(None, None, is_stale=True, health=None)
    stage = body.get("stage")
    listeners = body.get("listeners")
    error = body.get("error")
    health = body.get("health")
    return StateReading(
        listeners=int(listeners) if isinstance(listeners, int | float) else None,
        error=float(error) if isinstance(error, int | float) else None,
        is_stale=bool(body.get("stale", False)),
        health=health if isinstance(health, str) else None,
        stage=len(stage) if isinstance(stage, list) else 0,
    )


def read_health(client: httpx.Client, url: str) -> HealthReading:
    try:
        response = client.get(url)
    except httpx.TimeoutException:
        return HealthReading(DEGRADED, TIMEOUT)
    except httpx.HTTPError:
        return HealthReading(DOWN, UNREACHABLE)
    if response.status_code == 200:
        return HealthReading("ok", None)
    try:
        failed = response.json().get("failed") or []
    except (ValueError, AttributeError):
        failed = []
    first = failed[0] if failed else None
    if isinstance(first, dict):
        first = first.get("check")
    if not isinstance(first, str):
        first = f"status {response.status_code}"
    return HealthReading(DEGRADED if response.status_code == 503 else DOWN, first)
