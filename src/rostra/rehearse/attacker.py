"""The attacker of a rehearsal: forged and replayed tickets, junk joins, random paths, oversized
bodies and slow connections, in turn, recording what each got back (`<kind>:<status>`).

Rehearsal plane (a client); imports Locust (gevent): only the rehearsal's processes load it.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any
from urllib.parse import urlparse

import gevent
from gevent import socket
from locust import task

from rostra.rehearse.user_base import AudienceUser, bearer
from rostra.rehearse.user_calls import TRANSPORT, note_status

OVERSIZED_BODY_BYTES = 64 * 1024
# a ticket given back is replayed this long after: time for every worker to learn of the leave
REPLAY_AFTER_S = 2.0
SLOW_STEP_S = 0.5
ATTACKS = (
    "forged-ticket",
    "junk-join",
    "unknown-space",
    "random-path",
    "oversized-body",
    "replayed-ticket",
    "slow-connection",
)


class Attacker(AudienceUser):
    """Each step makes the next attack of ATTACKS, one every `attack_interval_s`. An attacker
    holds one genuine ticket (joined, given back, replayed): `give-back:204` in its outcomes
    marks the one listener it adds to the count's window."""

    abstract = False

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._turn = 0
        self._given_back: tuple[float, str] | None = None  # (left at, ticket)

    @task
    def attack(self) -> None:
        self.begin_step()
        kind = ATTACKS[self._turn % len(ATTACKS)]
        self._turn += 1
        outcome = getattr(self, "_" + kind.replace("-", "_"))()
        if outcome is not None:
            note_status(self.second().attacks, kind, outcome)
        self._due_s = time.time() + self.settings.attack_interval_s

    def _forged_ticket(self) -> int:
        forged = ".".join(_random_text(n) for n in (8, 24, 32))
        return self.call(
            "POST", f"{self.base}/heartbeat", "attack", headers=bearer(forged), data=b""
        ).status_code

    def _junk_join(self) -> int:
        return self.call(
            "POST",
            f"{self.base}/join",
            "attack",
            data=b'{"altcha": [[[',
            headers={"Content-Type": "application/json"},
        ).status_code

    def _unknown_space(self) -> int:
        return self.call("POST", f"/api/v1/spaces/{_random_text(12)}/join", "attack").status_code

    def _random_path(self) -> int:
        return self.call("GET", f"/{_random_text(10)}/{_random_text(6)}", "attack").status_code

    def _oversized_body(self) -> int:
        body = b'{"altcha": "' + b"A" * OVERSIZED_BODY_BYTES + b'"}'
        return self.call(
            "POST",
            f"{self.base}/join",
            "attack",
            data=body,
            headers={"Content-Type": "application/json"},
        ).status_code

    def _replayed_ticket(self) -> int | None:
        """A genuine ticket, given back once (a join and a leave: one listener more in the
        count's window), then replayed on every turn from REPLAY_AFTER_S after the leave."""
        if self._given_back is None:
            joined = self.call("POST", f"{self.base}/join", "attack setup")
            if joined.status_code != 201:
                return None
            ticket = str(joined.json()["ticket"])
            left = self.call(
                "POST", f"{self.base}/leave", "attack setup", headers=bearer(ticket), data=b""
            )
            # the count holds this listener for its window: the truth check allows for it
            note_status(self.second().attacks, "give-back", left.status_code)
            self._given_back = (time.time(), ticket)
        left_at_s, ticket = self._given_back
        if time.time() - left_at_s < REPLAY_AFTER_S:
            return None
        return self.call(
            "POST", f"{self.base}/heartbeat", "attack", headers=bearer(ticket), data=b""
        ).status_code

    def _slow_connection(self) -> int:
        """Request headers dribbled for `slow_send_s`, then finished: the status, or 0 when the
        server closed the connection first (recorded as `transport`)."""
        target = urlparse(self.host or "")
        address = (target.hostname or "127.0.0.1", target.port or 80)
        try:
            with socket.create_connection(address, timeout=self.settings.timeout_s) as conn:
                conn.sendall(f"GET {self.media_base}state.json HTTP/1.1\r\n".encode())
                deadline_s = time.time() + self.settings.slow_send_s
                while time.time() < deadline_s:
                    conn.sendall(f"X-Slow-{_random_text(4)}: 1\r\n".encode())
                    gevent.sleep(SLOW_STEP_S)
                conn.sendall(f"Host: {address[0]}\r\nConnection: close\r\n\r\n".encode())
                head = conn.recv(64)
        except OSError:
            return 0
        return _status_of(head)


def _status_of(head: bytes) -> int:
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return 0
    return int(parts[1])


def _random_text(length: int) -> str:
    return base64.urlsafe_b64encode(os.urandom(length)).decode()[:length]


__all__ = ["ATTACKS", "TRANSPORT", "Attacker"]
