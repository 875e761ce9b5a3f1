"""Reading captions as a test: the word error rate of what came back against the known text a
speaker bot said, the cues of a WebVTT document, the speaker itself over WHIP, and the recognizer
process under a server. Used by the captions tests and by bench/captions.py.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from rostra.media.ice import restrict_ice_host_addresses
from rostra.rehearse.speaker import PcmTrack

# espeak-ng's American voice: the models are trained on American English
VOICE = "en-us"
RECOGNIZER = "rostra.media.captions.recognizer"
CUE_RE = re.compile(r"^(\d\d+):(\d\d):(\d\d)\.(\d{3}) --> (\d\d+):(\d\d):(\d\d)\.(\d{3})$")

Cue = tuple[float, float, str]


def words(text: str) -> list[str]:
    """Lower-case words, punctuation and hyphens gone: what a word error rate compares."""
    return re.sub(r"[^a-z' ]", " ", text.lower().replace("-", " ")).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over the words, divided by the reference's word count."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, 1):
            previous, row[j] = (
                row[j],
                min(row[j] + 1, row[j - 1] + 1, previous + (ref_word != hyp_word)),
            )
    return row[-1] / len(ref)


def seconds(parts: tuple[str, ...]) -> float:
    """`HH`, `MM`, `SS`, `mmm` of a WebVTT timestamp → seconds."""
    hours, minutes, secs, ms = (int(part) for part in parts)
    return hours * 3600 + minutes * 60 + secs + ms / 1000


def parse_cues(document: str) -> list[Cue]:
    """(start_s, end_s, text) of each cue of a WebVTT document as Rostra writes it (one line)."""
    found = []
    lines = document.splitlines()
    for index, line in enumerate(lines):
        match = CUE_RE.match(line)
        if match and index + 1 < len(lines):
            groups = match.groups()
            found.append((seconds(groups[:4]), seconds(groups[4:]), lines[index + 1]))
    return found


async def speak(whip_base: str, space: dict[str, Any], pcm: np.ndarray) -> float:
    """Publish `pcm` as the space's invited speaker and hold the seat until it has been said;
    the wall time of the WHIP POST."""
    restrict_ice_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = PcmTrack(pcm, then_silence_s=1.0)
    pc.addTransceiver(track, direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    token = space["speaker_invite_url"].split("invite=")[1]
    async with httpx.AsyncClient(timeout=30) as client:
        posted_at = time.time()
        answer = await client.post(
            f"{whip_base}/whip/{space['id']}",
            content=pc.localDescription.sdp.encode(),
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
    if answer.status_code != 201:
        await pc.close()
        raise RuntimeError(f"WHIP refused: {answer.status_code} {answer.text[:200]}")
    try:
        await pc.setRemoteDescription(RTCSessionDescription(answer.text, "answer"))
        await asyncio.sleep(track.duration_s + 0.5)
    finally:
        await pc.close()
    return posted_at


def _descendants(root_pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            parent = int(status.read_text().split("PPid:\t")[1].split("\n")[0])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(parent, []).append(int(status.parent.name))
    found: set[int] = set()
    waiting = [root_pid]
    while waiting:
        for child in children.get(waiting.pop(), []):
            if child not in found:
                found.add(child)
                waiting.append(child)
    return found


def recognizer_pid(server_pid: int) -> int | None:
    """The recognizer process somewhere under the server process `server_pid`, if one runs."""
    for pid in sorted(_descendants(server_pid)):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if RECOGNIZER in command:
            return pid
    return None
