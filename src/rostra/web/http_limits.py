"""The listener side's HTTP bounds: a deadline for each request's headers (slowloris, half-open
connections that never send one), on top of uvicorn's connection limit and keep-alive timeout.

Web plane. uvicorn bounds idle keep-alive connections but not a request that trickles in, nor a
connection that never speaks; this protocol closes both after `header_timeout_s`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


class BoundedHttpProtocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        log.info("request headers too slow; connection closed", extra={"client": self.client})
        if not self.transport.is_closing():
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            self.transport.close()


def bounded_protocol(header_timeout_s: float) -> type[BoundedHttpProtocol]:
    return type(
        "BoundedHttpProtocol", (BoundedHttpProtocol,), {"header_timeout_s": header_timeout_s}
    )
