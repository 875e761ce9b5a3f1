"""What a speaker sent, counted where the origin receives it: payload bytes, packets, FEC."""

from __future__ import annotations

from dataclasses import dataclass

from rostra.media.ingest import JitterHook
from rostra.media.jitter import JitterBuffer
from rostra.media.opus import OpusDecoder
from tests.media.jitter_playout import FEC_OPTIONS, encode
from tests.media.test_opus import voiced_signal


@dataclass
class RtpPacket:
    """The fields of aiortc's RtpPacket the hook reads."""

    sequence_number: int
    timestamp: int
    _data: bytes


def counted(packets: list[bytes]) -> JitterHook:
    hook = JitterHook(JitterBuffer(), dropper=None)
    for index, payload in enumerate(packets):
        hook.add(RtpPacket(index, index * 960, payload))
    return hook


def test_hook_counts_payload_bytes_packets_and_those_carrying_fec() -> None:
    with_fec = encode(voiced_signal(), options=FEC_OPTIONS)
    without_fec = encode(voiced_signal(), options={})
    with OpusDecoder() as parser:
        expected_fec = sum(parser.has_fec(packet) for packet in with_fec)
    assert expected_fec > len(with_fec) // 2  # the fixture does carry FEC

    hook = counted(with_fec)
    assert hook.stats.packets == len(with_fec)
    assert hook.stats.payload_bytes == sum(len(packet) for packet in with_fec)
    assert hook.stats.fec_packets == expected_fec
    assert counted(without_fec).stats.fec_packets == 0


def test_a_payload_libopus_cannot_parse_counts_as_no_fec() -> None:
    hook = counted([b"\xff\xff\xff"])
    assert (hook.stats.packets, hook.stats.payload_bytes, hook.stats.fec_packets) == (1, 3, 0)
