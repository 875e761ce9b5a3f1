"""ADTS framing: headers identical to FFmpeg's ADTS muxer, and the AAC table limits."""

from __future__ import annotations

import io
import subprocess

import av
import pytest

from rostra.media.adts import ADTS_HEADER_BYTES, adts_frame, adts_header

SAMPLE_RATE_HZ = 48_000
FRAME_LENGTH_MASK = 0x1FFF
FRAME_LENGTH_SHIFT = 5  # frame_length is followed by 11 + 2 bits, in header bytes 3-5


@pytest.fixture(scope="module")
def ffmpeg_adts() -> bytes:
    """Half a second of AAC-LC mono at 48 kHz, as FFmpeg's own ADTS muxer writes it."""
    command = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i"]
    command += [f"sine=frequency=440:duration=0.5:sample_rate={SAMPLE_RATE_HZ}"]
    command += ["-ac", "1", "-c:a", "aac", "-b:a", "96k", "-f", "adts", "-"]
    return subprocess.run(command, capture_output=True, check=True, timeout=30).stdout


def _split_frames(stream: bytes) -> list[tuple[bytes, bytes]]:
    frames = []
    offset = 0
    while offset < len(stream):
        length_field = int.from_bytes(stream[offset + 3 : offset + 6], "big")
        frame_length = (length_field >> FRAME_LENGTH_SHIFT) & FRAME_LENGTH_MASK
        frame = stream[offset : offset + frame_length]
        frames.append((frame[:ADTS_HEADER_BYTES], frame[ADTS_HEADER_BYTES:]))
        offset += frame_length
    return frames


def test_headers_match_ffmpeg_adts_muxer_for_every_frame(ffmpeg_adts: bytes) -> None:
    frames = _split_frames(ffmpeg_adts)

    assert len(frames) > 1
    for header, payload in frames:
        ours = adts_header(len(payload), sample_rate_hz=SAMPLE_RATE_HZ, channels=1)
        assert ours == header


def test_reframed_stream_decodes_as_mono_aac_at_the_sample_rate(ffmpeg_adts: bytes) -> None:
    stream = b"".join(
        adts_frame(payload, sample_rate_hz=SAMPLE_RATE_HZ, channels=1)
        for _, payload in _split_frames(ffmpeg_adts)
    )

    with av.open(io.BytesIO(stream), "r", format="aac") as container:
        audio = container.streams.audio[0]
        decoded_samples = sum(frame.samples for frame in container.decode(audio))
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == SAMPLE_RATE_HZ
        assert audio.codec_context.channels == 1
    assert decoded_samples >= SAMPLE_RATE_HZ // 2


def test_stereo_44k1_header_carries_its_index_and_channel_configuration() -> None:
    header = adts_header(100, sample_rate_hz=44_100, channels=2)

    assert header == bytes.fromhex("fff150800d7ffc")


def test_sample_rate_outside_the_adts_table_is_rejected() -> None:
    with pytest.raises(ValueError, match="50000 Hz"):
        adts_header(100, sample_rate_hz=50_000, channels=1)


def test_payload_too_long_for_the_13_bit_frame_length_is_rejected() -> None:
    with pytest.raises(ValueError, match="does not fit ADTS"):
        adts_header(8_185, sample_rate_hz=SAMPLE_RATE_HZ, channels=1)
