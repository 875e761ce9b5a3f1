"""The OpenAPI document tells the truth about failures: every operation lists the 4xx and 503
answers it can give, each an `application/problem+json` body (RFC 9457), and media operations
name the media type they really answer with.

Web plane. Which answers an operation can give follows from what it is, by the rules of
errors.py and web/problems.py: a path naming a space can be unknown (404) or unreadable (409);
a write has a body to refuse (400, 413, 415, 422) and is limited per source (429); the API and
WHIP take a credential (401, 403); and anything may find the service overloaded (503). A route
adds its own with `responses=problem_responses(...)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM_TYPE = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `type` ends with the error's slug",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "error_id": {"type": "string"},
    },
    "additionalProperties": True,
}
DESCRIPTIONS = {
    400: "Malformed request: the body or a parameter cannot be parsed",
    401: "Missing, malformed, forged or expired credential",
    403: "A valid credential that is not allowed here (another space, revoked, blocked)",
    404: "Unknown space or resource",
    409: "State conflict (space ended, stage full, stored record unreadable)",
    413: "Body too large",
    415: "Wrong Content-Type",
    422: "Invalid fields",
    429: "One client over its limit (see Retry-After)",
    503: "Overloaded, not ready, or the waiting room (see Retry-After)",
}
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
# what a media path answers with, by its ending
MEDIA_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".aac": "audio/aac",
    ".opus": "audio/ogg",
    ".m4a": "audio/mp4",
    ".vtt": "text/vtt",
    ".ics": "text/calendar",
}
SEGMENT_TYPES = ("video/mp4", "audio/mp4", "application/vnd.apple.mpegurl", "audio/aac")


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    return {
        "description": description or DESCRIPTIONS.get(status, "Problem"),
        "content": {PROBLEM_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
    }


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """For a route's `responses=`: the problems it answers beyond the rules above."""
    return {status: problem_response(status) for status in statuses}


def statuses_of(method: str, path: str) -> set[int]:
    """The problems an operation can answer with, from what it is."""
    statuses = {503}
    if "{" in path:
        statuses |= {404}
    if "{space_id}" in path:
        statuses |= {409}
    if method in WRITE_METHODS:
        statuses |= {400, 409, 413, 415, 422, 429}
    if path.startswith(("/api/", "/whip/")) or path == "/metrics":
        statuses |= {401, 403}
    if path.startswith(("/live/", "/replay/")):
        statuses |= {400}  # a query that asks the impossible (a part too far ahead)
    return statuses


def _media_type(path: str) -> str | None:
    for ending, media_type in MEDIA_TYPES.items():
        if path.endswith(ending):
            return media_type
    return None


def _document(method: str, path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    default_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
    if "HTTPValidationError" in str(default_422):
        del responses["422"]  # FastAPI's shape; web/problems.py answers problem+json
    for status in sorted(statuses_of(method, path)):
        entry = responses.setdefault(str(status), problem_response(status))
        entry.setdefault("content", {}).setdefault(PROBLEM_TYPE, {"schema": {"$ref": PROBLEM_REF}})
    media_type = _media_type(path)
    success = next((code for code in ("200", "201") if code in responses), None)
    if success is None:
        return
    if media_type is not None:
        responses[success]["content"] = {media_type: {"schema": {"type": "string"}}}
    elif path.endswith("/{name}"):  # init, segments, playlists of a space by file name
        responses[success]["content"] = {t: {"schema": {"type": "string"}} for t in SEGMENT_TYPES}


def _operations(spec: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if method in {"get", "head", "post", "put", "patch", "delete"}:
                yield method, path, operation


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with every operation's problems documented (in place; returned for chaining)."""
    for method, path, operation in _operations(spec):
        _document(method, path, operation)
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused not in str({k: v for k, v in spec.items() if k != "components"}):
            schemas.pop(unused, None)
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "the admin token, a space's host token, an invite or a listener ticket",
    }
    return spec


def install(app: FastAPI) -> None:
    """Serve the documented spec at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = document_problems(spec)
        return app.openapi_schema

    setattr(app, "openapi", openapi)  # noqa: B010 - FastAPI's documented way to replace it
