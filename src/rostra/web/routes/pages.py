"""The pages: listener, host and speaker, plain HTML/CSS/JS with hls.js; and their static files.

Web plane. Pages read the space id from their path and any token from their query string.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse, Response

from rostra.errors import MediaNotFound
from rostra.web.reads import read_route
from rostra.web.services import Services

router = APIRouter(include_in_schema=False)
read = read_route(router)

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,60}\.(js|css|svg|png|ico)$")
VENDOR_FILES = {
    "hls.min.js": Path("hls.js/dist/hls.min.js"),
    # ALTCHA's SHA solver, a classic Web Worker script (the listener page's proof-of-work)
    "altcha-sha-worker.js": Path("altcha/dist/workers/sha.js"),
    "swagger-ui-bundle.js": Path("swagger-ui-dist/swagger-ui-bundle.js"),
    "swagger-ui.css": Path("swagger-ui-dist/swagger-ui.css"),
}
# pages change with a release only: an edge may keep them briefly, and refresh them in the
# background for a minute after
PAGE_CACHE = "public, max-age=10, stale-while-revalidate=60"
CHARSET_META = '<meta charset="utf-8">'

STATIC_CACHE = "public, max-age=300, stale-while-revalidate=300"
MEDIA_TYPES = {
    "js": "text/javascript",
    "css": "text/css",
    "svg": "image/svg+xml",
    "png": "image/png",
    "ico": "image/x-icon",
}


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def find_vendor(relative: Path, start: Path | None = None) -> Path | None:
    """Front-end packages come from npm at install time: find node_modules beside the project."""
    candidates = [Path.cwd(), Path(__file__).resolve()]
    if start is not None:
        candidates.insert(0, start)
    for base in candidates:
        for folder in [base, *base.parents]:
            path = folder / "node_modules" / relative
            if path.is_file():
                return path
    return None


def _page(name: str, request: Request) -> HTMLResponse:
    """The page, told where speakers publish: the origin's WHIP endpoint, not this worker."""
    whip_base = html.escape(_services(request).settings.whip_base_url, quote=True)
    text = (
        (PAGES_DIR / name)
        .read_text()
        .replace(
            CHARSET_META,
            f'{CHARSET_META}\n  <meta name="rostra-whip-base" content="{whip_base}">',
            1,
        )
    )
    return HTMLResponse(text, headers={"Cache-Control": PAGE_CACHE})


@read("/")
async def home(request: Request) -> HTMLResponse:
    return _page("index.html", request)


@read("/listen/{space_id}")
async def listen_page(space_id: str, request: Request) -> HTMLResponse:
    _services(request).spaces.get(space_id)
    return _page("listen.html", request)


@read("/host/{space_id}")
async def host_page(space_id: str, request: Request) -> HTMLResponse:
    _services(request).spaces.get(space_id)
    return _page("host.html", request)


@read("/speak/{space_id}")
async def speak_page(space_id: str, request: Request) -> HTMLResponse:
    _services(request).spaces.get(space_id)
    return _page("speak.html", request)


@read("/static/vendor/{name}")
async def vendor(name: str, request: Request) -> Response:
    relative = VENDOR_FILES.get(name)
    path = find_vendor(relative, request.app.state.services.settings.data) if relative else None
    if path is None:
        raise MediaNotFound(f"no vendor file '{name[:80]}': run 'make install' (npm ci)")
    media_type = MEDIA_TYPES[name.rsplit(".", 1)[1]]
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": STATIC_CACHE})


INLINE_SCRIPT_RE = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _explorer_policy(page: str) -> str:
    """The pages' policy, plus the explorer's own inline start-up script by its hash (and the
    inline styles Swagger UI sets as it renders)."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in INLINE_SCRIPT_RE.findall(page)
    )
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {hashes}",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


@router.get("/docs")
async def docs() -> HTMLResponse:
    """The OpenAPI explorer, from local files: it works on a closed network."""
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Rostra API",
        swagger_js_url="/static/vendor/swagger-ui-bundle.js",
        swagger_css_url="/static/vendor/swagger-ui.css",
        swagger_favicon_url="/static/icon.svg",
    )
    page.headers["Content-Security-Policy"] = _explorer_policy(bytes(page.body).decode())
    return page


@read("/static/{name}")
async def static(name: str) -> Response:
    if not STATIC_NAME_RE.fullmatch(name) or not (STATIC_DIR / name).is_file():
        raise MediaNotFound(f"no static file '{name[:80]}'")
    media_type = MEDIA_TYPES[name.rsplit(".", 1)[1]]
    return FileResponse(
        STATIC_DIR / name, media_type=media_type, headers={"Cache-Control": STATIC_CACHE}
    )
