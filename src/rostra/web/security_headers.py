"""Headers that keep the pages safe in a browser: a Content-Security-Policy that allows only this
deployment's own scripts, styles and media, no framing, no MIME sniffing, and no Referer (invite
and host tokens live in page URLs).

Web plane. A pure ASGI middleware: it touches only the response's start message, and leaves a
header a route set itself (the API explorer's own policy) as it is.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = b"content-security-policy"
NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_REFERRER = (b"referrer-policy", b"no-referrer")


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an absolute http(s) URL, else None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(*, public_url: str, whip_base_url: str) -> str:
    """The pages' policy. Media may come from the public URL (an edge) as well as from here;
    speakers publish to the WHIP base (its own port); hls.js runs its worker from a blob."""
    public = origin_of(public_url)
    whip = origin_of(whip_base_url)
    media = " ".join(dict.fromkeys(o for o in ("'self'", public) if o))
    connect = " ".join(dict.fromkeys(o for o in ("'self'", public, whip) if o))
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "worker-src 'self' blob:",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"media-src {media} blob:",
            f"connect-src {connect}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    """nosniff, no Referer and the policy on every response (a JSON or media answer opened in a
    tab is a document too); a response's own policy wins."""

    def __init__(self, app: ASGIApp, *, policy: str | None = None) -> None:
        self.app = app
        self._policy = policy.encode() if policy else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {key.lower() for key, _ in headers}
                for key, value in (NOSNIFF, NO_REFERRER):
                    if key not in present:
                        headers.append((key, value))
                if self._policy is not None and CSP not in present:
                    headers.append((CSP, self._policy))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
