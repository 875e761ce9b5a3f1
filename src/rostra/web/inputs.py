"""Reading requests strictly: bearer credentials, bodies capped before they are read, JSON bodies
bounded in size, depth and number length, and text fields free of control characters.

Web plane.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Annotated, Any, NoReturn, TypeVar

from fastapi import Request
from pydantic import AfterValidator, BaseModel, ValidationError

from rostra.errors import BadRequest, InvalidFields, PayloadTooLarge, UnsupportedMediaType

MAX_JSON_BYTES = 16 * 1024
# objects and arrays inside one another; every body of the API needs 2
MAX_JSON_DEPTH = 16
# digits of one JSON number: more than any field holds (Python refuses past 4,300 anyway)
MAX_NUMBER_CHARS = 32
JSON_TYPE = "application/json"

# a string literal (to skip when counting brackets), or a bracket
_JSON_STRUCTURE_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
# bidirectional overrides and isolates reorder what a reader sees (a title that lies)
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# control, surrogate, line and paragraph separator characters
_CONTROL_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})

Model = TypeVar("Model", bound=BaseModel)


def control_character(text: str) -> str | None:
    """The first control character of `text` (CR, LF, NUL, a bidi override…), or None."""
    for char in text:
        if unicodedata.category(char) in _CONTROL_CATEGORIES or char in _BIDI_CONTROLS:
            return char
    return None


def _plain(text: str) -> str:
    char = control_character(text)
    if char is not None:
        raise ValueError(f"must not contain control characters (found U+{ord(char):04X})")
    return text


# Every free-text field of a body: one line of printable text.
PlainText = Annotated[str, AfterValidator(_plain)]


def json_body(model: type[BaseModel], *, is_required: bool = True) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body that the route reads itself with read_json."""
    schema = {JSON_TYPE: {"schema": model.model_json_schema()}}
    return {"requestBody": {"required": is_required, "content": schema}}


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return ""
    return value.strip()


def _check_content_type(request: Request, content_type: str) -> None:
    declared = request.headers.get("content-type", "")
    if declared.split(";")[0].strip().lower() != content_type:
        raise UnsupportedMediaType(
            f"this call takes Content-Type '{content_type}', not '{declared[:80] or 'none'}'"
        )


async def read_capped(request: Request, *, limit: int) -> bytes:
    """The body, refused with 413 from its Content-Length before a byte is read, and while
    streaming as soon as it passes `limit` (a body may come chunked, without a length)."""
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"the body has {length.strip()[:20]} bytes; at most {limit} allowed")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes, the most allowed")
    return bytes(body)


async def read_body(request: Request, *, limit: int, content_type: str) -> bytes:
    _check_content_type(request, content_type)
    return await read_capped(request, limit=limit)


def _too_long_number(text: str) -> NoReturn:
    raise BadRequest(
        f"a JSON number has {len(text)} characters; at most {MAX_NUMBER_CHARS} are allowed"
    )


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        _too_long_number(text)
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        _too_long_number(text)
    return float(text)


def _parse_constant(text: str) -> NoReturn:
    raise BadRequest(f"'{text}' is not a JSON number")


def _check_depth(text: str) -> None:
    depth = 0
    for match in _JSON_STRUCTURE_RE.finditer(text):
        piece = match.group()
        if piece in ("[", "{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise BadRequest(
                    f"the JSON body nests deeper than {MAX_JSON_DEPTH} objects and arrays"
                )
        elif piece in ("]", "}"):
            depth -= 1


def parse_json(raw: bytes) -> Any:
    """JSON with bounded nesting and numbers, or BadRequest naming what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    _check_depth(text)
    try:
        return json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # the depth check makes this unreachable; kept as a guard
        raise BadRequest("the JSON body nests too deeply") from exc


def validate(model: type[Model], data: Any) -> Model:
    if not isinstance(data, dict):
        raise InvalidFields("the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidFields(details[:1000]) from exc


async def read_json(
    request: Request,
    model: type[Model],
    *,
    is_optional: bool = False,
    limit: int = MAX_JSON_BYTES,
) -> Model:
    """The body as `model`; with `is_optional`, an empty body (with or without a Content-Type)
    reads as the model's defaults."""
    if is_optional and not request.headers.get("content-type"):
        raw = await read_capped(request, limit=limit)
        if not raw.strip():
            return model()
        _check_content_type(request, JSON_TYPE)
    raw = await read_body(request, limit=limit, content_type=JSON_TYPE)
    if not raw.strip() and is_optional:
        return model()
    return validate(model, parse_json(raw))
