"""Fixtures for the browser tests: one Rostra server per module, Debian's Chromium driven by
Playwright with a fake microphone that speaks a known sentence, and a console-error watch."""

from __future__ import annotations

import shutil
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.audio_check import SAMPLE_RATE_HZ, decode
from tests.conftest import Server, make_speech, start_server, stop_server

CHROMIUM = Path("/usr/bin/chromium")
SPOKEN = "The quick brown fox jumps over the lazy dog, near the river bank."
NEVER_SPOKEN = "Seven silver swans swim silently across the frozen lake at midnight."
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# Chromium's fake microphone loops its file in 10 ms buffers, padding the last one with silence;
# a file that is a whole number of buffers loops with an exactly known period.
LOOP_BLOCK_SAMPLES = 4_800
# the heartbeat interval of `audience_server` (the default is 20 s)
HEARTBEAT_INTERVAL_S = 2.0


def chromium_args(fake_microphone: Path) -> list[str]:
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_microphone}",
        "--autoplay-policy=no-user-gesture-required",
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
    ]


@dataclass
class Speech:
    spoken: Path  # what the fake microphone says, in a loop
    never_spoken: Path  # a control: different speech that is never sent


def padded_for_loop(source: Path, out: Path) -> Path:
    samples = decode(source)
    samples = np.concatenate([samples, np.zeros((-samples.size) % LOOP_BLOCK_SAMPLES, np.float32)])
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(out), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE_HZ)
        handle.writeframes(pcm.tobytes())
    return out


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    directory = tmp_path_factory.mktemp("web-speech")
    spoken = make_speech(directory, "spoken", SPOKEN, voice="en")
    return Speech(
        spoken=padded_for_loop(spoken, directory / "spoken-loop.wav"),
        never_spoken=make_speech(directory, "never", NEVER_SPOKEN, voice="en-us+f3"),
    )


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("web-server") / "data")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def audience_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose listeners heartbeat every ~2 s, so a test sees several heartbeats."""
    running = start_server(
        tmp_path_factory.mktemp("audience-server") / "data",
        extra_env={"ROSTRA_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_INTERVAL_S)},
    )
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def browser(speech: Speech) -> Iterator[Any]:
    if not CHROMIUM.is_file() or shutil.which("espeak-ng") is None:
        pytest.fail("Chromium and espeak-ng are needed: `make system-test-deps` installs them")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=chromium_args(speech.spoken), timeout=30_000
        )
        yield chromium
        chromium.close()


@dataclass
class ConsoleWatch:
    """Console errors and uncaught exceptions of the pages it watches; `failed` lists the HTTP
    answers >= 400 they got (the console does not name the URL)."""

    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> Any:
        page.on(
            "response",
            lambda response: (
                self.failed.append(f"{response.status} {response.request.method} {response.url}")
                if response.status >= 400
                else None
            ),
        )
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"{page.url}: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        return page


@pytest.fixture
def console() -> ConsoleWatch:
    return ConsoleWatch()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile per test (its own localStorage), desktop sized."""
    created = browser.new_context(viewport={"width": 1280, "height": 800})
    created.set_default_timeout(15_000)
    yield created
    created.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
