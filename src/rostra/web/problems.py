"""Errors to HTTP: domain errors become application/problem+json (RFC 9457) here and only here.

Web plane. Anything unexpected becomes an opaque 500 with an error id, logged with its traceback.
"""

from __future__ import annotations

import logging
import math
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from rostra import errors
from rostra.web import openapi_errors

log = logging.getLogger(__name__)

PROBLEM_TYPE = openapi_errors.PROBLEM_TYPE
PROBLEM_HEADER = "X-Rostra-Problem"

STATUS_BY_CATEGORY: list[tuple[type[errors.RostraError], int]] = [
    (errors.BadRequest, 400),
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.MethodNotAllowed, 405),
    (errors.Conflict, 409),
    (errors.PayloadTooLarge, 413),
    (errors.UnsupportedMediaType, 415),
    (errors.InvalidFields, 422),
    (errors.TooManyRequests, 429),
    (errors.Unavailable, 503),
]


def status_of(error: errors.RostraError) -> int:
    for category, status in STATUS_BY_CATEGORY:
        if isinstance(error, category):
            return status
    return 400


def problem(
    status: int, title: str, detail: str, *, slug: str, extra: dict[str, Any] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://rostra.dev/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update(extra or {})
    # the type's slug also in a header: middleware (the incident log) reads it without the body
    headers: dict[str, str] = {"Cache-Control": "no-store", PROBLEM_HEADER: slug}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="rostra"'
    return JSONResponse(body, status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def from_error(error: errors.RostraError) -> JSONResponse:
    # an error may add members to the problem (ChallengeRequired: the challenge to solve)
    extra: dict[str, Any] | None = getattr(error, "extra", None)
    response = problem(
        status_of(error), error.title, error.detail, slug=error.type_slug, extra=extra
    )
    if error.retry_after_s is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    return response


async def _domain(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.RostraError)
    return from_error(exc)


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()
    )
    return problem(422, "Invalid fields", details or "invalid request", slug="invalid-fields")


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    detail = str(exc.detail)
    if exc.status_code == 404:
        detail = f"nothing is served at '{request.url.path[:200]}'"
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    response = problem(exc.status_code, title, detail, slug=slug)
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    error_id = secrets.token_hex(6)
    log.error(
        "unexpected error",
        exc_info=exc,
        extra={"error_id": error_id, "path": request.url.path[:200]},
    )
    return problem(
        500,
        "Internal error",
        f"an unexpected error occurred; it was logged with id {error_id}",
        slug="internal",
        extra={"error_id": error_id},
    )


def install(app: FastAPI) -> None:
    """Problems as answers, and documented as such in the app's OpenAPI document."""
    openapi_errors.install(app)
    app.add_exception_handler(errors.RostraError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
