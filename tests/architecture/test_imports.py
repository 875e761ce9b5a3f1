"""Imports flow one way: foundation ← store ← stage/audience; media imports only the foundation;
web and cli are the composition roots; only web imports FastAPI/Starlette. The listener side (a
listener worker, `rostra gate`) never loads the media libraries: checked in a fresh interpreter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "rostra"
FOUNDATION = {
    "errors",
    "ids",
    "clock",
    "config",
    "log",
    "ice_hosts",
    "files",
    "__init__",
    "__main__",
}
ALLOWED = {
    "foundation": {"foundation"},
    "store": {"foundation", "store"},
    "stage": {"foundation", "store", "stage"},
    "audience": {"foundation", "store", "audience"},
    "media": {"foundation", "media"},
    "rehearse": {"foundation", "rehearse"},
    "web": {"foundation", "store", "stage", "audience", "media", "web"},
    "cli": {"foundation", "store", "stage", "audience", "media", "web", "cli", "rehearse"},
}
WEB_FRAMEWORKS = {"fastapi", "starlette", "uvicorn"}


def plane_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    if relative.name == "__main__.py":
        return "cli"  # `python -m rostra` is the command line
    if len(relative.parts) == 1:
        return "foundation"
    return relative.parts[0]


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def target_plane(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "rostra":
        return None
    if len(parts) == 1 or parts[1] in FOUNDATION:
        return "foundation"
    return parts[1]


def test_planes_import_only_what_they_may() -> None:
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        plane = plane_of(path)
        for module in imports_of(path):
            target = target_plane(module)
            if target is not None and target not in ALLOWED[plane]:
                wrong.append(f"{path.relative_to(PACKAGE)} ({plane}) imports {module}")
            if module.split(".")[0] in WEB_FRAMEWORKS and plane not in ("web", "cli"):
                wrong.append(f"{path.relative_to(PACKAGE)} ({plane}) imports {module}")
    assert not wrong, "\n".join(wrong)


def test_media_plane_never_imports_http_or_storage_clients() -> None:
    for path in (PACKAGE / "media").rglob("*.py"):
        forbidden = {"httpx", "redis", "sqlite3"} & {m.split(".")[0] for m in imports_of(path)}
        assert not forbidden, f"{path.name} imports {forbidden}"


MEDIA_LIBRARIES = ("aiortc", "av")
# the rehearsal's load generator: gevent patches the interpreter it is imported into
REHEARSAL_LIBRARIES = ("locust", "gevent")
# Settings built directly: the gate's Redis client connects lazily, so no server is needed
LISTENER_SIDE_APPS = {
    "gate": (
        "from rostra.config import Settings\n"
        "from rostra.web.gate_app import create_gate_app\n"
        "create_gate_app(Settings(redis='redis://127.0.0.1:9/0', signing_secret='s' * 43,"
        " data=DATA))\n"
    ),
    "listener worker": (
        "from rostra.config import Settings\n"
        "from rostra.web.app import create_listener_app\n"
        "create_listener_app(Settings(admin_token='a' * 43, signing_secret='s' * 43,"
        " data=DATA))\n"
    ),
}


@pytest.mark.parametrize("app", sorted(LISTENER_SIDE_APPS))
def test_listener_side_apps_never_load_the_media_libraries(app: str, tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        f"DATA = Path({str(tmp_path)!r})\n"
        + LISTENER_SIDE_APPS[app]
        + f"print(json.dumps([m for m in {MEDIA_LIBRARIES + REHEARSAL_LIBRARIES!r}"
        " if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"the {app} app loads {loaded}"
