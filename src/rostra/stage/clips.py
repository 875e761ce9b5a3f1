"""Clips of a space: their ids, their records beside the recording in the data folder, and the
limits on making them (per ticket per minute and per hour, per space overall).

Stage plane. Every listener worker of a machine shares the data folder: a file lock per space
makes the limit check and the write one step across workers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rostra.clock import Clock
from rostra.errors import ClipLimitReached, ClipNotFound, ClipRateLimited
from rostra.files import write_durable

CLIPS_FOLDER = "clips"
INDEX_NAME = "index.json"
LOCK_NAME = ".lock"
MIN_DURATION_S = 5
MAX_DURATION_S = 60
# how far back a clip may end: its segments' headers are read from the newest back to it
MAX_END_S_AGO = 24 * 3600
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_ID_RANDOM_CHARS = 12
# the space's id, then a random part: the clip's URL says where its file lies
CLIP_ID_RE = re.compile(r"^([a-z0-9]{8,32})-([a-z0-9]{12})$")
MINUTE_S = 60.0
HOUR_S = 3600.0
_WHO_DIGEST_BYTES = 12


@dataclass(frozen=True, slots=True)
class ClipLimits:
    per_minute: int = 3
    per_hour: int = 20
    per_space: int = 200


@dataclass(frozen=True, slots=True)
class ClipRecord:
    id: str
    space_id: str
    # a digest of who made it (a listener id, or "host"): enough to count, nothing to replay
    made_by: str
    made_at_s: float
    duration_s: float
    end_s_ago: float
    size_bytes: int


def new_clip_id(space_id: str) -> str:
    random_part = "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_RANDOM_CHARS))
    return f"{space_id}-{random_part}"


def clip_space(clip_id: str) -> str:
    """The space a clip id names, or ClipNotFound for anything that is not a clip id."""
    match = CLIP_ID_RE.fullmatch(clip_id)
    if match is None:
        raise ClipNotFound(f"'{clip_id[:80]}' is not a clip id")
    return match.group(1)


def made_by(who: str) -> str:
    return hashlib.blake2b(who.encode(), digest_size=_WHO_DIGEST_BYTES).hexdigest()


def check_limits(records: Sequence[ClipRecord], who: str, now_s: float, limits: ClipLimits) -> None:
    """Nothing when `who` may make one more clip now; else the limit it is over."""
    if len(records) >= limits.per_space:
        raise ClipLimitReached(f"a space keeps at most {limits.per_space} clips; this one has them")
    mine = sorted(r.made_at_s for r in records if r.made_by == who)
    for per, period_s, period_name in (
        (limits.per_minute, MINUTE_S, "minute"),
        (limits.per_hour, HOUR_S, "hour"),
    ):
        recent = [at for at in mine if now_s - at < period_s]
        if len(recent) >= per:
            wait_s = recent[-per] + period_s - now_s
            raise ClipRateLimited(
                f"one listener may make {per} clips per {period_name}; "
                f"the next in {max(wait_s, 1.0):.0f} s",
                retry_after_s=max(wait_s, 1.0),
            )


class ClipBook:
    """The clips of every space under `media_root` (`ID/clips/`): made under the space's lock,
    read without it (the index and the files are replaced whole, never changed in place)."""

    def __init__(self, media_root: Path, clock: Clock, limits: ClipLimits | None = None) -> None:
        self._media_root = media_root
        self._clock = clock
        self.limits = limits or ClipLimits()

    def folder(self, space_id: str) -> Path:
        return self._media_root / space_id / CLIPS_FOLDER

    def make(
        self,
        space_id: str,
        *,
        who: str,
        end_s_ago: float,
        duration_s: float,
        cut: Callable[[], bytes],
    ) -> ClipRecord:
        """Check the limits, cut, and keep the clip; `who` is its maker ("host", or a ticket's
        listener id). A refused or failed cut keeps nothing and counts nothing.

        The cut (it may read thousands of segment headers) runs outside the space's lock, so a
        slow one holds back no other maker; the limits are checked again under the lock before
        the clip is kept, so concurrent calls still make no more than they allow."""
        folder = self.folder(space_id)
        folder.mkdir(parents=True, exist_ok=True)
        by = made_by(who)
        with _locked(folder / LOCK_NAME):
            check_limits(self.records(space_id), by, self._clock.now().timestamp(), self.limits)
        data = cut()
        with _locked(folder / LOCK_NAME):
            records = self.records(space_id)
            now_s = self._clock.now().timestamp()
            check_limits(records, by, now_s, self.limits)
            clip_id = new_clip_id(space_id)
            write_durable(folder / f"{clip_id}.m4a", data)
            record = ClipRecord(clip_id, space_id, by, now_s, duration_s, end_s_ago, len(data))
            index = [asdict(r) for r in (*records, record)]
            write_durable(folder / INDEX_NAME, json.dumps(index).encode())
        return record

    def records(self, space_id: str) -> list[ClipRecord]:
        try:
            raw = (self.folder(space_id) / INDEX_NAME).read_bytes()
        except FileNotFoundError:
            return []
        return [ClipRecord(**entry) for entry in json.loads(raw)]

    def file(self, clip_id: str) -> Path:
        """The clip's file, or ClipNotFound: no index is read (a clip's file is written before
        its record and never changes), so serving a popular clip costs one stat."""
        path = self.folder(clip_space(clip_id)) / f"{clip_id}.m4a"
        if not path.is_file():
            raise ClipNotFound(f"there is no clip '{clip_id}'")
        return path

    def find(self, clip_id: str) -> tuple[ClipRecord, Path]:
        """The clip's record and file, or ClipNotFound."""
        space_id = clip_space(clip_id)
        for record in self.records(space_id):
            if record.id == clip_id:
                return record, self.folder(space_id) / f"{clip_id}.m4a"
        raise ClipNotFound(f"space '{space_id}' has no clip '{clip_id}'")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
