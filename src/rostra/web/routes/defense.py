"""A space's defence, set by its host or an admin: proof-of-work for joins (off, on, auto) and
the admission rate and burst of its token bucket.

Web plane.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from rostra.audience.defense import (
    MAX_ADMISSION_BURST,
    MAX_ADMISSION_RATE,
    DefenseService,
    PowMode,
)
from rostra.errors import Unavailable
from rostra.web.auth import require_admin_or_host
from rostra.web.inputs import read_json
from rostra.web.services import Services

router = APIRouter(prefix="/api/v1/spaces", tags=["defense"])


class DefenseUpdate(BaseModel):
    """Any of the fields; those left out keep their value. Numbers are JSON numbers: `"5"` or
    `true` is refused, not read as 5 or 1 (strict)."""

    model_config = ConfigDict(extra="forbid")
    pow: PowMode | None = None
    admission_rate: float | None = Field(default=None, gt=0, le=MAX_ADMISSION_RATE, strict=True)
    admission_burst: int | None = Field(default=None, ge=1, le=MAX_ADMISSION_BURST, strict=True)


def _defenses(request: Request, space_id: str) -> tuple[Services, DefenseService]:
    services: Services = request.app.state.services
    space = services.spaces.get(space_id)
    require_admin_or_host(services, request, space.id)
    defenses = services.audience.gate.defenses
    if defenses is None:
        raise Unavailable("this worker keeps no defence settings")
    return services, defenses


@router.get("/{space_id}/defense", summary="The space's defence (host or admin)")
async def get_defense(space_id: str, request: Request) -> dict[str, Any]:
    _, defenses = _defenses(request, space_id)
    return (await asyncio.to_thread(defenses.get, space_id)).to_json()


@router.put(
    "/{space_id}/defense",
    summary="Set the space's proof-of-work and admission rate (host or admin)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DefenseUpdate.model_json_schema()}},
        }
    },
)
async def put_defense(space_id: str, request: Request) -> dict[str, Any]:
    _, defenses = _defenses(request, space_id)
    body = await read_json(request, DefenseUpdate)
    defense = await asyncio.to_thread(
        lambda: defenses.update(
            space_id,
            pow=body.pow,
            admission_rate=body.admission_rate,
            admission_burst=body.admission_burst,
        )
    )
    return defense.to_json()
