"""Memory dumps on SIGUSR2: what grew between two dumps, by allocation site, and a listener worker
of a real `rostra serve` that writes them into its run folder and keeps serving."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from rostra.web.memory_diagnostics import MemoryDumps
from tests.conftest import Server, start_server, stop_server

DUMP_WAIT_S = 10.0
GROWTH_BLOCKS = 4_000
GROWTH_BLOCK_BYTES = 1_000
CONCURRENT_PLAYERS = 60
LOAD_S = 4.0
SEGMENTS_WAIT_S = 15.0
MAX_WORKER_ARENAS = 2


@pytest.fixture
def untraced() -> Iterator[None]:
    was_tracing = tracemalloc.is_tracing()
    yield
    if not was_tracing:
        tracemalloc.stop()


def _grow() -> list[bytearray]:
    return [bytearray(GROWTH_BLOCK_BYTES) for _ in range(GROWTH_BLOCKS)]


@pytest.mark.usefixtures("untraced")
def test_dump_names_the_site_that_grew_since_the_previous_dump(tmp_path: Path) -> None:
    dumps = MemoryDumps(tmp_path)
    first = dumps.dump()
    kept = _grow()
    second = dumps.dump()

    assert "tracing started" in first.read_text()
    text = second.read_text()
    sites = text.split("Python allocation sites", 1)[1].splitlines()[1:]
    top = sites[0]
    assert f"{Path(__file__).name}:" in top, text
    grown = re.search(r"\(\+(\d+) KiB\), count=\d+ \(\+(\d+)\)", top)
    assert grown is not None, top
    assert int(grown[1]) >= GROWTH_BLOCKS * GROWTH_BLOCK_BYTES // 1024, top
    assert int(grown[2]) >= GROWTH_BLOCKS, top
    for figure in ("rss_bytes", "heap_in_use_bytes", "sqlite_bytes", "traced_python_bytes"):
        assert figure in text
    assert len(kept) == GROWTH_BLOCKS


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("memory") / "data")
    yield running
    stop_server(running)


def _listener_workers(server: Server) -> list[int]:
    workers = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = next(line.split()[1] for line in text.splitlines() if line.startswith("PPid:"))
        if int(ppid) == server.process.pid and "rostra.web.processes worker" in cmdline:
            workers.append(int(status.parent.name))
    return sorted(workers)


def _dump(server: Server, pid: int) -> str:
    """SIGUSR2 to the worker, and the text of the dump it writes."""
    run_dir = server.data / "run"
    before = set(run_dir.glob(f"memory-{pid}-*.txt"))
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + DUMP_WAIT_S
    while time.monotonic() < deadline:
        for path in set(run_dir.glob(f"memory-{pid}-*.txt")) - before:
            text = path.read_text()
            if text.endswith("\n"):
                return text
        time.sleep(0.1)
    raise AssertionError(f"worker {pid} wrote no memory dump")


def _figure(text: str, name: str) -> int:
    found = re.search(rf"^{name} +(\d+) ", text, re.MULTILINE)
    assert found is not None, text
    return int(found[1])


def test_listener_worker_writes_memory_dumps_on_sigusr2_and_keeps_serving(
    module_server: Server,
) -> None:
    workers = _listener_workers(module_server)
    assert len(workers) == 2, workers
    space = module_server.create_space("Memory dumps")

    first = {pid: _dump(module_server, pid) for pid in workers}
    for _ in range(50):
        assert httpx.get(space["state_url"], timeout=5).status_code == 200
    second = {pid: _dump(module_server, pid) for pid in workers}

    for pid in workers:
        assert "tracing started" in first[pid] or "Python allocation sites" in first[pid]
        assert "Python allocation sites" in second[pid]
        assert "rss_bytes" in second[pid]
    assert _listener_workers(module_server) == workers
    assert httpx.get(module_server.url + "/healthz", timeout=5).status_code == 200


async def _fetch_media(playlist_url: str, seconds: float) -> int:
    """Players fetching the playlist, the init segment and every segment, all at once."""
    fetched = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=CONCURRENT_PLAYERS)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:

        async def player() -> None:
            nonlocal fetched
            while time.monotonic() < deadline:
                playlist = await client.get(playlist_url)
                names = re.findall(r'^(seg_\d+\.m4s)$|URI="(init\.mp4)"', playlist.text, re.M)
                for name in (a or b for a, b in names):
                    segment = await client.get(urljoin(playlist_url, name))
                    fetched += segment.status_code == 200

        await asyncio.gather(*(player() for _ in range(CONCURRENT_PLAYERS)))
    return fetched


def test_listener_worker_threads_share_two_malloc_arenas_under_load(
    module_server: Server,
) -> None:
    space = module_server.create_space("Malloc arenas")
    playlist_url = space["hls_url"].replace("index.m3u8", "audio.m3u8")
    deadline = time.monotonic() + SEGMENTS_WAIT_S
    while "seg_" not in httpx.get(playlist_url, timeout=5).text:
        assert time.monotonic() < deadline, "the space made no segment"
        time.sleep(0.2)

    fetched = asyncio.run(_fetch_media(playlist_url, LOAD_S))

    assert fetched > CONCURRENT_PLAYERS
    for pid in _listener_workers(module_server):
        dump = _dump(module_server, pid)
        assert _figure(dump, "threads") > MAX_WORKER_ARENAS, dump  # the load made threads
        assert 1 <= _figure(dump, "malloc_arenas") <= MAX_WORKER_ARENAS, dump
