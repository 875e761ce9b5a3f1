"""Ogg encapsulation of Opus (RFC 3533, RFC 7845) for the progressive listener stream.

Media plane. Header pages are built once; audio pages are built once and shared by every
listener, including those who join mid-stream (see `header_pages`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

_OPUS_HEAD_MAGIC = b"OpusHead"
_OPUS_TAGS_MAGIC = b"OpusTags"
_OPUS_HEAD_VERSION = 1
_CHANNEL_MAPPING_FAMILY_RTP = 0  # mono or stereo, no mapping table
_MAX_CHANNELS_RTP_MAPPING = 2
_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFF_FFFF
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1

_CAPTURE_PATTERN = b"OggS"
_STREAM_STRUCTURE_VERSION = 0
_HEADER_TYPE_BOS = 0x02
_HEADER_TYPE_EOS = 0x04
# capture pattern, version, header type, granule, serial, sequence, CRC, segment count
_PAGE_HEADER = struct.Struct("<4sBBqIIIB")
_CRC_OFFSET = struct.calcsize("<4sBBqII")  # the CRC follows the page sequence number
_LACING_MAX = 255  # a lacing value below this ends the packet
_MAX_SEGMENTS_PER_PAGE = 255

_CRC_POLYNOMIAL = 0x04C1_1DB7
_CRC_TOP_BIT = 0x8000_0000
_CRC_MASK = 0xFFFF_FFFF
_BYTE_BITS = 8
_CRC_TOP_BYTE_SHIFT = 24


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(1 << _BYTE_BITS):
        crc = byte << _CRC_TOP_BYTE_SHIFT
        for _ in range(_BYTE_BITS):
            crc = (crc << 1) ^ _CRC_POLYNOMIAL if crc & _CRC_TOP_BIT else crc << 1
        table.append(crc & _CRC_MASK)
    return tuple(table)


_CRC_TABLE = _crc_table()


def ogg_crc32(data: bytes) -> int:
    """The Ogg page checksum: CRC-32, polynomial 0x04C11DB7, MSB first, init 0, no final xor."""
    crc = 0
    for byte in data:
        crc = ((crc << _BYTE_BITS) & _CRC_MASK) ^ _CRC_TABLE[(crc >> _CRC_TOP_BYTE_SHIFT) ^ byte]
    return crc


def opus_head(*, channels: int, pre_skip: int, input_sample_rate_hz: int) -> bytes:
    """The OpusHead identification header (RFC 7845 §5.1), channel mapping family 0."""
    if not 1 <= channels <= _MAX_CHANNELS_RTP_MAPPING:
        raise ValueError(f"{channels} channels need a mapping table; mapping family 0 allows 1-2")
    if not 0 <= pre_skip <= _U16_MAX:
        raise ValueError(f"pre-skip of {pre_skip} samples does not fit 16 bits")
    if not 0 <= input_sample_rate_hz <= _U32_MAX:
        raise ValueError(f"input sample rate {input_sample_rate_hz} Hz does not fit 32 bits")
    output_gain_q8_db = 0
    return _OPUS_HEAD_MAGIC + struct.pack(
        "<BBHIhB",
        _OPUS_HEAD_VERSION,
        channels,
        pre_skip,
        input_sample_rate_hz,
        output_gain_q8_db,
        _CHANNEL_MAPPING_FAMILY_RTP,
    )


def opus_tags(vendor: str) -> bytes:
    """The OpusTags comment header (RFC 7845 §5.2) naming `vendor`, with no user comments."""
    vendor_bytes = vendor.encode()
    user_comment_count = 0
    return (
        _OPUS_TAGS_MAGIC
        + struct.pack("<I", len(vendor_bytes))
        + vendor_bytes
        + struct.pack("<I", user_comment_count)
    )


class OggPager:
    """Builds the pages of one logical bitstream: its serial number and page sequence counter.

    Every page holds whole packets; a packet never continues onto the next page.
    """

    __slots__ = ("_next_sequence", "serial_number")

    def __init__(self, serial_number: int, *, first_sequence_number: int = 0) -> None:
        if not 0 <= serial_number <= _U32_MAX:
            raise ValueError(f"serial number {serial_number} does not fit 32 bits")
        if not 0 <= first_sequence_number <= _U32_MAX:
            raise ValueError(f"page sequence number {first_sequence_number} does not fit 32 bits")
        self.serial_number = serial_number
        self._next_sequence = first_sequence_number

    @property
    def next_sequence_number(self) -> int:
        """The page sequence number the next page will carry."""
        return self._next_sequence

    def page(
        self,
        packets: Sequence[bytes],
        *,
        granule_position: int,
        is_first: bool = False,
        is_last: bool = False,
    ) -> bytes:
        """One page holding `packets`, ending at `granule_position`.

        For Opus the granule position counts 48 kHz samples, pre-skip included, up to the end
        of the last packet on the page (RFC 7845 §4).
        """
        if not packets:
            raise ValueError("a page needs at least one packet")
        if not _I64_MIN <= granule_position <= _I64_MAX:
            raise ValueError(f"granule position {granule_position} does not fit 64 bits")
        lacing = b"".join(_lacing_values(len(packet)) for packet in packets)
        if len(lacing) > _MAX_SEGMENTS_PER_PAGE:
            raise ValueError(
                f"packets need {len(lacing)} lacing values; a page holds {_MAX_SEGMENTS_PER_PAGE}"
            )
        header_type = (_HEADER_TYPE_BOS if is_first else 0) | (_HEADER_TYPE_EOS if is_last else 0)
        header = _PAGE_HEADER.pack(
            _CAPTURE_PATTERN,
            _STREAM_STRUCTURE_VERSION,
            header_type,
            granule_position,
            self.serial_number,
            self._next_sequence & _U32_MAX,
            0,  # CRC, computed with this field zeroed and then written in
            len(lacing),
        )
        page = bytearray(header + lacing + b"".join(packets))
        struct.pack_into("<I", page, _CRC_OFFSET, ogg_crc32(bytes(page)))
        self._next_sequence += 1
        return bytes(page)


def header_pages(
    pager: OggPager, *, channels: int, pre_skip: int, input_sample_rate_hz: int, vendor: str
) -> bytes:
    """The two Opus header pages: OpusHead alone on the BOS page, then OpusTags.

    Build them once, first on `pager`, and send them to every listener before the shared
    audio pages. A late joiner sees a jump in page sequence numbers and a large first granule
    position: FFmpeg and libopusfile decode it on the source timeline (dropping pre-skip
    samples after the join); opusinfo notes the gap as "normal for live streams".
    """
    head = opus_head(
        channels=channels, pre_skip=pre_skip, input_sample_rate_hz=input_sample_rate_hz
    )
    return pager.page([head], granule_position=0, is_first=True) + pager.page(
        [opus_tags(vendor)], granule_position=0
    )


def _lacing_values(packet_length: int) -> bytes:
    full_segments, remainder = divmod(packet_length, _LACING_MAX)
    # A packet of exactly 255*k bytes ends with a 0 lacing value.
    return bytes([_LACING_MAX] * full_segments + [remainder])
