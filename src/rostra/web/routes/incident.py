"""The incident log of a space, summed into the report's JSON (host or admin).

Web plane. `rostra incident report` draws the same JSON as an HTML page.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request

from rostra.audience.incident import SERVER_SPACE
from rostra.audience.incident_report import summarize
from rostra.clock import iso_utc
from rostra.errors import IncidentLogUnavailable
from rostra.stage.moderation import ModerationService
from rostra.store.incident import IncidentStore, IncidentStoreUnavailable
from rostra.web.auth import require_admin_or_host
from rostra.web.incident_recorder import read_incident
from rostra.web.services import Services

router = APIRouter(prefix="/api/v1/spaces", tags=["spaces"])

RETRY_AFTER_S = 5.0


@router.get(
    "/{space_id}/incident",
    summary="The incident log: requests by verdict, top prefixes, defence, origin health",
)
async def incident(space_id: str, request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    space = services.spaces.get(space_id)
    require_admin_or_host(services, request, space.id)
    stores: list[IncidentStore] = request.app.state.incident_stores
    try:
        rows = await asyncio.to_thread(read_incident, stores, space.id)
        server_rows = await asyncio.to_thread(read_incident, stores, SERVER_SPACE)
    except IncidentStoreUnavailable as exc:
        raise IncidentLogUnavailable(str(exc), retry_after_s=RETRY_AFTER_S) from exc
    about = {
        "id": space.id,
        "title": space.title,
        "status": space.status,
        "started_at": iso_utc(space.started_at),
        "ended_at": iso_utc(space.ended_at),
    }
    moderation: ModerationService = request.app.state.moderation
    entries = await asyncio.to_thread(moderation.log, space.id)
    return summarize(about, rows, server_rows, time.time(), [entry.to_json() for entry in entries])
