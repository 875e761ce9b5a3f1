"""What the origin tells listener workers about a live space without being asked: its stage and
its health, as a small JSON file beside the space's media, replaced atomically on each change.

Web plane. Listener workers read it from the data folder, so no listener request ever reaches the
origin process; a file that stops changing while the space is live means the origin is away.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rostra.files import write_durable

log = logging.getLogger(__name__)

STATUS_NAME = "origin.json"
# each parsed file is kept until it changes on disk; the cache holds this many spaces
CACHE_SPACES = 1_024


@dataclass(frozen=True, slots=True)
class StageEntry:
    id: str
    name: str
    role: str
    is_muted: bool
    # muted by the host or a co-host, who forbade the speaker to unmute themselves
    is_locked: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "muted": self.is_muted,
            "locked": self.is_locked,
        }


@dataclass(frozen=True, slots=True)
class OriginStatus:
    stage: tuple[StageEntry, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def is_ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": [entry.to_json() for entry in self.stage],
            "problems": list(self.problems),
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> OriginStatus:
        stage = tuple(
            StageEntry(
                id=str(entry["id"]),
                name=str(entry["name"]),
                role=str(entry["role"]),
                is_muted=bool(entry["muted"]),
                is_locked=bool(entry.get("locked", False)),
            )
            for entry in body.get("stage", [])
        )
        return cls(stage=stage, problems=tuple(str(p) for p in body.get("problems", [])))


def write_status(directory: Path, status: OriginStatus) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(status.to_json(), separators=(",", ":")).encode()
    write_durable(directory / STATUS_NAME, text, is_durable=False)


@dataclass(slots=True)
class StatusReader:
    """Reads a space's origin status, parsing the file again only when it changed."""

    media_root: Path
    _cache: dict[str, tuple[int, OriginStatus]] = field(default_factory=dict)

    def read(self, space_id: str) -> OriginStatus:
        path = self.media_root / space_id / STATUS_NAME
        try:
            mtime_ns = path.stat().st_mtime_ns
        except FileNotFoundError:
            return OriginStatus()
        cached = self._cache.get(space_id)
        if cached is not None and cached[0] == mtime_ns:
            return cached[1]
        try:
            status = OriginStatus.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("origin status unreadable", extra={"space": space_id})
            return cached[1] if cached is not None else OriginStatus()
        if len(self._cache) >= CACHE_SPACES:
            self._cache.pop(next(iter(self._cache)))
        self._cache[space_id] = (mtime_ns, status)
        return status
