"""Roles on the stage, and the credential a speaker presents.

Stage plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    HOST = "host"
    SPEAKER = "speaker"


@dataclass(frozen=True, slots=True)
class Credential:
    """Who a verified token says the bearer is."""

    space_id: str
    role: Role
    invite_id: str | None = None
    name: str = ""
