"""The Icecast part of the honest count: listeners of each space's mounts (`/ID.aac`, `/ID.opus`)
on the Icecast server Rostra feeds and on its relays, read from their `/status-json.xsl`.

Audience plane. These are connections, not people: one player is one connection, a player that
reconnects may briefly be two. A relay is itself one listener of the server it relays: each relay
whose status lists a mount takes one off that mount's figure, so its players are counted once.
Polled every few seconds, each answer bounded; a server that does not answer counts nothing (its
last figures are dropped, not kept) and is logged once until it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 3.0
POLL_TIMEOUT_S = 2.0
MAX_STATUS_BYTES = 1024 * 1024
MAX_MOUNTS = 10_000
MAX_LISTENERS = 10_000_000  # a figure above this on one mount is not a count: skipped
STATUS_PATH = "/status-json.xsl"
KINDS = ("aac", "opus")


def parse_status(body: bytes) -> dict[str, int]:
    """Listeners per mount path from Icecast 2.4's status JSON (`source` is one object or a list;
    absent when no source is connected). Malformed entries are skipped."""
    document = json.loads(body)
    stats = document.get("icestats") if isinstance(document, dict) else None
    sources: Any = stats.get("source", []) if isinstance(stats, dict) else []
    if isinstance(sources, dict):
        sources = [sources]
    counts: dict[str, int] = {}
    for source in sources[:MAX_MOUNTS] if isinstance(sources, list) else []:
        if not isinstance(source, dict):
            continue
        path = urlsplit(str(source.get("listenurl", ""))).path
        listeners = source.get("listeners", 0)
        if path and type(listeners) is int and 0 <= listeners <= MAX_LISTENERS:
            counts[path] = counts.get(path, 0) + listeners
    return counts


def combine(master: Mapping[str, int], relays: Sequence[Mapping[str, int]]) -> dict[str, int]:
    """Players per mount across the master and its relays, each relay's own connection taken off."""
    totals = dict(master)
    for relay in relays:
        for path, listeners in relay.items():
            totals[path] = totals.get(path, 0) + listeners - 1
    return {path: max(0, listeners) for path, listeners in totals.items()}


class IcecastCount:
    """The latest figures; `run()` refreshes them until cancelled."""

    def __init__(self, master_url: str, relay_urls: Sequence[str] = ()) -> None:
        self._master = master_url.rstrip("/") + STATUS_PATH
        self._relays = [url.rstrip("/") + STATUS_PATH for url in relay_urls]
        self._counts: dict[str, int] = {}
        self._is_down: dict[str, bool] = {}

    def listeners(self, space_id: str) -> int:
        return sum(self._counts.get(f"/{space_id}.{kind}", 0) for kind in KINDS)

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=POLL_TIMEOUT_S) as client:
            while True:
                await self.poll(client)
                await asyncio.sleep(POLL_INTERVAL_S)

    async def poll(self, client: httpx.AsyncClient) -> None:
        figures = await asyncio.gather(
            *(self._read(client, url) for url in [self._master, *self._relays])
        )
        self._counts = combine(figures[0], figures[1:])

    async def _read(self, client: httpx.AsyncClient, url: str) -> dict[str, int]:
        try:
            # the whole answer within the timeout: httpx's own applies to each read, which a
            # status trickled a byte at a time would never hit
            async with asyncio.timeout(POLL_TIMEOUT_S), client.stream("GET", url) as response:
                response.raise_for_status()
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_STATUS_BYTES:
                        raise ValueError(f"status larger than {MAX_STATUS_BYTES} bytes")
            counts = parse_status(bytes(body))
        except TimeoutError:
            return self._unreadable(url, f"no whole answer within {POLL_TIMEOUT_S} s")
        except (httpx.HTTPError, ValueError, AttributeError, RecursionError) as error:
            # RecursionError: JSON nested deeper than the parser goes
            return self._unreadable(url, f"{type(error).__name__}: {error}")
        with contextlib.suppress(KeyError):
            if self._is_down.pop(url):
                log.info("icecast status readable again", extra={"url": url})
        return counts

    def _unreadable(self, url: str, error: str) -> dict[str, int]:
        if not self._is_down.get(url):
            log.warning(
                "icecast status unreadable: its listeners are not counted until it answers",
                extra={"url": url, "error": error[:200]},
            )
        self._is_down[url] = True
        return {}
