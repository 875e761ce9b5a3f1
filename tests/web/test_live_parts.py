"""The listener workers' view of a live playlist for blocking reloads: a playlist it cannot read
is answered as absent, and a blocking reload on it times out instead of failing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rostra.web.live_parts import LiveParts


def test_an_unreadable_playlist_is_absent_and_a_blocking_reload_on_it_times_out(
    tmp_path: Path,
) -> None:
    playlist = tmp_path / "audio.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:not-a-number\n")
    parts = LiveParts(poll_s=0.01)

    assert parts.read(playlist) is None

    async def reload() -> object:
        try:
            return await parts.wait_for(playlist, 3, 0, timeout_s=0.2)
        finally:
            await parts.close()

    assert asyncio.run(reload()) is None
    assert parts.waiters == 0
