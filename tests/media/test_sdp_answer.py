"""The WHIP answer's Opus parameters: exact text out for typical and odd answers."""

from __future__ import annotations

import pytest

from rostra.media.sdp_answer import ask_for_full_band_opus

WANTED_64K = (
    "minptime=10;useinbandfec=1;usedtx=0;maxaveragebitrate=64000;maxplaybackrate=48000;"
    "stereo=0;sprop-stereo=0"
)

SESSION = ["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0"]


def _sdp(lines: list[str], end: str = "\r\n") -> str:
    return end.join(lines) + end


def test_aiortc_answer_fmtp_is_rewritten_with_crlf_kept() -> None:
    answer = _sdp(
        [
            *SESSION,
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=mid:0",
            "a=rtpmap:111 opus/48000/2",
            "a=fmtp:111 minptime=10;useinbandfec=1",
        ]
    )
    assert ask_for_full_band_opus(answer, bitrate_bps=64_000) == _sdp(
        [
            *SESSION,
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=mid:0",
            "a=rtpmap:111 opus/48000/2",
            f"a=fmtp:111 {WANTED_64K}",
        ]
    )


def test_contradicting_parameters_are_replaced_and_others_kept() -> None:
    answer = _sdp(
        [
            *SESSION,
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 0",
            "a=rtpmap:111 OPUS/48000/2",
            "a=fmtp:111 stereo=1; usedtx=1;cbr=1;maxaveragebitrate=20000",
            "a=rtpmap:0 PCMU/8000",
        ],
        "\n",
    )
    assert ask_for_full_band_opus(answer, bitrate_bps=32_000) == _sdp(
        [
            *SESSION,
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 0",
            "a=rtpmap:111 OPUS/48000/2",
            "a=fmtp:111 minptime=10;useinbandfec=1;usedtx=0;maxaveragebitrate=32000;"
            "maxplaybackrate=48000;stereo=0;sprop-stereo=0;cbr=1",
            "a=rtpmap:0 PCMU/8000",
        ],
        "\n",
    )


def test_missing_fmtp_line_is_added_after_the_rtpmap() -> None:
    answer = _sdp(
        [*SESSION, "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=rtpmap:111 opus/48000/2", "a=sendrecv"]
    )
    assert ask_for_full_band_opus(answer, bitrate_bps=64_000) == _sdp(
        [
            *SESSION,
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=rtpmap:111 opus/48000/2",
            f"a=fmtp:111 {WANTED_64K}",
            "a=sendrecv",
        ]
    )


def test_every_audio_section_is_rewritten_and_other_sections_left_alone() -> None:
    answer = _sdp(
        [
            *SESSION,
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=rtpmap:111 opus/48000/2",
            "a=fmtp:111 minptime=10",
            "m=video 9 UDP/TLS/RTP/SAVPF 111",
            "a=rtpmap:111 VP8/90000",
            "a=fmtp:111 max-fr=30",
            "m=audio 9 UDP/TLS/RTP/SAVPF 109",
            "a=rtpmap:109 opus/48000/2",
        ]
    )
    assert ask_for_full_band_opus(answer, bitrate_bps=64_000) == _sdp(
        [
            *SESSION,
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=rtpmap:111 opus/48000/2",
            f"a=fmtp:111 {WANTED_64K}",
            "m=video 9 UDP/TLS/RTP/SAVPF 111",
            "a=rtpmap:111 VP8/90000",
            "a=fmtp:111 max-fr=30",
            "m=audio 9 UDP/TLS/RTP/SAVPF 109",
            "a=rtpmap:109 opus/48000/2",
            f"a=fmtp:109 {WANTED_64K}",
        ]
    )


def test_audio_section_without_opus_and_a_missing_final_line_end_are_kept() -> None:
    answer = "\r\n".join(
        [*SESSION, "m=audio 9 UDP/TLS/RTP/SAVPF 0", "a=rtpmap:0 PCMU/8000", "a=fmtp:0 x=1"]
    )
    assert ask_for_full_band_opus(answer, bitrate_bps=64_000) == answer


def test_bitrate_outside_rfc_7587_is_refused() -> None:
    with pytest.raises(ValueError, match="510000"):
        ask_for_full_band_opus(_sdp(SESSION), bitrate_bps=600_000)
