"""What /healthz means on a listener worker: the origin process answers, every live space made a
segment within the last 3 s and reports no problem, and the data folder has room.

Web plane. A good answer is cached for a second, so a load balancer polling every worker costs the
origin one small request per worker and second at most; a failing one for a quarter of a second,
so a worker that polled before the origin was up does not go on failing once it is.
"""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from typing import Any

from rostra.errors import OriginUnavailable
from rostra.media.record import LIVE_PLAYLIST_NAME
from rostra.stage.spaces import SpaceStatus
from rostra.web.services import Services

CACHE_S = 1.0
FAILING_CACHE_S = 0.25
SEGMENT_WITHIN_S = 3.0
BYTES_PER_MB = 1024 * 1024


class ListenerHealth:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._cached: tuple[float, dict[str, Any]] | None = None

    async def check(self) -> dict[str, Any]:
        now_s = time.monotonic()
        if self._cached is not None:
            cached_at_s, cached = self._cached
            kept_s = CACHE_S if cached["status"] == "ok" else FAILING_CACHE_S
            if now_s - cached_at_s < kept_s:
                return cached
        failed = await self._origin_failures()
        failed += self._segment_failures()
        failed += self._disk_failures()
        body = {"status": "ok" if not failed else "failing", "failed": failed}
        self._cached = (now_s, body)
        return body

    async def _origin_failures(self) -> list[dict[str, str]]:
        try:
            report = await self._services.origin.health()
        except OriginUnavailable as error:
            return [{"check": "origin", "detail": error.detail}]
        failed = []
        for space_id, space in report.get("spaces", {}).items():
            if not space.get("ok", True):
                problems = "; ".join(space.get("problems", []))[:500]
                failed.append({"check": "pipeline", "space": space_id, "detail": problems})
        return failed

    def _segment_failures(self) -> list[dict[str, str]]:
        services = self._services
        now = services.clock.now()
        failed = []
        for space in services.spaces.list():
            if space.status != SpaceStatus.LIVE or space.started_at is None:
                continue
            if now - space.started_at < timedelta(seconds=SEGMENT_WITHIN_S):
                continue  # the first segment is still being made
            path = services.media_dir(space.id) / LIVE_PLAYLIST_NAME
            try:
                age_s = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                age_s = float("inf")
            if age_s > SEGMENT_WITHIN_S:
                failed.append(
                    {
                        "check": "segments",
                        "space": space.id,
                        "detail": f"live space '{space.id}' made no segment for "
                        f"{age_s:.1f} s (limit {SEGMENT_WITHIN_S:.0f} s)",
                    }
                )
        return failed

    def _disk_failures(self) -> list[dict[str, str]]:
        settings = self._services.settings
        free_mb = shutil.disk_usage(settings.data).free / BYTES_PER_MB
        if free_mb >= settings.min_free_mb:
            return []
        return [
            {
                "check": "disk",
                "detail": f"the data folder has {free_mb:.0f} MB free; "
                f"ROSTRA_MIN_FREE_MB is {settings.min_free_mb}",
            }
        ]
