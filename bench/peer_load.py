"""Many listeners against one server, for the CPU and bytes each costs: progressive readers (one
HTTP connection each, reading the stream as it comes) or HLS pollers (a kept-alive connection
each, fetching the media playlist once per target duration and every new segment once).

The listeners run in separate processes (this file, run as a script), so a client is not the
bottleneck; each process connects its share, prints "ready", counts bytes (headers included)
from "go" on its stdin to "stop", then prints its figures as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

CONNECT_CONCURRENCY = 50
IO_TIMEOUT_S = 10.0
READ_BYTES = 65_536
TARGET_DURATION_RE = re.compile(r"#EXT-X-TARGETDURATION:(\d+(?:\.\d+)?)")
MAP_RE = re.compile(r'#EXT-X-MAP:URI="([^"]+)"')


@dataclass(slots=True)
class Tally:
    is_counting: bool = False
    bytes_in: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    connected: int = 0

    def add(self, count: int) -> None:
        if self.is_counting:
            self.bytes_in += count


def _request(url: str) -> bytes:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return (
        f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: peers-bench\r\n\r\n".encode()
    )


async def _open(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    return await asyncio.wait_for(
        asyncio.open_connection(parts.hostname, parts.port or 80), IO_TIMEOUT_S
    )


async def progressive(url: str, tally: Tally, gate: asyncio.Semaphore, stop: asyncio.Event) -> None:
    try:
        await _progressive(url, tally, gate, stop)
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
        tally.errors.append(f"{type(error).__name__}: {error}")


async def _progressive(
    url: str, tally: Tally, gate: asyncio.Semaphore, stop: asyncio.Event
) -> None:
    async with gate:
        reader, writer = await _open(url)
        writer.write(_request(url))
        first = await asyncio.wait_for(reader.read(READ_BYTES), IO_TIMEOUT_S)
    if not first.startswith(b"HTTP/1.") or b" 200" not in first[:16]:
        tally.errors.append(first[:80].decode(errors="replace"))
        writer.close()
        return
    tally.connected += 1
    try:
        while not stop.is_set():
            data = await asyncio.wait_for(reader.read(READ_BYTES), IO_TIMEOUT_S)
            if not data:
                tally.errors.append("the server closed the stream")
                return
            tally.add(len(data))
    finally:
        writer.close()


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, url: str, tally: Tally
) -> bytes:
    """One request on a kept-alive connection: Content-Length or chunked bodies."""
    writer.write(_request(url))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT_S)
    tally.add(len(head))
    tally.requests += tally.is_counting
    headers = head.decode("latin-1").lower()
    if not headers.startswith("http/1.1 200"):
        raise ConnectionError(headers.split("\r\n", 1)[0])
    length = re.search(r"\r\ncontent-length:\s*(\d+)", headers)
    if length:
        body = await asyncio.wait_for(reader.readexactly(int(length.group(1))), IO_TIMEOUT_S)
        tally.add(len(body))
        return body
    chunks = bytearray()
    while True:
        size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), IO_TIMEOUT_S)
        size = int(size_line.split(b";")[0], 16)
        chunk = await asyncio.wait_for(reader.readexactly(size + 2), IO_TIMEOUT_S)
        tally.add(len(size_line) + len(chunk))
        if size == 0:
            return bytes(chunks)
        chunks += chunk[:-2]


async def hls(
    url: str, tally: Tally, gate: asyncio.Semaphore, stop: asyncio.Event, offset_s: float
) -> None:
    try:
        await _hls(url, tally, gate, stop, offset_s)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
        tally.errors.append(f"{type(error).__name__}: {error}")


async def _hls(
    url: str, tally: Tally, gate: asyncio.Semaphore, stop: asyncio.Event, offset_s: float
) -> None:
    await asyncio.sleep(offset_s)
    async with gate:
        reader, writer = await _open(url)
    tally.connected += 1
    seen: set[str] = set()
    is_first = True
    try:
        while not stop.is_set():
            started = time.monotonic()
            text = (await _get(reader, writer, url, tally)).decode()
            uris = [urljoin(url, line) for line in text.splitlines() if line and line[0] != "#"]
            maps = [urljoin(url, uri) for uri in MAP_RE.findall(text)]
            if is_first:  # join at the live edge: the last segment only
                seen.update(uris[:-1])
                is_first = False
            for uri in [*maps, *uris]:
                if uri not in seen:
                    seen.add(uri)
                    await _get(reader, writer, uri, tally)
            target = TARGET_DURATION_RE.search(text)
            period_s = float(target.group(1)) if target else 1.0
            await asyncio.sleep(max(0.0, period_s - (time.monotonic() - started)))
    finally:
        writer.close()


async def _commands(stop: asyncio.Event, tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() == "go":
            tally.is_counting = True
        if line.strip() in ("stop", ""):
            tally.is_counting = False
            stop.set()
            return


async def run(kind: str, url: str, count: int, ready_s: float) -> dict[str, object]:
    tally, stop, gate = Tally(), asyncio.Event(), asyncio.Semaphore(CONNECT_CONCURRENCY)
    tasks = []
    for index in range(count):
        if kind == "progressive":
            tasks.append(asyncio.ensure_future(progressive(url, tally, gate, stop)))
        else:
            offset_s = ready_s * index / max(1, count)
            tasks.append(asyncio.ensure_future(hls(url, tally, gate, stop, offset_s)))
    commands = asyncio.ensure_future(_commands(stop, tally))
    deadline = time.monotonic() + ready_s + IO_TIMEOUT_S
    settled = tally.connected + len(tally.errors)
    while settled < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        settled = tally.connected + len(tally.errors)
    print("ready", flush=True)
    cpu_at_go: float | None = None
    while not stop.is_set():
        if tally.is_counting and cpu_at_go is None:
            cpu_at_go = time.process_time()
        await asyncio.sleep(0.05)
    cpu_s = time.process_time() - (cpu_at_go or time.process_time())
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [r for r in results if isinstance(r, Exception | BaseException)]
    errors = tally.errors + [
        f"{type(r).__name__}: {r}" for r in failures if not isinstance(r, asyncio.CancelledError)
    ]
    with contextlib.suppress(asyncio.CancelledError):
        await commands
    return {
        "listeners": count,
        "connected": tally.connected,
        "bytes": tally.bytes_in,
        "requests": tally.requests,
        "client_cpu_s": round(cpu_s, 3),
        "errors": len(errors),
        "first_errors": errors[:3],
    }


def main() -> None:
    kind, url, count, ready_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    result = asyncio.run(run(kind, url, count, ready_s))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
