"""HTTP framing for Icecast sources on the origin's port.

Web plane (origin process). Icecast source clients (ffmpeg's `icecast://`, libshout, butt,
Liquidsoap) send `PUT` or `SOURCE /mount` with neither `Content-Length` nor chunked encoding: the
body is everything until the connection closes. HTTP/1.1 parsers read such a request as bodiless
and the audio after it as a malformed next request. This protocol wraps uvicorn's: for a `PUT` or
`SOURCE` to `/ingest/` without a length it marks the request chunked and wraps every later read
in a chunk, so the route reads the audio as an ordinary streamed body. A legacy `SOURCE` without
`Expect: 100-continue` waits for `HTTP/1.0 200 OK` before it sends audio: it is given that when
the route starts reading. Every other request passes through unchanged. A connection whose
first request head is not complete within HEAD_TIMEOUT_S (a slow-headers attack) is closed, with
a 408 when it had begun one.
"""

from __future__ import annotations

import asyncio
from enum import Enum, auto
from typing import Any, cast

from uvicorn.protocols.http.auto import AutoHTTPProtocol

INGEST_PREFIX = b"/ingest/"
SOURCE_METHODS = (b"PUT", b"SOURCE")
# a request head longer than this is not looked into: uvicorn's parser refuses it
MAX_HEAD_BYTES = 16 * 1024
HEAD_END = b"\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LEGACY_OK = b"HTTP/1.0 200 OK\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"
# a client sends its request head in one go: uvicorn itself waits for it without a limit
HEAD_TIMEOUT_S = 10.0
HEAD_TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class _Mode(Enum):
    UNDECIDED = auto()
    PASS = auto()
    UNTIL_CLOSE = auto()


class _Transport:
    """The real transport, except that a legacy source's `100 Continue` reads `200 OK`."""

    def __init__(self, inner: asyncio.Transport) -> None:
        self._inner = inner
        self.is_legacy_source = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.is_legacy_source and bytes(data) == CONTINUE:
            data = LEGACY_OK
        self._inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _reframe(head: bytes) -> tuple[bytes, bool] | None:
    """The head marked chunked, and whether the client is a legacy source waiting for `200 OK`;
    None when the request is not a lengthless source request."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] not in SOURCE_METHODS or not parts[1].startswith(INGEST_PREFIX):
        return None
    names = {line.split(b":", 1)[0].strip().lower() for line in lines[1:] if b":" in line}
    if b"content-length" in names or b"transfer-encoding" in names:
        return None
    is_legacy = b"expect" not in names
    first = b" ".join((parts[0], parts[1], b"HTTP/1.1"))
    extra = [b"Transfer-Encoding: chunked"] + ([b"Expect: 100-continue"] if is_legacy else [])
    return b"\r\n".join([first, *lines[1:], *extra]) + HEAD_END, is_legacy


class IcecastFraming(asyncio.Protocol):
    """uvicorn's HTTP protocol with Icecast sources' bodies framed; give it as `http=`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._inner: asyncio.Protocol = AutoHTTPProtocol(*args, **kwargs)
        self._mode = _Mode.UNDECIDED
        self._head = b""
        self._transport: _Transport | None = None
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = _Transport(cast(asyncio.Transport, transport))
        self._inner.connection_made(cast(asyncio.Transport, self._transport))
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(HEAD_TIMEOUT_S, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._inner.connection_lost(exc)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._mode is _Mode.UNDECIDED and self._transport is not None:
            if self._head:  # an idle connection (a browser's preconnect) is closed quietly
                self._transport.write(HEAD_TIMED_OUT)
            self._transport.close()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def eof_received(self) -> bool | None:
        if self._mode is _Mode.UNTIL_CLOSE:
            # the source closed its side: that is the end of its body; the connection stays
            # open for the answer, so the audio still buffered is read first
            self._inner.data_received(LAST_CHUNK)
            return True
        return self._inner.eof_received()

    def data_received(self, data: bytes) -> None:
        if self._mode is _Mode.PASS:
            self._inner.data_received(data)
        elif self._mode is _Mode.UNTIL_CLOSE:
            if data:
                self._inner.data_received(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            self._decide(data)

    def _decide(self, data: bytes) -> None:
        self._head += data
        end = self._head.find(HEAD_END)
        if end < 0 and len(self._head) <= MAX_HEAD_BYTES:
            return
        self._stop_head_timer()
        buffered, self._head = self._head, b""
        reframed = _reframe(buffered[:end]) if end >= 0 else None
        if reframed is None:
            self._mode = _Mode.PASS
            self._inner.data_received(buffered)
            return
        head, is_legacy = reframed
        if self._transport is not None:
            self._transport.is_legacy_source = is_legacy
        self._mode = _Mode.UNTIL_CLOSE
        self._inner.data_received(head)
        self.data_received(buffered[end + len(HEAD_END) :])
