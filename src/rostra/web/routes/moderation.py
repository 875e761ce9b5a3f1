"""Moderation API: mute (one voice, or every speaker at once), block, and the moderation log.

Web plane. The decision is taken here, in the listener worker (who asks, on whom); the origin
carries it out through its internal API (the voice leaves the program from the mixer's next
tick). Blocks and the log live in the moderation store shared by every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from rostra.audience.tickets import MAX_TOKEN_CHARS
from rostra.clock import Clock
from rostra.config import Settings
from rostra.errors import BlockTargetInvalid, HandNotFound, SpeakerNotFound
from rostra.stage.invites import check_hand, find_hand
from rostra.stage.moderation import (
    Action,
    ModerationService,
    check_session,
    decide_mute,
    require_may_act,
    role_of,
)
from rostra.stage.roles import Credential, Role
from rostra.store.moderation import ModerationStore
from rostra.store.revocations import Revocation
from rostra.web.auth import is_admin, require_moderator
from rostra.web.inputs import bearer, json_body, read_json
from rostra.web.services import Services

router = APIRouter(prefix="/api/v1/spaces", tags=["moderation"])

SPEAKER_ROLES = [str(Role.SPEAKER)]


class MuteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    muted: bool = Field(strict=True)
    # only the host or a co-host may lock: the speaker cannot unmute themselves until unlocked
    locked: bool | None = Field(default=None, strict=True)


class BlockBody(BaseModel):
    """Exactly one of: a stage session, a listener's ticket, a raised hand."""

    model_config = ConfigDict(extra="forbid")
    session: str | None = Field(default=None, max_length=64)
    ticket: str | None = Field(default=None, max_length=MAX_TOKEN_CHARS)
    hand: str | None = Field(default=None, max_length=64)


def build_moderation(settings: Settings, clock: Clock, database_name: str) -> ModerationService:
    """The moderation store where the audience's state is: Redis when configured, else the
    machine's audience database in the data folder."""
    store: ModerationStore
    if settings.redis:
        from rostra.store.moderation_redis import RedisModerationStore

        store = RedisModerationStore(settings.redis)
    else:
        from rostra.store.moderation_sqlite import SqliteModerationStore

        store = SqliteModerationStore(settings.data / database_name)
    return ModerationService(store, clock)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _moderation(request: Request) -> ModerationService:
    moderation: ModerationService = request.app.state.moderation
    return moderation


def _actor(services: Services, request: Request, space_id: str) -> Credential:
    """Any credential of the space: the host, a co-host, or a speaker (for their own voice)."""
    token = bearer(request)
    if is_admin(services, token):
        return Credential(space_id=space_id, role=Role.HOST, name="Admin")
    return services.invites.authorize(token, space_id, consume=False)


async def record(
    request: Request,
    space_id: str,
    actor: Credential,
    action: Action,
    target: str,
    target_name: str = "",
) -> None:
    """Add a moderation act to the space's log (other stage routes call this too)."""
    await asyncio.to_thread(
        _moderation(request).record, space_id, actor, action, target, target_name
    )


def _public_member(member: dict[str, Any]) -> dict[str, Any]:
    return {key: member[key] for key in ("id", "name", "role", "muted", "locked")}


@router.post(
    "/{space_id}/stage/{session_id}/mute",
    summary="Mute or unmute a voice (host, co-host; a speaker their own unless locked)",
    openapi_extra=json_body(MuteBody),
)
async def mute(space_id: str, session_id: str, request: Request) -> dict[str, Any]:
    services = _services(request)
    services.spaces.get(space_id)
    actor = _actor(services, request, space_id)
    check_session(session_id)
    body = await read_json(request, MuteBody)
    member = await services.origin.stage_member(space_id, session_id)
    action = decide_mute(
        actor,
        session_id=session_id,
        target_role=role_of(str(member["role"])),
        target_invite_id=member.get("invite_id"),
        is_locked_now=bool(member["locked"]),
        muted=body.muted,
        locked=body.locked,
    )
    # a speaker's own mute keeps a lock the host or a co-host set (else muting oneself would
    # clear it, and the next unmute would pass)
    is_locked = bool(body.locked) if action is not None else body.muted and bool(member["locked"])
    changed = await services.origin.mute(
        space_id, session_id, is_muted=body.muted, is_locked=is_locked
    )
    if action is not None:
        await record(request, space_id, actor, action, session_id, str(member["name"]))
    return _public_member(changed)


@router.post(
    "/{space_id}/stage/mute",
    summary="Mute (or unmute) every speaker at once, never the host or co-hosts",
    openapi_extra=json_body(MuteBody),
)
async def mute_all(space_id: str, request: Request) -> dict[str, Any]:
    services = _services(request)
    services.spaces.get(space_id)
    actor = require_moderator(services, request, space_id)
    body = await read_json(request, MuteBody)
    action = decide_mute(
        actor,
        session_id="*",
        target_role=Role.SPEAKER,
        target_invite_id=None,
        is_locked_now=False,
        muted=body.muted,
        locked=bool(body.locked),
    )
    changed = await services.origin.mute_roles(
        space_id, SPEAKER_ROLES, is_muted=body.muted, is_locked=bool(body.locked)
    )
    if action is not None:
        await record(request, space_id, actor, action, "all speakers", f"{len(changed)} voices")
    return {"sessions": [_public_member(member) for member in changed]}


@router.post(
    "/{space_id}/blocks",
    summary="Block a speaker or listener: invite, ticket and device refused (host, co-host)",
    openapi_extra=json_body(BlockBody),
)
async def block(space_id: str, request: Request) -> dict[str, Any]:
    services = _services(request)
    services.spaces.get(space_id)
    actor = require_moderator(services, request, space_id)
    body = await read_json(request, BlockBody)
    named = [key for key in ("session", "ticket", "hand") if getattr(body, key) is not None]
    if len(named) != 1:
        raise BlockTargetInvalid(
            f"a block names exactly one of 'session', 'ticket' or 'hand'; this one names"
            f" {len(named)}{': ' + ', '.join(named) if named else ''}"
        )
    if body.session is not None:
        result = await _block_session(request, services, actor, space_id, body.session)
    else:
        if body.hand is not None:
            listener_id, target = await _hand_listener(services, space_id, body.hand)
        else:
            ticket = services.audience.gate.signed(body.ticket, space_id)
            listener_id, target = ticket.listener_id, f"ticket of listener {ticket.listener_id[:8]}"
        require_may_act(actor, Role.SPEAKER, "block", target)
        result = await _block_listener(request, services, space_id, listener_id)
        result["target"] = target
    await record(request, space_id, actor, Action.BLOCK, result["target"], result.get("name", ""))
    return result


async def _hand_listener(services: Services, space_id: str, hand: str) -> tuple[str, str]:
    check_hand(hand)
    queue = await asyncio.to_thread(services.audience.reactions.hands, space_id)
    raised = find_hand(queue, hand)
    if raised is None:
        raise HandNotFound(f"space '{space_id}' has no raised hand '{hand}'")
    return raised.listener_id, f"hand {hand}"


async def _block_session(
    request: Request, services: Services, actor: Credential, space_id: str, session_id: str
) -> dict[str, Any]:
    check_session(session_id)
    member = await services.origin.stage_member(space_id, session_id)
    require_may_act(actor, role_of(str(member["role"])), "block", f"session '{session_id}'")
    invite_id = member.get("invite_id")
    revoked = None
    if isinstance(invite_id, str):
        revoked = await _revoke_personal_invite(services, space_id, invite_id)
    with contextlib.suppress(SpeakerNotFound):  # its invite's revocation ended it already
        await services.origin.remove_speaker(space_id, session_id)
    device = str(member.get("device") or "")
    if device:
        await asyncio.to_thread(_moderation(request).block, space_id, device)
    return {
        "target": f"session {session_id}",
        "name": str(member["name"]),
        "invite_revoked": revoked,
        "ticket_revoked": False,
        "device_blocked": bool(device),
    }


async def _revoke_personal_invite(services: Services, space_id: str, invite_id: str) -> str | None:
    """Revoke a personal invite and end its sessions; a shared link is left to its other holders
    (the device block keeps this one out)."""
    record_ = await asyncio.to_thread(services.store.get_invite, invite_id)
    if record_ is None or not record_.name or record_.is_revoked:
        return None
    await asyncio.to_thread(services.invites.revoke, space_id, invite_id)
    await services.origin.end_invite_sessions(space_id, invite_id)
    return invite_id


async def _block_listener(
    request: Request, services: Services, space_id: str, listener_id: str
) -> dict[str, Any]:
    """Every ticket of the listener revoked (and a returning one), their hand lowered, their hand
    invite revoked (and its session ended), their device refused."""
    gate = services.audience.gate
    now_s = services.clock.now().timestamp()
    until_s = float(math.ceil(now_s + services.settings.ticket_ttl_s))
    revocation = Revocation(listener_id, until_s, revoked_at_s=float("inf"))
    await asyncio.to_thread(gate.revocations.revoke, revocation, now_s)
    await asyncio.to_thread(gate.reactions.lower_hand, space_id, listener_id)
    invite_id = services.invites.hand_invite_id(space_id, listener_id)
    revoked = await _revoke_personal_invite(services, space_id, invite_id)
    device = await asyncio.to_thread(_moderation(request).hand_device, space_id, listener_id)
    if device:
        await asyncio.to_thread(_moderation(request).block, space_id, device)
    return {"invite_revoked": revoked, "ticket_revoked": True, "device_blocked": bool(device)}


@router.get("/{space_id}/moderation", summary="The moderation log, oldest first (host, co-host)")
async def moderation_log(space_id: str, request: Request) -> dict[str, Any]:
    services = _services(request)
    services.spaces.get(space_id)
    require_moderator(services, request, space_id)
    entries = await asyncio.to_thread(_moderation(request).log, space_id)
    return {"entries": [entry.to_json() for entry in entries]}
