"""A worker's /healthz answer is kept a second when good and a quarter of a second when failing,
so a worker that asked before the origin was well does not go on failing once it is; and an
origin whose own check fails is a named failed check, not a crash. The worker's health check
talks to a real HTTP server on the origin's Unix socket."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rostra.config import load_settings, with_secrets
from rostra.web.app import build_services
from rostra.web.health import CACHE_S, FAILING_CACHE_S, ListenerHealth
from rostra.web.origin_client import SOCKET_NAME


class OriginStandIn:
    """An origin's /internal/health that fails (500) or passes, as the test says."""

    def __init__(self) -> None:
        self.is_well = False
        self.asked = 0

    async def health(self, _request: Request) -> JSONResponse:
        self.asked += 1
        if not self.is_well:
            return JSONResponse({"detail": "internal error"}, status_code=500)
        return JSONResponse({"spaces": {}})


@asynccontextmanager
async def origin_on_socket(socket_path: Path, origin: OriginStandIn) -> AsyncIterator[None]:
    app = Starlette(routes=[Route("/internal/health", origin.health)])
    server = uvicorn.Server(uvicorn.Config(app, uds=str(socket_path), log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the stand-in origin did not start"
            await asyncio.sleep(0.02)
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def sleep_until(at_s: float) -> None:
    await asyncio.sleep(max(0.0, at_s - time.monotonic()))


async def test_a_failing_answer_is_kept_a_quarter_second_and_a_good_one_a_second() -> None:
    # a short folder: a Unix socket's path has a limit of about 100 bytes
    with tempfile.TemporaryDirectory(prefix="rostra-h-") as folder:
        settings, _ = with_secrets(load_settings({"data": Path(folder) / "d"}, environ={}))
        settings.run_dir.mkdir(parents=True)
        services = build_services(settings)
        origin = OriginStandIn()
        health = ListenerHealth(services)
        try:
            async with origin_on_socket(settings.run_dir / SOCKET_NAME, origin):
                failing_at = time.monotonic()
                failing = await health.check()
                assert failing == {
                    "status": "failing",
                    "failed": [
                        {"check": "origin", "detail": "the origin's health check answered 500"}
                    ],
                }
                origin.is_well = True
                again = await health.check()
                if time.monotonic() - failing_at < FAILING_CACHE_S:
                    assert again is failing  # kept, not asked again
                    assert origin.asked == 1
                # a quarter of a second on, the worker asks again and is well (a second's
                # cache, as a good answer has, would still say failing here)
                await sleep_until(failing_at + FAILING_CACHE_S + 0.05)
                well_at = time.monotonic()
                assert await health.check() == {"status": "ok", "failed": []}
                asked = origin.asked
                origin.is_well = False
                kept = await health.check()
                if time.monotonic() - well_at < CACHE_S:
                    assert kept["status"] == "ok"
                    assert origin.asked == asked
                await sleep_until(well_at + CACHE_S + 0.05)
                assert (await health.check())["status"] == "failing"
            # with no origin at all on the socket
            await sleep_until(time.monotonic() + FAILING_CACHE_S + 0.05)
            gone = await health.check()
            assert [entry["check"] for entry in gone["failed"]] == ["origin"]
            assert "does not answer" in gone["failed"][0]["detail"]
        finally:
            await services.origin.close()
