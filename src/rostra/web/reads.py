"""GET routes that also answer HEAD, as players and caches expect, documented once.

Web plane.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter

Handler = TypeVar("Handler", bound=Callable[..., Any])


def read_route(router: APIRouter) -> Callable[..., Callable[[Handler], Handler]]:
    def read(path: str, **options: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            router.add_api_route(path, handler, methods=["GET"], **options)
            hidden = {k: v for k, v in options.items() if k not in ("summary", "include_in_schema")}
            router.add_api_route(path, handler, methods=["HEAD"], include_in_schema=False, **hidden)
            return handler

        return register

    return read
