"""CMAF fMP4 of AAC-LC and of Opus: structure, and decoding by PyAV, ffprobe and FFmpeg's HLS
demuxer."""

from __future__ import annotations

import io
import json
import math
import struct
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from rostra.media.encode import OpusEncoder
from rostra.media.fmp4 import (
    audio_specific_config,
    init_segment,
    media_segment,
    opus_init_segment,
)
from rostra.media.hls import SegmentRef, media_playlist
from rostra.media.hls.rendition import frames_before_segment

SAMPLE_RATE_HZ = 48_000
AAC_FRAME_SAMPLES = 1024
FRAMES_PER_SEGMENT = 48
SEGMENT_SAMPLES = FRAMES_PER_SEGMENT * AAC_FRAME_SAMPLES
SEGMENT_DURATION_S = SEGMENT_SAMPLES / SAMPLE_RATE_HZ
SOURCE_DURATION_S = 3.0
TONE_HZ = 440.0
TONE_AMPLITUDE = 0.5
AAC_BITRATE_BPS = 96_000
LEVEL_TOLERANCE_DB = 1.0
EDGE_S = 0.1  # skip the encoder's priming and tail when judging the tone
BOX_HEADER_BYTES = 8
RIFF_CHUNK_HEADER_BYTES = 8

Signal = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Packaged:
    init: bytes
    segments: list[bytes]
    source: Signal


def _tone() -> Signal:
    times_s = np.arange(round(SOURCE_DURATION_S * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    return (TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * times_s)).astype(np.float32)


def _encode_aac(source: Signal) -> list[bytes]:
    encoder = av.CodecContext.create("aac", "w")
    encoder.sample_rate = SAMPLE_RATE_HZ
    encoder.layout = "mono"
    encoder.format = "fltp"
    encoder.bit_rate = AAC_BITRATE_BPS
    encoder.time_base = Fraction(1, SAMPLE_RATE_HZ)
    encoder.open()
    assert encoder.frame_size == AAC_FRAME_SAMPLES
    packets = []
    for start in range(0, len(source), AAC_FRAME_SAMPLES):
        chunk = source[start : start + AAC_FRAME_SAMPLES]
        chunk = np.pad(chunk, (0, AAC_FRAME_SAMPLES - len(chunk)))
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.pts = start
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    return [bytes(packet) for packet in packets]


@pytest.fixture(scope="module")
def packaged() -> Packaged:
    source = _tone()
    frames = _encode_aac(source)
    init = init_segment(
        audio_specific_config=audio_specific_config(SAMPLE_RATE_HZ, 1),
        sample_rate_hz=SAMPLE_RATE_HZ,
        channels=1,
    )
    segments = [
        media_segment(
            sequence_number=index + 1,
            base_media_decode_time=index * SEGMENT_SAMPLES,
            samples=frames[start : start + FRAMES_PER_SEGMENT],
            sample_duration=AAC_FRAME_SAMPLES,
        )
        for index, start in enumerate(range(0, len(frames), FRAMES_PER_SEGMENT))
    ]
    return Packaged(init, segments, source)


@dataclass(frozen=True, slots=True)
class Decoded:
    codec: str
    sample_rate_hz: int
    channels: int
    first_pts: int
    pcm: Signal


def _decode(path: Path) -> Decoded:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = list(container.decode(stream))
        context = stream.codec_context
        assert all(frame.time_base == Fraction(1, SAMPLE_RATE_HZ) for frame in frames)
        pts = [frame.pts for frame in frames]
        first_pts = pts[0]
        assert first_pts is not None
        # tfdt and the sample durations put every frame right after the previous one.
        assert pts == [first_pts + index * AAC_FRAME_SAMPLES for index in range(len(frames))]
        pcm = np.concatenate([frame.to_ndarray()[0] for frame in frames]).astype(np.float32)
        return Decoded(context.name, context.sample_rate, context.channels, first_pts, pcm)


def _dominant_hz(pcm: Signal) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / SAMPLE_RATE_HZ)[np.argmax(spectrum)])


def _rms_db(pcm: Signal) -> float:
    return 20 * math.log10(float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))))


def _assert_is_the_tone(pcm: Signal, source: Signal) -> None:
    edge = round(EDGE_S * SAMPLE_RATE_HZ)
    middle = pcm[edge:-edge]
    assert _dominant_hz(middle) == pytest.approx(TONE_HZ, abs=SAMPLE_RATE_HZ / len(middle))
    assert _rms_db(middle) == pytest.approx(_rms_db(source), abs=LEVEL_TOLERANCE_DB)


def _boxes(data: bytes) -> list[tuple[bytes, int, bytes]]:
    """(type, offset, body) of each top-level box."""
    boxes = []
    offset = 0
    while offset < len(data):
        size, box_type = struct.unpack_from(">I4s", data, offset)
        boxes.append((box_type, offset, data[offset + BOX_HEADER_BYTES : offset + size]))
        offset += size
    return boxes


def test_audio_specific_config_is_aac_lc_48k_mono() -> None:
    # object type 2, frequency index 3, channel configuration 1, 1024-sample frames
    assert audio_specific_config(SAMPLE_RATE_HZ, 1) == bytes.fromhex("1188")
    assert audio_specific_config(44_100, 2) == bytes.fromhex("1210")


def test_init_segment_is_ftyp_then_moov_with_the_track_timescale(packaged: Packaged) -> None:
    types = [box_type for box_type, _, _ in _boxes(packaged.init)]
    ftyp_body = _boxes(packaged.init)[0][2]

    assert types == [b"ftyp", b"moov"]
    assert ftyp_body[:4] == b"iso6"
    assert b"cmfc" in ftyp_body[8:]
    mdhd = packaged.init.index(b"mdhd")
    assert struct.unpack_from(">I", packaged.init, mdhd + 16)[0] == SAMPLE_RATE_HZ


def test_trun_data_offset_points_at_the_first_sample_in_mdat() -> None:
    samples = [b"\x01" * 10, b"\x02" * 300, b"\x03"]
    segment = media_segment(
        sequence_number=5, base_media_decode_time=0, samples=samples, sample_duration=1024
    )
    boxes = _boxes(segment)
    moof_offset = boxes[1][1]
    trun = segment.index(b"trun")
    sample_count, data_offset = struct.unpack_from(">Ii", segment, trun + 8)
    sizes = struct.unpack_from(f">{sample_count}I", segment, trun + 16)

    assert [box_type for box_type, _, _ in boxes] == [b"styp", b"moof", b"mdat"]
    assert list(sizes) == [len(sample) for sample in samples]
    assert segment[moof_offset + data_offset :] == b"".join(samples)


def test_concatenated_segments_decode_to_the_source_tone(
    packaged: Packaged, tmp_path: Path
) -> None:
    path = tmp_path / "program.mp4"
    path.write_bytes(packaged.init + b"".join(packaged.segments))

    decoded = _decode(path)

    assert (decoded.codec, decoded.sample_rate_hz, decoded.channels) == ("aac", SAMPLE_RATE_HZ, 1)
    assert decoded.first_pts == 0
    duration_s = len(decoded.pcm) / SAMPLE_RATE_HZ
    assert duration_s == pytest.approx(SOURCE_DURATION_S, abs=SEGMENT_DURATION_S)
    _assert_is_the_tone(decoded.pcm, packaged.source)


def test_ffprobe_reads_codec_rate_channels_and_duration(packaged: Packaged, tmp_path: Path) -> None:
    path = tmp_path / "program.mp4"
    path.write_bytes(packaged.init + b"".join(packaged.segments))
    command = ["ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams", str(path)]

    probe = json.loads(subprocess.run(command, capture_output=True, check=True, timeout=30).stdout)

    (stream,) = probe["streams"]
    assert stream["codec_name"] == "aac"
    assert stream["profile"] == "LC"
    assert int(stream["sample_rate"]) == SAMPLE_RATE_HZ
    assert stream["channels"] == 1
    duration_s = float(probe["format"]["duration"])
    assert duration_s == pytest.approx(SOURCE_DURATION_S, abs=SEGMENT_DURATION_S)


def test_listener_joining_mid_stream_decodes_a_later_segment_at_its_decode_time(
    packaged: Packaged, tmp_path: Path
) -> None:
    later = 1
    path = tmp_path / "joined.mp4"
    path.write_bytes(packaged.init + packaged.segments[later])

    decoded = _decode(path)

    assert decoded.first_pts == later * SEGMENT_SAMPLES
    assert len(decoded.pcm) == SEGMENT_SAMPLES
    _assert_is_the_tone(decoded.pcm, packaged.source)


def _wav_pcm(data: bytes) -> tuple[int, int, Signal]:
    """(sample rate, channels, samples) of 16-bit PCM WAV bytes, as FFmpeg writes to a pipe."""
    fmt = data.index(b"fmt ") + RIFF_CHUNK_HEADER_BYTES
    _, channels, sample_rate_hz = struct.unpack_from("<HHI", data, fmt)
    pcm = np.frombuffer(data[data.index(b"data") + RIFF_CHUNK_HEADER_BYTES :], dtype="<i2")
    return sample_rate_hz, channels, (pcm / np.float32(np.iinfo(np.int16).max)).astype(np.float32)


def test_hls_folder_with_vod_playlist_plays_through_ffmpeg(
    packaged: Packaged, tmp_path: Path
) -> None:
    (tmp_path / "init.mp4").write_bytes(packaged.init)
    refs = []
    for number, segment in enumerate(packaged.segments):
        (tmp_path / f"seg_{number}.m4s").write_bytes(segment)
        samples = struct.unpack_from(">I", segment, segment.index(b"trun") + 8)[0]
        duration_s = samples * AAC_FRAME_SAMPLES / SAMPLE_RATE_HZ
        refs.append(SegmentRef(f"seg_{number}.m4s", duration_s, number))
    playlist = media_playlist(
        segments=refs, target_duration_s=1, init_uri="init.mp4", is_ended=True, is_vod=True
    )
    (tmp_path / "playlist.m3u8").write_text(playlist)
    command = ["ffmpeg", "-v", "error", "-i", str(tmp_path / "playlist.m3u8"), "-f", "wav", "-"]

    result = subprocess.run(command, capture_output=True, check=True, timeout=30)

    assert result.stderr == b""
    sample_rate_hz, channels, pcm = _wav_pcm(result.stdout)
    assert (sample_rate_hz, channels) == (SAMPLE_RATE_HZ, 1)
    assert len(pcm) / SAMPLE_RATE_HZ == pytest.approx(SOURCE_DURATION_S, abs=SEGMENT_DURATION_S)
    _assert_is_the_tone(pcm, packaged.source)


def test_sample_rate_that_the_mp4a_entry_cannot_hold_is_rejected() -> None:
    with pytest.raises(ValueError, match="96000 Hz"):
        init_segment(
            audio_specific_config=audio_specific_config(96_000, 1),
            sample_rate_hz=96_000,
            channels=1,
        )


def test_empty_segment_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        media_segment(sequence_number=1, base_media_decode_time=0, samples=[], sample_duration=1)


# --- Opus in fMP4 ("Encapsulation of Opus in ISO Base Media File Format") -------------------
OPUS_FRAME_SAMPLES = 960
OPUS_PRE_SKIP = 312


@pytest.fixture(scope="module")
def opus_packaged() -> Packaged:
    """The tone through Rostra's Opus encoder, cut where the packager cuts Opus segments."""
    source = _tone()
    encoder = OpusEncoder()
    packets = []
    for start in range(0, len(source), OPUS_FRAME_SAMPLES):
        packets += encoder.encode(source[start : start + OPUS_FRAME_SAMPLES])
    assert all(packet.duration_samples == OPUS_FRAME_SAMPLES for packet in packets)
    # the flushed packet is one more 20 ms frame (its duration says how much of it is signal)
    packets += encoder.flush()
    frames = [packet.data for packet in packets]
    init = opus_init_segment(channels=1, pre_skip=OPUS_PRE_SKIP, input_sample_rate_hz=48_000)
    segments = []
    for index in range(math.ceil(len(frames) / 51.2)):
        first = frames_before_segment(index, OPUS_FRAME_SAMPLES)
        last = min(frames_before_segment(index + 1, OPUS_FRAME_SAMPLES), len(frames))
        segments.append(
            media_segment(
                sequence_number=index + 1,
                base_media_decode_time=first * OPUS_FRAME_SAMPLES,
                samples=frames[first:last],
                sample_duration=OPUS_FRAME_SAMPLES,
            )
        )
    return Packaged(init, segments, source)


def test_opus_init_segment_has_an_opus_sample_entry_with_its_dops_box() -> None:
    init = opus_init_segment(channels=1, pre_skip=OPUS_PRE_SKIP, input_sample_rate_hz=48_000)
    # AudioSampleEntry: reserved, data reference 1, reserved, 1 channel, 16 bits, 48 kHz (16.16)
    entry = init.index(b"Opus") - 4
    assert init[entry : entry + 36] == bytes.fromhex(
        # 8 header + 28 AudioSampleEntry bytes + 19 of dOps
        "00000037" + b"Opus".hex() + "000000000000" + "0001" + "0000000000000000" + "0001"
        "0010" + "0000" + "0000" + "bb800000"
    )
    # dOps: version 0, 1 output channel, pre-skip 312, input 48000 Hz, gain 0, family 0
    assert init[entry + 36 :][:19] == bytes.fromhex(
        "00000013" + b"dOps".hex() + "00" + "01" + "0138" + "0000bb80" + "0000" + "00"
    )
    # mdhd: the media timescale is 48 kHz (version 0: created, modified, then the scale)
    mdhd = init.index(b"mdhd")
    assert struct.unpack_from(">I", init, mdhd + 4 + 4 + 8)[0] == 48_000
    assert [box_type for box_type, _, _ in _boxes(init)] == [b"ftyp", b"moov"]


def test_opus_segments_decode_with_pyav_and_ffprobe_to_the_tone_and_its_duration(
    opus_packaged: Packaged, tmp_path: Path
) -> None:
    path = tmp_path / "opus.mp4"
    path.write_bytes(opus_packaged.init + b"".join(opus_packaged.segments))
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = list(container.decode(stream))
        assert stream.codec_context.name == "opus"
        assert stream.codec_context.sample_rate == 48_000
        assert stream.codec_context.channels == 1
    pts = [frame.pts for frame in frames]
    # tfdt and 960-sample durations put every packet right after the previous one, at 48 kHz;
    # the decoder drops the pre-skip that dOps names from the first
    assert pts == [OPUS_PRE_SKIP] + [index * OPUS_FRAME_SAMPLES for index in range(1, len(pts))]
    assert frames[0].samples == OPUS_FRAME_SAMPLES - OPUS_PRE_SKIP
    pcm = np.concatenate([frame.to_ndarray()[0] for frame in frames]).astype(np.float32)
    _assert_is_the_tone(pcm, opus_packaged.source)
    probed = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
    )
    assert probed["streams"][0]["codec_name"] == "opus"
    packet_count = len(pts)
    expected_s = packet_count * OPUS_FRAME_SAMPLES / 48_000
    assert float(probed["format"]["duration"]) == pytest.approx(expected_s, abs=0.021)


def test_a_later_opus_segment_decodes_alone_at_its_decode_time(opus_packaged: Packaged) -> None:
    """A listener joining mid-stream: init plus segment 1 only (frames 52 to 102: it starts at
    1.024 s rounded up to a 20 ms frame); the decoder warms up over the pre-skip, as at the
    start."""
    with av.open(io.BytesIO(opus_packaged.init + opus_packaged.segments[1])) as container:
        frames = list(container.decode(audio=0))
    start = frames_before_segment(1, OPUS_FRAME_SAMPLES) * OPUS_FRAME_SAMPLES
    assert start == 52 * OPUS_FRAME_SAMPLES
    assert frames[0].pts == start + OPUS_PRE_SKIP
    assert sum(frame.samples for frame in frames) == 51 * OPUS_FRAME_SAMPLES - OPUS_PRE_SKIP


def test_opus_init_segment_refuses_what_mapping_family_0_cannot_carry() -> None:
    with pytest.raises(ValueError, match="mapping family 0"):
        opus_init_segment(channels=3, pre_skip=OPUS_PRE_SKIP, input_sample_rate_hz=48_000)
    with pytest.raises(ValueError, match="pre-skip"):
        opus_init_segment(channels=1, pre_skip=70_000, input_sample_rate_hz=48_000)
