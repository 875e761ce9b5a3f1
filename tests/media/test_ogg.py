"""Ogg Opus pages: layout and CRC against FFmpeg's muxer; decoding of whole and joined streams."""

from __future__ import annotations

import itertools
import struct
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from rostra.media.ogg import OggPager, header_pages, ogg_crc32, opus_head, opus_tags

SAMPLE_RATE_HZ = 48_000
OPUS_FRAME_SAMPLES = 960  # 20 ms
OPUS_BITRATE_BPS = 96_000
SOURCE_DURATION_S = 3.0
SWEEP_START_HZ = 200.0
SWEEP_END_HZ = 2_000.0
SWEEP_AMPLITUDE = 0.5
PACKETS_PER_PAGE_CYCLE = (1, 2)
JOIN_PAGE = 40
MIN_CORRELATION = 0.9
MAX_LAG_SAMPLES = 480
SERIAL_NUMBER = 0x5EED_0001
VENDOR = "rostra"
PAGE_HEADER = struct.Struct("<4sBBqIIIB")
CRC_OFFSET = 22
HEADER_TYPE_BOS = 0x02
HEADER_TYPE_EOS = 0x04
RIFF_CHUNK_HEADER_BYTES = 8
LACING_MAX = 255

Signal = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Page:
    header_type: int
    granule_position: int
    serial_number: int
    sequence_number: int
    crc: int
    lacing: bytes
    raw: bytes


def _parse_pages(data: bytes) -> list[Page]:
    pages = []
    offset = 0
    while offset < len(data):
        fields = PAGE_HEADER.unpack_from(data, offset)
        assert fields[0] == b"OggS"
        lacing_start = offset + PAGE_HEADER.size
        lacing = data[lacing_start : lacing_start + fields[7]]
        end = lacing_start + len(lacing) + sum(lacing)
        pages.append(
            Page(fields[2], fields[3], fields[4], fields[5], fields[6], lacing, data[offset:end])
        )
        offset = end
    return pages


def _packets(page: Page) -> list[bytes]:
    """The whole packets on a page that holds no continued packet."""
    body = page.raw[PAGE_HEADER.size + len(page.lacing) :]
    packets, start, length = [], 0, 0
    for value in page.lacing:
        length += value
        if value < LACING_MAX:
            packets.append(body[start : start + length])
            start, length = start + length, 0
    return packets


@dataclass(frozen=True, slots=True)
class EncodedOpus:
    source: Signal
    packets: list[bytes]
    durations: list[int]
    pre_skip: int
    extradata: bytes


def _sweep() -> Signal:
    times_s = np.arange(round(SOURCE_DURATION_S * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    rate_hz_per_s = (SWEEP_END_HZ - SWEEP_START_HZ) / SOURCE_DURATION_S
    phase = 2 * np.pi * (SWEEP_START_HZ * times_s + rate_hz_per_s / 2 * times_s**2)
    return (SWEEP_AMPLITUDE * np.sin(phase)).astype(np.float32)


@pytest.fixture(scope="module")
def encoded() -> EncodedOpus:
    source = _sweep()
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = SAMPLE_RATE_HZ
    encoder.layout = "mono"
    encoder.format = "flt"
    encoder.bit_rate = OPUS_BITRATE_BPS
    encoder.time_base = Fraction(1, SAMPLE_RATE_HZ)
    encoder.open()
    assert encoder.frame_size == OPUS_FRAME_SAMPLES
    packets = []
    for start in range(0, len(source), OPUS_FRAME_SAMPLES):
        chunk = source[start : start + OPUS_FRAME_SAMPLES]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.pts = start
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    first_pts, extradata = packets[0].pts, encoder.extradata
    assert first_pts is not None
    assert extradata is not None
    durations = [packet.duration for packet in packets]
    assert all(duration is not None for duration in durations)
    return EncodedOpus(
        source,
        [bytes(packet) for packet in packets],
        [int(duration or 0) for duration in durations],
        -first_pts,  # pre-skip: the encoder's look-ahead, before the first input sample
        bytes(extradata),
    )


def _audio_pages(pager: OggPager, encoded: EncodedOpus) -> list[tuple[int, bytes]]:
    """(granule position, page) with 1 or 2 packets per page, the last page marked EOS.

    The granule counts 48 kHz samples from the stream start, pre-skip included; the last
    packet's duration is cut to the source's end, so the final granule trims the padding.
    """
    pages = []
    granule = 0
    sizes = itertools.cycle(PACKETS_PER_PAGE_CYCLE)
    start = 0
    while start < len(encoded.packets):
        end = min(start + next(sizes), len(encoded.packets))
        granule += sum(encoded.durations[start:end])
        page = pager.page(
            encoded.packets[start:end],
            granule_position=granule,
            is_last=end == len(encoded.packets),
        )
        pages.append((granule, page))
        start = end
    return pages


def _stream(encoded: EncodedOpus, first_audio_page: int = 0) -> tuple[bytes, int]:
    """An Ogg Opus stream from `first_audio_page` on, and that page's first granule."""
    pager = OggPager(SERIAL_NUMBER)
    headers = header_pages(
        pager,
        channels=1,
        pre_skip=encoded.pre_skip,
        input_sample_rate_hz=SAMPLE_RATE_HZ,
        vendor=VENDOR,
    )
    audio = _audio_pages(pager, encoded)
    previous_granule = audio[first_audio_page - 1][0] if first_audio_page else 0
    return headers + b"".join(page for _, page in audio[first_audio_page:]), previous_granule


def _decode_pyav(path: Path) -> tuple[int, Signal]:
    """(pts of the first decoded sample at 48 kHz, samples)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = list(container.decode(stream))
        assert stream.codec_context.name == "opus"
        assert stream.codec_context.sample_rate == SAMPLE_RATE_HZ
        assert frames[0].time_base == Fraction(1, SAMPLE_RATE_HZ)
        first_pts = frames[0].pts
        assert first_pts is not None
        pcm = np.concatenate([frame.to_ndarray()[0] for frame in frames]).astype(np.float32)
        return first_pts, pcm


def _decode_ffmpeg(path: Path) -> Signal:
    command = ["ffmpeg", "-v", "error", "-i", str(path), "-f", "wav", "-"]
    result = subprocess.run(command, capture_output=True, check=True, timeout=30)
    assert result.stderr == b""
    data = result.stdout
    fmt = data.index(b"fmt ") + RIFF_CHUNK_HEADER_BYTES
    _, channels, sample_rate_hz = struct.unpack_from("<HHI", data, fmt)
    assert (channels, sample_rate_hz) == (1, SAMPLE_RATE_HZ)
    pcm = np.frombuffer(data[data.index(b"data") + RIFF_CHUNK_HEADER_BYTES :], dtype="<i2")
    return (pcm / np.float32(np.iinfo(np.int16).max)).astype(np.float32)


def _correlation_peak(decoded: Signal, reference: Signal) -> tuple[float, int]:
    """The highest normalized cross-correlation over small lags, and its lag in samples."""
    best = (-1.0, 0)
    length = min(len(decoded), len(reference)) - MAX_LAG_SAMPLES
    core = reference[MAX_LAG_SAMPLES // 2 : MAX_LAG_SAMPLES // 2 + length]
    for lag in range(MAX_LAG_SAMPLES):
        window = decoded[lag : lag + length]
        score = float(np.dot(window, core) / (np.linalg.norm(window) * np.linalg.norm(core)))
        best = max(best, (score, lag - MAX_LAG_SAMPLES // 2))
    return best


def test_ogg_crc_of_check_string_is_the_non_reflected_zero_init_value() -> None:
    # CRC-32/POSIX (same polynomial and init, final xor 0xFFFFFFFF) checks to 0x765E7680.
    assert ogg_crc32(b"123456789") == 0x765E7680 ^ 0xFFFF_FFFF
    assert ogg_crc32(b"") == 0


def test_pages_rebuilt_from_ffmpeg_packets_are_byte_identical(tmp_path: Path) -> None:
    command = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i"]
    command += [f"sine=frequency=440:duration=0.2:sample_rate={SAMPLE_RATE_HZ}"]
    command += ["-c:a", "libopus", "-f", "ogg", "-"]
    ffmpeg_pages = _parse_pages(subprocess.run(command, capture_output=True, check=True).stdout)

    for page in ffmpeg_pages:
        zeroed = page.raw[:CRC_OFFSET] + bytes(4) + page.raw[CRC_OFFSET + 4 :]
        assert ogg_crc32(zeroed) == page.crc
    for page in ffmpeg_pages[:2]:
        pager = OggPager(page.serial_number, first_sequence_number=page.sequence_number)
        rebuilt = pager.page(
            _packets(page),
            granule_position=page.granule_position,
            is_first=bool(page.header_type & HEADER_TYPE_BOS),
            is_last=bool(page.header_type & HEADER_TYPE_EOS),
        )
        assert rebuilt == page.raw


def test_opus_head_matches_the_libopus_encoder_header(encoded: EncodedOpus) -> None:
    head = opus_head(channels=1, pre_skip=encoded.pre_skip, input_sample_rate_hz=SAMPLE_RATE_HZ)

    assert head == encoded.extradata


def test_opus_tags_carries_vendor_and_no_comments() -> None:
    assert opus_tags("rostra") == b"OpusTags\x06\x00\x00\x00rostra\x00\x00\x00\x00"


@pytest.mark.parametrize(
    ("packet_length", "lacing"),
    [(0, [0]), (1, [1]), (254, [254]), (255, [255, 0]), (256, [255, 1]), (510, [255, 255, 0])],
)
def test_lacing_ends_every_packet_with_a_value_below_255(
    packet_length: int, lacing: list[int]
) -> None:
    page = OggPager(1).page([b"x" * packet_length, b"yz"], granule_position=0)

    assert list(_parse_pages(page)[0].lacing) == [*lacing, 2]
    assert _packets(_parse_pages(page)[0]) == [b"x" * packet_length, b"yz"]


def test_packets_needing_more_than_255_lacing_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="lacing values"):
        OggPager(1).page([bytes(255 * 255)], granule_position=0)


def test_pager_numbers_pages_and_flags_first_and_last() -> None:
    pager = OggPager(SERIAL_NUMBER)
    header = header_pages(pager, channels=2, pre_skip=312, input_sample_rate_hz=44_100, vendor="v")
    last = pager.page([b"\x00"], granule_position=960, is_last=True)

    pages = _parse_pages(header + last)
    assert [page.sequence_number for page in pages] == [0, 1, 2]
    assert [page.header_type for page in pages] == [HEADER_TYPE_BOS, 0, HEADER_TYPE_EOS]
    assert {page.serial_number for page in pages} == {SERIAL_NUMBER}
    assert [page.granule_position for page in pages] == [0, 0, 960]
    assert _packets(pages[0]) == [opus_head(channels=2, pre_skip=312, input_sample_rate_hz=44_100)]
    assert _packets(pages[1]) == [opus_tags("v")]


def test_whole_stream_decodes_to_the_source_with_pyav_and_ffmpeg(
    encoded: EncodedOpus, tmp_path: Path
) -> None:
    path = tmp_path / "program.opus"
    path.write_bytes(_stream(encoded)[0])

    first_pts, pyav_pcm = _decode_pyav(path)
    ffmpeg_pcm = _decode_ffmpeg(path)

    assert first_pts == 0
    for pcm in (pyav_pcm, ffmpeg_pcm):
        assert len(pcm) == len(encoded.source)
        correlation, lag = _correlation_peak(pcm, encoded.source)
        assert correlation > MIN_CORRELATION
        assert lag == 0


def test_late_joiner_decodes_shared_audio_pages_after_the_header_pages(
    encoded: EncodedOpus, tmp_path: Path
) -> None:
    data, join_granule = _stream(encoded, JOIN_PAGE)
    path = tmp_path / "joined.opus"
    path.write_bytes(data)

    first_pts, pyav_pcm = _decode_pyav(path)
    ffmpeg_pcm = _decode_ffmpeg(path)

    # The packet starting at granule G holds source samples from G - pre-skip; the decoder
    # drops pre-skip samples at the join, so output sample n is source sample G + n.
    assert first_pts == join_granule
    remaining = encoded.source[join_granule:]
    for pcm in (pyav_pcm, ffmpeg_pcm):
        assert len(pcm) == len(remaining)
        correlation, lag = _correlation_peak(pcm, remaining)
        assert correlation > MIN_CORRELATION
        assert lag == 0
