"""Imports flow one way: foundation ← store ← stage/audience; media imports only the foundation;
web and cli are the composition roots; only web imports FastAPI/Starlette."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "rostra"
FOUNDATION = {"errors", "ids", "clock", "config", "log", "__init__", "__main__"}
ALLOWED = {
    "foundation": {"foundation"},
    "store": {"foundation", "store"},
    "stage": {"foundation", "store", "stage"},
    "audience": {"foundation", "store", "audience"},
    "media": {"foundation", "media"},
    "rehearse": {"foundation", "rehearse", "media"},
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
