"""Writes are never cached: every answer to a method other than GET or HEAD says `no-store`, so
no edge or CDN keeps a ticket, a join or a WHIP answer, whatever its own defaults.

Web plane. A pure ASGI middleware: it touches only the response's start message.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

READ_METHODS = frozenset({"GET", "HEAD"})
CACHE_CONTROL = b"cache-control"
NO_STORE = b"no-store"


class NoStoreWrites:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READ_METHODS:
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != CACHE_CONTROL]
                message["headers"] = [*headers, (CACHE_CONTROL, NO_STORE)]
            await send(message)

        await self.app(scope, receive, send_no_store)
