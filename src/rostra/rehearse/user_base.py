"""The base of every simulated user: steps due at times of its choosing, requests that note a
server error, and the process's `AudienceRun` at hand.

Rehearsal plane (a client); imports Locust (gevent): only the rehearsal's processes load it.
"""

from __future__ import annotations

import time
from typing import Any

from locust import FastHttpUser
from locust.contrib.fasthttp import FastResponse

from rostra.rehearse.audience_run import AudienceRun, AudienceSettings
from rostra.rehearse.locust_wiring import run_of
from rostra.rehearse.observations import Second

ERROR_RETRY_S = 2.0
# the answers whose sizes the capacity plan reads (report.json `unit_costs`)
MEASURED_TRANSFERS = frozenset({"playlist", "segment"})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class AudienceUser(FastHttpUser):
    """A user whose work is a sequence of steps, each due at a time of its choosing: the wait
    between steps is until the next one is due, and a step that starts late by more than
    `behind_s` is counted as the generator's fault."""

    abstract = True
    connection_timeout = 10.0
    network_timeout = 10.0
    # a leave on stop needs a connection of its own when the user was stopped mid-request
    concurrency = 2

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.audience: AudienceRun = run_of(environment)
        self.settings: AudienceSettings = self.audience.settings
        self.base = f"/api/v1/spaces/{self.settings.space_id}"
        self.media_base = f"/live/{self.settings.space_id}/"
        self._due_s = self._wake_s = time.time()

    def wait_time(self) -> float:
        now_s = time.time()
        # the wake-up expected of the scheduler: a step that ran past its successor's due time
        # (a slow answer) is the server's doing, so only lateness after this counts
        self._wake_s = max(self._due_s, now_s)
        return self._wake_s - now_s

    def second(self) -> Second:
        return self.audience.observations.at(time.time())

    def begin_step(self) -> float:
        """Notes the step (and whether the generator woke it late); returns the time."""
        now_s = time.time()
        second = self.audience.observations.at(now_s)
        second.steps += 1
        if now_s - self._wake_s > self.settings.behind_s:
            second.behind += 1
        return now_s

    def call(self, method: str, path: str, name: str, **kwargs: Any) -> FastResponse:
        response: FastResponse = self.client.request(method, path, name=name, **kwargs)
        status = response.status_code
        if status >= 500 and status != 503:
            self.second().server_errors[f"{name}:{status}"] += 1
        elif status == 200 and name in MEASURED_TRANSFERS:
            transfer = self.second().transfer
            transfer[f"{name}:count"] += 1
            transfer[f"{name}:body"] += len(response.content or b"")
            transfer[f"{name}:head"] += head_bytes(response)
        return response


def head_bytes(response: FastResponse) -> int:
    """The status line and header fields as they came over the wire (HTTP/1.1 framing)."""
    headers = response.headers
    pairs = headers.items() if headers is not None else []
    fields = sum(len(str(key)) + len(str(value)) + len(": \r\n") for key, value in pairs)
    return len(f"HTTP/1.1 {response.status_code} OK\r\n") + fields + len("\r\n")
