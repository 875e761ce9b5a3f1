"""The Rostra paths bench/peers.py measures beside the direct ones: LL-HLS through `rostra edge`
(nginx or Varnish in front of the origin), and plain players on an Icecast relay that relays the
master Icecast Rostra feeds (`rostra serve --icecast`, docs/relays.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import harness  # noqa: F401  (puts the repository on sys.path, for the tests' helpers)
from rostra.audience.icecast_count import parse_status

# isort: split
from tests.conftest import free_port
from tests.e2e.conftest import Edge, start_edge, stop_edge
from tests.icecast_server import IcecastServer, running_icecast

ENGINES = ("nginx", "varnish")
MOUNTS_TIMEOUT_S = 30.0


async def wait_mounts(url: str, mounts: set[str]) -> None:
    """Until Icecast at `url` lists every mount (its status is not JSON for a moment at start)."""
    deadline = time.monotonic() + MOUNTS_TIMEOUT_S
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                body = (await client.get(url + "/status-json.xsl")).content
                if mounts <= set(parse_status(body)):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"mounts {mounts} not on {url}")
            await asyncio.sleep(0.25)


def space_mounts(space: dict[str, Any]) -> list[str]:
    """The mounts `rostra serve --icecast` feeds for a space."""
    return [f"/{space['id']}.aac", f"/{space['id']}.opus"]


@dataclass(slots=True)
class RelayChain:
    """A master Icecast, started before Rostra so that Rostra feeds it, and the port its relay
    will take once the space's mounts exist."""

    master: IcecastServer
    relay_port: int
    clients: int

    def server_env(self) -> dict[str, str]:
        """What `rostra serve` needs to feed the master and count the relay's players."""
        return {
            "ROSTRA_ICECAST": self.master.source_url,
            "ROSTRA_ICECAST_RELAYS": f"http://127.0.0.1:{self.relay_port}",
        }


@contextlib.contextmanager
def running_master(clients: int) -> Iterator[RelayChain]:
    with running_icecast(clients=clients) as master:
        yield RelayChain(master=master, relay_port=free_port(), clients=clients)


@contextlib.asynccontextmanager
async def running_relay(chain: RelayChain, space: dict[str, Any]) -> AsyncIterator[IcecastServer]:
    """A relay Icecast (on-demand 0, burst 0) of the space's two mounts on the master."""
    mounts = space_mounts(space)
    await wait_mounts(chain.master.url, set(mounts))
    with running_icecast(
        relay_of=(chain.master.port, mounts), port=chain.relay_port, clients=chain.clients
    ) as relay:
        await wait_mounts(relay.url, set(mounts))
        yield relay


@contextlib.contextmanager
def running_edges(server: Any, engines: tuple[str, ...], folder: Path) -> Iterator[dict[str, Edge]]:
    """One `rostra edge` per engine in front of `server`, each stopped on the way out."""
    whip_origin = f"http://127.0.0.1:{server.whip_port}"
    with contextlib.ExitStack() as stack:
        edges: dict[str, Edge] = {}
        for engine in engines:
            edge = start_edge(server.url, whip_origin, free_port(), folder / engine, engine)
            stack.callback(stop_edge, edge)
            edges[engine] = edge
        yield edges


def through(url: str, server: Any, edge: Edge) -> str:
    """The same URL fetched through the edge instead of straight from the origin."""
    return str(url).replace(server.url, edge.url)
