"""One way to open Redis for every Redis adapter: short timeouts, one immediate reconnect.

Storage plane.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

SOCKET_TIMEOUT_S = 0.5


def connect(
    url: str, *, socket_timeout_s: float = SOCKET_TIMEOUT_S, decode_responses: bool = False
) -> redis.Redis:
    """One immediate retry, on connection errors only, replaces a pooled connection that died
    with a Redis restart; a hung Redis costs one socket timeout, and longer outages are the
    caller's to ride out (a stale count, a 503)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        decode_responses=decode_responses,
    )
