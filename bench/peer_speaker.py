"""The Rostra speaker of bench/peers.py, in a process of its own so that the probes decoding in
the benchmark's process do not make it late: a WHIP bot (bench/bots.py) sends PCM from a .npy file
in real time, prints "connected", and on "stop" (or the end of its stdin) writes when each frame
was handed to aiortc, and how late, as JSON.

Usage: python bench/peer_speaker.py INVITE_URL PCM.npy OUT.json
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np

import harness  # noqa: F401 - puts the repository on sys.path
from bots import ReturnTap, TimedPcmTrack, join, sender_lateness


async def speak(invite_url: str, pcm_path: Path) -> dict[str, Any]:
    track = TimedPcmTrack(np.load(pcm_path).astype(np.float32))
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient() as client:
        bot = await join(client, invite_url, track, name="talker", tap=ReturnTap())
        try:
            await bot.wait_connected()
            print("connected", flush=True)
            while (await loop.run_in_executor(None, sys.stdin.readline)).strip() not in (
                "stop",
                "",
            ):
                pass
            state = bot.pc.connectionState
        finally:
            await bot.leave(client)
    return {
        "handed_at": {str(k): v for k, v in track.handed_at.items()},
        "frames": len(track.handed_at),
        "connection_at_stop": state,
        "sender_lateness": sender_lateness(track.lateness_s),
    }


def main() -> None:
    spoken = asyncio.run(speak(sys.argv[1], Path(sys.argv[2])))
    Path(sys.argv[3]).write_text(json.dumps(spoken))


if __name__ == "__main__":
    main()
