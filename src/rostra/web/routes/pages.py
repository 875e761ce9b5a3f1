"""The pages: listener, host and speaker, plain HTML/CSS/JS with hls.js; and their static files.

Web plane. Pages read the space id from their path and any token from their query string.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, HTMLResponse, Response

from rostra.errors import MediaNotFound
from rostra.web.services import Services

router = APIRouter(include_in_schema=False)

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,60}\.(js|css|svg|png|ico)$")
HLSJS_RELATIVE = Path("node_modules/hls.js/dist/hls.min.js")
PAGE_CACHE = "no-cache"
STATIC_CACHE = "public, max-age=300"
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


def find_hlsjs(start: Path | None = None) -> Path | None:
    """hls.js comes from npm at install time: look for node_modules beside the project."""
    candidates = [Path.cwd(), Path(__file__).resolve()]
    if start is not None:
        candidates.insert(0, start)
    for base in candidates:
        for folder in [base, *base.parents]:
            path = folder / HLSJS_RELATIVE
            if path.is_file():
                return path
    return None


def _page(name: str) -> HTMLResponse:
    return HTMLResponse((PAGES_DIR / name).read_text(), headers={"Cache-Control": PAGE_CACHE})


@router.get("/")
async def home() -> HTMLResponse:
    return _page("index.html")


@router.get("/listen/{space_id}")
async def listen_page(space_id: str, request: Request) -> HTMLResponse:
    _services(request).spaces.get(space_id)
    return _page("listen.html")


@router.get("/host/{space_id}")
async def host_page(space_id: str, request: Request) -> HTMLResponse:
    _services(request).spaces.get(space_id)
    return _page("host.html")


@router.get("/speak/{space_id}")
async def speak_page(space_id: str, request: Request) -> HTMLResponse:
    _services(request).spaces.get(space_id)
    return _page("speak.html")


@router.get("/static/vendor/hls.min.js")
async def hlsjs(request: Request) -> Response:
    path = find_hlsjs(request.app.state.services.settings.data)
    if path is None:
        raise MediaNotFound("hls.js is not installed: run 'make install' (npm install)")
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": STATIC_CACHE})


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if not STATIC_NAME_RE.fullmatch(name) or not (STATIC_DIR / name).is_file():
        raise MediaNotFound(f"no static file '{name[:80]}'")
    media_type = MEDIA_TYPES[name.rsplit(".", 1)[1]]
    return FileResponse(
        STATIC_DIR / name, media_type=media_type, headers={"Cache-Control": STATIC_CACHE}
    )
