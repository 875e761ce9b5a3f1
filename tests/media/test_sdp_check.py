"""The WHIP offer check: every malformed offer named in a precise 400 before aiortc sees it, and no
mutation of a good offer gives anything but an answer or `InvalidSdp` at the origin's boundary."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rostra.clock import ManualClock
from rostra.errors import InvalidSdp
from rostra.media.ice import restrict_ice_host_addresses
from rostra.media.origin import Origin, SeatClaim
from rostra.media.sdp_check import check_offer

# an offer as aiortc (tests/whip_client.py) makes it; browsers and OBS make the same shape
GOOD_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 4004947883 4004947883 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic:WMS *",
        "m=audio 45664 UDP/TLS/RTP/SAVPF 96 9 0 8",
        "c=IN IP4 127.0.0.1",
        "a=sendrecv",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=mid:0",
        "a=msid:2df94c5c-d1ce-4c6e 61289358-b884-425c",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=rtcp-mux",
        "a=ssrc:1788414985 cname:ae530185-98e8-4f1a-8820-6224aaaef094",
        "a=rtpmap:96 opus/48000/2",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=candidate:16572de626da4e5384a0ce2d0d93678a 1 udp 2130706431 127.0.0.1 45664 typ host",
        "a=end-of-candidates",
        "a=ice-ufrag:RoND",
        "a=ice-pwd:4qfr9G94e4yhDu8EsNmXg9",
        "a=fingerprint:sha-256 B2:61:62:0E:56:EE:2F:8D:C4:02:0C:51:5A:D2:89:E4:7C:91:FD:40:53:B9:"
        "22:D7:70:EB:82:79:61:75:3B:E4",
        "a=setup:actpass",
        "",
    ]
)
# FFmpeg 8's WHIP muxer (libavformat/whip.c): DTLS server (`setup:passive`, where RFC 8842
# §5.2 asks an offerer for `actpass`), no candidates (it is the ICE controlling agent and needs
# the answer's), sendonly, a stereo Opus payload type of its own
FFMPEG_OFFER = "\r\n".join(
    [
        "v=0",
        "o=FFmpeg 4489045141692799359 2 IN IP4 127.0.0.1",
        "s=FFmpegPublishSession",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=ice-ufrag:2d5aed07",
        "a=ice-pwd:e395920040fd47a79688e083d71a5c50",
        "a=fingerprint:sha-256 69:B1:E2:84:45:10:BA:0F:06:68:3D:71:12:B4:90:30:33:85:41:79:60:"
        "B8:4B:BD:A0:B6:7D:D1:5B:43:AB:72",
        "a=setup:passive",
        "a=mid:0",
        "a=sendonly",
        "a=msid:FFmpeg audio",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=ssrc:2181876550 cname:FFmpeg",
        "a=ssrc:2181876550 msid:FFmpeg audio",
        "",
    ]
)
AUDIO_SECTION = GOOD_OFFER[GOOD_OFFER.index("m=audio") :]
VIDEO_SECTION = (
    "m=video 9 UDP/TLS/RTP/SAVPF 97\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=rtpmap:97 VP8/90000\r\n"
)


def without(offer: str, prefix: str) -> str:
    return "".join(line for line in offer.splitlines(keepends=True) if not line.startswith(prefix))


def test_a_good_offer_passes() -> None:
    check_offer(GOOD_OFFER)
    check_offer(GOOD_OFFER.replace("\r\n", "\n"))  # bare LF, as some tools write it
    check_offer(GOOD_OFFER + VIDEO_SECTION)  # OBS sends its video after its audio


@pytest.mark.parametrize(
    ("offer", "detail"),
    [
        pytest.param(
            GOOD_OFFER.replace("m=audio 45664 ", "m=audio "),
            "line 7: 'm=audio UDP/TLS/RTP/SAVPF 96 9 0 8' has no port",
            id="m=audio without a port",
        ),
        pytest.param(
            GOOD_OFFER.replace("m=audio 45664", "m=audio 4x664"),
            "line 7: the media port '4x664' is not a number",
            id="non-numeric port",
        ),
        pytest.param(
            GOOD_OFFER.replace("m=audio 45664", "m=audio 70000"),
            "line 7: the media port 70000 is outside 0..65535",
            id="port out of range",
        ),
        pytest.param(
            GOOD_OFFER.replace("m=audio", VIDEO_SECTION.replace("a=mid:1", "a=mid:v") + "m=audio"),
            "the first media section (line 7) is video",
            id="video first",
        ),
        pytest.param(
            GOOD_OFFER.replace(" 127.0.0.1 45664 typ host", " 127.0.0.1"),
            "line 21: 'a=candidate:16572de626da4e5384a0ce2d0d93678a 1 udp 2' is truncated",
            id="truncated candidate",
        ),
        pytest.param(
            GOOD_OFFER.replace("45664 typ host", "45664 typ host rport"),
            "line 21: candidate extension 'rport' has no value",
            id="candidate extension without a value",
        ),
        pytest.param(
            GOOD_OFFER.replace("SAVPF 96 9", "SAVPF 99999 9"),
            "line 7: payload type 99999 is outside 0..127",
            id="payload type 99999 in the m-line",
        ),
        pytest.param(
            GOOD_OFFER.replace("a=rtpmap:96 opus", "a=rtpmap:99999 opus"),
            "line 17: a=rtpmap payload type 99999 is outside 0..127",
            id="payload type 99999 in an rtpmap",
        ),
        pytest.param(
            GOOD_OFFER + AUDIO_SECTION,
            "the SDP offer has 2 audio sections (lines 7, 27)",
            id="duplicated media section",
        ),
        pytest.param(
            GOOD_OFFER + AUDIO_SECTION.replace("m=audio", "m=video").replace("opus", "VP8"),
            "media id(s) 0 name more than one section",
            id="duplicated media id",
        ),
        pytest.param(
            GOOD_OFFER.replace("BUNDLE 0", "BUNDLE 0 7"),
            "a=group:BUNDLE 0 7 names unknown media id 7",
            id="bundle names an unknown section",
        ),
        pytest.param(
            GOOD_OFFER.replace("opus/48000/2", "speex/16000"),
            "the audio section (line 7) offers no Opus (opus/48000)",
            id="no opus",
        ),
        pytest.param(
            without(GOOD_OFFER, "a=ice-pwd"),
            "the SDP offer has no a=ice-pwd for its audio section",
            id="no ice-pwd",
        ),
        pytest.param(
            without(GOOD_OFFER, "a=fingerprint"),
            "the SDP offer has no a=fingerprint for its audio section",
            id="no fingerprint",
        ),
        pytest.param(
            GOOD_OFFER.replace("sha-256 B2:61", "sha-256 Z2:61"),
            "line 25: a=fingerprint 'sha-256 Z2:61:62:0E:56:EE:2F:8D:C4:02:0C' is not",
            id="malformed fingerprint",
        ),
        pytest.param(
            GOOD_OFFER.replace("a=setup:actpass", "a=setup:sideways"),
            "line 26: a=setup 'sideways' is not a DTLS role",
            id="unknown DTLS role",
        ),
        pytest.param(
            GOOD_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4"),
            "line 8: 'c=IN IP4' is not 'IN IP4|IP6 ADDRESS'",
            id="connection without an address",
        ),
        pytest.param(
            GOOD_OFFER.replace("a=ssrc:1788414985", "a=ssrc:99999999999"),
            "line 16: a=ssrc 99999999999 is outside 0..4294967295",
            id="ssrc past 32 bits",
        ),
        pytest.param(
            GOOD_OFFER.replace("a=sendrecv", "sendrecv"),
            "line 9: 'sendrecv' is not of the form 'x=value'",
            id="a line without its type",
        ),
        pytest.param(
            GOOD_OFFER.replace("s=-", "s=\x00"),
            "the SDP offer holds a control character",
            id="NUL",
        ),
        pytest.param("hello", "it must start with 'v=0'", id="not SDP"),
        pytest.param(
            GOOD_OFFER[: GOOD_OFFER.index("m=audio")],
            "the SDP offer has no media section: it needs one 'm=audio'",
            id="no media",
        ),
    ],
)
def test_malformed_offer_is_named_in_its_error(offer: str, detail: str) -> None:
    with pytest.raises(InvalidSdp) as raised:
        check_offer(offer)
    assert detail in raised.value.detail


LINES = GOOD_OFFER.split("\r\n")[:-1]
TOKEN = st.one_of(
    st.sampled_from(["", " ", "0", "-1", "99999", "4294967296", "x", ":", "/", "typ", "a=", "m="]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
)


@st.composite
def mutated_offer(draw: st.DrawFn) -> str:
    """A good offer after one to three edits of the kinds a broken client or an attacker makes."""
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        edit = draw(st.sampled_from(["delete", "duplicate", "swap", "truncate", "token", "insert"]))
        if edit == "delete" and len(lines) > 1:
            del lines[at]
        elif edit == "duplicate":
            lines.insert(at, lines[at])
        elif edit == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif edit == "truncate":
            lines[at] = lines[at][: draw(st.integers(0, len(lines[at])))]
        elif edit == "token":
            words = lines[at].split(" ")
            index = draw(st.integers(0, len(words) - 1))
            words[index] = draw(TOKEN)
            lines[at] = " ".join(words)
        else:
            lines.insert(at, draw(st.sampled_from(["m=", "a=", "c="])) + draw(TOKEN))
    return "\r\n".join(lines) + "\r\n"


@settings(max_examples=600, deadline=None)
@given(mutated_offer())
def test_the_check_raises_nothing_but_invalid_sdp(offer: str) -> None:
    try:
        check_offer(offer)
    except InvalidSdp as error:
        detail = error.detail
    else:
        detail = "passed"
    assert detail


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Origin:
    root: Path = tmp_path_factory.mktemp("origin")
    return Origin(
        root, clock=ManualClock(), is_self_clocked=False, ice_host_addresses=["127.0.0.1"]
    )


async def _answer_or_invalid(origin: Origin, offer: str) -> str:
    try:
        member, answer = await origin.connect(
            "sdpfuzz00001", offer, name="", claim=SeatClaim(role="host")
        )
    except InvalidSdp as error:
        return error.detail
    await origin.disconnect("sdpfuzz00001", member.id)
    assert answer.startswith("v=0")
    return "answer"


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutated_offer())
def test_a_mutated_offer_gets_an_answer_or_invalid_sdp_at_the_origin(
    origin: Origin, offer: str
) -> None:
    """Real aiortc behind the check: whatever passes it, the connect boundary never lets an
    exception other than InvalidSdp out (that would be a 500)."""
    outcome = asyncio.run(asyncio.wait_for(_answer_or_invalid(origin, offer), 30))
    event("answered" if outcome == "answer" else "refused")
    assert outcome


async def test_the_good_offer_gets_an_answer_at_the_origin(origin: Origin) -> None:
    assert await _answer_or_invalid(origin, GOOD_OFFER) == "answer"
    assert origin.stage("sdpfuzz00001") == []


def test_ffmpeg_whip_offer_is_answered_as_the_dtls_client_with_candidates(origin: Origin) -> None:
    """FFmpeg's muxer offers to be the DTLS server and brings no candidate: the answer takes the
    client's side (RFC 8842 §5.3) and gives the candidates FFmpeg's ICE checks go to."""
    check_offer(FFMPEG_OFFER)

    async def answer() -> str:
        member, sdp = await origin.connect(
            "sdpffmpeg001", FFMPEG_OFFER, name="", claim=SeatClaim(role="host")
        )
        await origin.disconnect("sdpffmpeg001", member.id)
        return sdp

    sdp = asyncio.run(asyncio.wait_for(answer(), 30))
    assert "a=setup:active" in sdp.splitlines()
    assert any(line.startswith("a=candidate:") for line in sdp.splitlines())
    assert "a=rtpmap:111 opus/48000/2" in sdp.splitlines()


def _sections(sdp: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    kind = ""
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
        if kind:
            sections.setdefault(kind, []).append(line)
    return sections


def test_video_offered_beside_the_voice_is_answered_inactive(origin: Origin) -> None:
    """OBS's WHIP output always offers its video after its audio: the voice is received, the
    video is declined, so the origin never receives nor decodes it."""

    async def answer() -> str:
        restrict_ice_host_addresses(["127.0.0.1"])
        broadcaster = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        broadcaster.addTransceiver("audio", direction="sendonly")
        broadcaster.addTransceiver("video", direction="sendonly")
        await broadcaster.setLocalDescription(await broadcaster.createOffer())
        try:
            member, sdp = await origin.connect(
                "sdpobsvideo1",
                broadcaster.localDescription.sdp,
                name="",
                claim=SeatClaim(role="host"),
            )
            await origin.disconnect("sdpobsvideo1", member.id)
        finally:
            await broadcaster.close()
        return sdp

    sections = _sections(asyncio.run(asyncio.wait_for(answer(), 30)))
    assert "a=inactive" in sections["video"]
    assert {"a=recvonly", "a=sendrecv"} & set(sections["audio"])
