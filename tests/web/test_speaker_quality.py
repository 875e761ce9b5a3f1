"""What real Chromium sends through the speak page, measured from the RTP the origin receives:
the bitrate the WHIP answer asks for, and in-band FEC; and the studio mode's microphone.

Real Rostra servers, real Chromium with its fake microphone speaking a looped sentence.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, start_server, stop_server
from tests.web.test_pages_browser import join_stage, stage_names, wait_until

ROSTRA = Path(sys.executable).with_name("rostra")
MEASURE_S = 6.0
SETTLE_S = 1.5  # the encoder's first second ramps up: measure after it
PACKETS_PER_S = 50  # 20 ms Opus frames
COUNTERS = (
    "rostra_speaker_received_bytes_total",
    "rostra_speaker_received_packets_total",
    "rostra_speaker_fec_packets_total",
)


@pytest.fixture(scope="module")
def low_bitrate_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("low-bitrate") / "data",
        extra_env={"ROSTRA_SPEAKER_BITRATE_KBPS": "32"},
    )
    yield running
    stop_server(running)


def speaker_counters(server: Server, space_id: str) -> dict[str, float]:
    text = server.api("GET", "/metrics").text
    found: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0]
        if name in COUNTERS and f'space="{space_id}"' in line:
            found[name] = float(line.rsplit(" ", 1)[1])
    return found


@pytest.fixture
def measure(context: Any) -> Any:
    def run(server: Server, label: str) -> tuple[float, float, float]:
        """Speak for MEASURE_S through the speak page: kbit/s, packets/s, FEC fraction."""
        space = server.create_space(f"Speaker quality {label}")
        page = context.new_page()
        join_stage(page, space["speaker_invite_url"], "Ada")
        wait_until(lambda: "Ada" in stage_names(server, space["id"]), 10, "Ada in state.json")
        time.sleep(SETTLE_S)
        before, started = speaker_counters(server, space["id"]), time.monotonic()
        time.sleep(MEASURE_S)
        after, elapsed_s = speaker_counters(server, space["id"]), time.monotonic() - started
        page.close()
        sent_bytes, packets, fec = (after[name] - before.get(name, 0.0) for name in COUNTERS)
        kbps = sent_bytes * 8 / elapsed_s / 1000
        fec_fraction = fec / packets if packets else 0.0
        print(  # noqa: T201 - the measured figures belong in the test's output
            f"{label}: {kbps:.1f} kbit/s Opus payload, {packets / elapsed_s:.1f} packets/s, "
            f"FEC (LBRR) in {fec_fraction:.0%} of {packets:.0f} packets"
        )
        return kbps, packets / elapsed_s, fec_fraction

    return run


def test_chromium_sends_the_bitrate_the_answer_asks_for_with_in_band_fec(
    web_server: Server, low_bitrate_server: Server, measure: Any
) -> None:
    kbps, packet_rate, fec_fraction = measure(web_server, "default 96 kbit/s")
    # Chromium's libopus runs constrained VBR: speech takes about 3/4 of the cap
    assert 55 <= kbps <= 110, f"{kbps:.1f} kbit/s with the default 96 kbit/s answer"
    # usedtx=0: a packet every 20 ms, through the pauses between the looped sentences too
    assert packet_rate >= 0.9 * PACKETS_PER_S, f"{packet_rate:.1f} packets/s"
    # useinbandfec=1 turns libopus's FEC on in Chromium's encoder, but libopus writes LBRR only
    # for the packet loss the sender expects (OPUS_SET_PACKET_LOSS_PERC), which WebRTC sets from
    # the loss the receiver's RTCP reports (smoothed over ~10 s); on loopback the origin reports
    # none. At 96 kbit/s libopus codes speech CELT-only (measured: TOC config 31 in every
    # packet), and CELT frames carry no LBRR at all; under reported loss libopus moves to SILK or
    # hybrid so that FEC can be sent. So a loss-free link shows no FEC: that is what is true.
    assert fec_fraction == 0.0, f"FEC in {fec_fraction:.0%} of packets without any loss"

    low_kbps, _, _ = measure(low_bitrate_server, "ROSTRA_SPEAKER_BITRATE_KBPS=32")
    assert 20 <= low_kbps <= 40, f"{low_kbps:.1f} kbit/s with a 32 kbit/s answer"
    assert low_kbps < 0.7 * kbps


# test instrumentation, not the page's: keep every stream the page opens, to read its settings
KEEP_OPENED_STREAMS = """
(() => {
  const devices = navigator.mediaDevices;
  const open = devices.getUserMedia.bind(devices);
  window.openedStreams = [];
  devices.getUserMedia = async (constraints) => {
    const stream = await open(constraints);
    window.openedStreams.push(stream);
    return stream;
  };
})();
"""
PROCESSING = ("echoCancellation", "noiseSuppression", "autoGainControl")


def microphone_settings_on_stage(context: Any, invite_url: str, *, screenshot: str = "") -> Any:
    """Open the speak page from the invite, join, and read what the microphone was opened with:
    (studio box checked on arrival, the track's processing settings)."""
    page = context.new_page()
    page.add_init_script(KEEP_OPENED_STREAMS)
    page.goto(invite_url)
    is_checked = page.is_checked("#studio")
    page.fill("#name", "Grace")
    if screenshot:
        page.screenshot(path=screenshot, full_page=True)
    page.click("#join")
    page.locator("#panel-live").wait_for(state="visible", timeout=20_000)
    settings = page.evaluate("window.openedStreams[0].getAudioTracks()[0].getSettings()")
    page.click("#leave")
    page.close()
    return is_checked, {name: settings.get(name) for name in PROCESSING}


def test_studio_invite_opens_the_microphone_without_processing(
    web_server: Server, context: Any
) -> None:
    space = web_server.create_space("Studio mode")
    # the host mints it on the host page, ticking studio mode
    host = context.new_page()
    host.goto(space["host_url"])
    host.locator("#status[data-status='live']").wait_for()
    host.fill("#invite-name", "Grace")
    host.check("#invite-studio")
    host.click("#invite-create")
    minted = host.locator("#invites .invite").first
    assert "studio mode" in minted.locator(".link-meta").inner_text()
    studio_url = minted.locator("input").input_value()
    assert studio_url.endswith("#studio"), studio_url
    host.close()

    # the host speaks in studio mode too: their own microphone opens unprocessed
    host = context.new_page()
    host.add_init_script(KEEP_OPENED_STREAMS)
    host.goto(space["host_url"])
    host.locator("#status[data-status='live']").wait_for()
    host.check("#host-studio")
    host.click("#join")
    host.locator("#panel-live").wait_for(state="visible", timeout=20_000)
    settings = host.evaluate("window.openedStreams[0].getAudioTracks()[0].getSettings()")
    assert {name: settings.get(name) for name in PROCESSING} == dict.fromkeys(PROCESSING, False)
    host.click("#leave")
    host.close()

    is_checked, settings = microphone_settings_on_stage(
        context, studio_url, screenshot="/tmp/speak-studio-invite.png"
    )
    assert is_checked
    assert settings == dict.fromkeys(PROCESSING, False), settings

    is_checked, settings = microphone_settings_on_stage(context, space["speaker_invite_url"])
    assert not is_checked
    assert settings == dict.fromkeys(PROCESSING, True), settings


def test_invite_api_takes_a_strict_studio_flag(web_server: Server) -> None:
    space = web_server.create_space("Studio invites")
    path = f"/api/v1/spaces/{space['id']}/invites"

    studio = web_server.api("POST", path, json={"studio": True, "name": "Grace"})
    plain = web_server.api("POST", path, json={"name": "Alan"})
    refused = web_server.api("POST", path, json={"studio": "yes"})

    assert studio.status_code == 201, studio.text
    assert studio.json()["studio"] is True
    assert studio.json()["speaker_invite_url"].endswith("#studio")
    assert plain.status_code == 201, plain.text
    assert plain.json()["studio"] is False
    assert "#" not in plain.json()["speaker_invite_url"]
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == "studio: Input should be a valid boolean", refused.json()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--speaker-bitrate-kbps", "300"], {}, "less than or equal to 256"),
        ([], {"ROSTRA_SPEAKER_BITRATE_KBPS": "8"}, "it must be 16 to 256 kbit/s"),
    ],
)
def test_speaker_bitrate_outside_its_bounds_stops_serve_with_a_clear_error(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    finished = subprocess.run(
        [str(ROSTRA), "serve", "--data", str(tmp_path / "data"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert finished.returncode == 2, finished.stdout
    assert message in " ".join(finished.stderr.replace("│", " ").split()), finished.stderr
    assert not (tmp_path / "data").exists()
