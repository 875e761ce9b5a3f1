"""Identifiers: typed, random, URL-safe; validation of ids that arrive from outside.

Foundation module: imports no plane.
"""

from __future__ import annotations

import re
import secrets
from typing import NewType

SpaceId = NewType("SpaceId", str)
SessionId = NewType("SessionId", str)
InviteId = NewType("InviteId", str)

SPACE_ID_BYTES = 6
SESSION_ID_BYTES = 8
INVITE_ID_BYTES = 8

_SPACE_ID_RE = re.compile(r"^[a-z0-9]{8,32}$")
_SESSION_ID_RE = re.compile(r"^[a-z0-9]{8,32}$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def _random_token(nbytes: int) -> str:
    count = nbytes * 2
    return "".join(secrets.choice(_ALPHABET) for _ in range(count))


def new_space_id() -> SpaceId:
    return SpaceId(_random_token(SPACE_ID_BYTES))


def new_session_id() -> SessionId:
    return SessionId(_random_token(SESSION_ID_BYTES))


def new_invite_id() -> InviteId:
    return InviteId(_random_token(INVITE_ID_BYTES))


def is_space_id(value: str) -> bool:
    return _SPACE_ID_RE.fullmatch(value) is not None


def is_session_id(value: str) -> bool:
    return _SESSION_ID_RE.fullmatch(value) is not None
