"""Who may call the admin and host API: the admin token, or a space's host token.

Web plane.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from rostra.errors import CredentialInvalid, CredentialMissing
from rostra.stage.roles import Credential, Role
from rostra.web.inputs import bearer
from rostra.web.services import Services


def is_admin(services: Services, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(
        str(token).encode(), services.settings.admin_token.encode()
    )


def require_admin(services: Services, request: Request) -> None:
    token = bearer(request)
    if not token:
        raise CredentialMissing("send the admin token as 'Authorization: Bearer …'")
    if not is_admin(services, token):
        raise CredentialInvalid("the bearer token is not this deployment's admin token")


def require_moderator(services: Services, request: Request, space_id: str) -> Credential:
    """The admin (as the host), the host or a co-host: who runs the stage (hands, removals)."""
    token = bearer(request)
    if is_admin(services, token):
        return Credential(space_id=space_id, role=Role.HOST, name="Admin")
    return services.invites.require_moderator(token, space_id)


def require_admin_or_host(services: Services, request: Request, space_id: str) -> None:
    token = bearer(request)
    if not is_admin(services, token):
        services.invites.require_host(token, space_id)
