"""Reading requests strictly: bearer credentials, JSON bodies by size and content type.

Web plane.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from rostra.errors import BadRequest, InvalidFields, PayloadTooLarge, UnsupportedMediaType

MAX_JSON_BYTES = 16 * 1024

Model = TypeVar("Model", bound=BaseModel)


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return ""
    return value.strip()


async def read_body(request: Request, *, limit: int, content_type: str) -> bytes:
    declared = request.headers.get("content-type", "")
    if declared.split(";")[0].strip().lower() != content_type:
        raise UnsupportedMediaType(
            f"this call takes Content-Type '{content_type}', not '{declared[:80] or 'none'}'"
        )
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"the body has {length} bytes; at most {limit} are allowed")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes, the most allowed")
    return bytes(body)


async def read_json(request: Request, model: type[Model], *, is_optional: bool = False) -> Model:
    if is_optional and not request.headers.get("content-type") and not await request.body():
        return model()
    raw = await read_body(request, limit=MAX_JSON_BYTES, content_type="application/json")
    if not raw.strip() and is_optional:
        return model()
    try:
        data: Any = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidFields("the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidFields(details) from exc
