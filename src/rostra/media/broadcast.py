"""Progressive-stream fan-out: one encoded byte stream, many listeners, each with a bounded queue.

Media plane, asyncio side. A listener too slow to keep up is dropped, never waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

LISTENER_QUEUE_CHUNKS = 256


class Broadcast:
    def __init__(self, header: bytes = b"") -> None:
        self._header = header
        self._listeners: set[asyncio.Queue[bytes | None]] = set()
        self._is_closed = False

    @property
    def listener_count(self) -> int:
        return len(self._listeners)

    @property
    def header(self) -> bytes:
        """What each new listener gets first (the Ogg headers); empty for ADTS."""
        return self._header

    @property
    def is_closed(self) -> bool:
        return self._is_closed

    def set_header(self, header: bytes) -> None:
        self._header = header

    def publish(self, chunk: bytes) -> None:
        """Called on the event loop (via call_soon_threadsafe from the encoder thread)."""
        for queue in list(self._listeners):
            if queue.full():
                self._listeners.discard(queue)
                queue.get_nowait()
                queue.put_nowait(None)
                continue
            queue.put_nowait(chunk)

    def close(self) -> None:
        self._is_closed = True
        for queue in list(self._listeners):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
        self._listeners.clear()

    async def listen(self, *, with_header: bool = True) -> AsyncIterator[bytes]:
        if self._is_closed:
            return
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=LISTENER_QUEUE_CHUNKS)
        self._listeners.add(queue)
        try:
            if self._header and with_header:
                yield self._header
            while True:
                chunk = await queue.get()
                if chunk is None:
                    return
                yield chunk
        finally:
            self._listeners.discard(queue)
