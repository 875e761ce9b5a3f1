"""ADTS framing of raw AAC-LC frames (ISO/IEC 14496-3 §1.A.2), for plain `.aac` streams.

Media plane. Also owns the AAC sampling-frequency and channel-configuration tables.
"""

from __future__ import annotations

AAC_LC_OBJECT_TYPE = 2
ADTS_HEADER_BYTES = 7

# ISO/IEC 14496-3 table 1.18: sampling_frequency_index is the position in this tuple.
SAMPLING_FREQUENCIES_HZ: tuple[int, ...] = (
    96_000,
    88_200,
    64_000,
    48_000,
    44_100,
    32_000,
    24_000,
    22_050,
    16_000,
    12_000,
    11_025,
    8_000,
    7_350,
)

# channel_configuration 1..6 carry that many channels; 7 carries 8 (7.1).
_CHANNEL_CONFIGURATIONS: dict[int, int] = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 8: 7}

_SYNCWORD = 0xFFF
_MPEG4_ID = 0
_FRAME_LENGTH_BITS = 13
_MAX_FRAME_BYTES = (1 << _FRAME_LENGTH_BITS) - 1
_BUFFER_FULLNESS_VBR = 0x7FF


def sampling_frequency_index(sample_rate_hz: int) -> int:
    """The 4-bit AAC index of `sample_rate_hz`; ValueError if the table lacks it."""
    try:
        return SAMPLING_FREQUENCIES_HZ.index(sample_rate_hz)
    except ValueError:
        allowed = ", ".join(str(rate) for rate in SAMPLING_FREQUENCIES_HZ)
        raise ValueError(
            f"sample rate {sample_rate_hz} Hz has no AAC sampling frequency index; "
            f"use one of {allowed}"
        ) from None


def channel_configuration(channels: int) -> int:
    """The 3-bit AAC channel_configuration for `channels`; ValueError if none fits."""
    try:
        return _CHANNEL_CONFIGURATIONS[channels]
    except KeyError:
        raise ValueError(
            f"{channels} channels have no AAC channel configuration; use 1-6 or 8"
        ) from None


def adts_header(payload_length: int, *, sample_rate_hz: int, channels: int) -> bytes:
    """The 7-byte ADTS header (no CRC) for one AAC-LC raw frame of `payload_length` bytes."""
    frame_length = ADTS_HEADER_BYTES + payload_length
    if payload_length < 0 or frame_length > _MAX_FRAME_BYTES:
        raise ValueError(
            f"AAC frame of {payload_length} bytes does not fit ADTS; "
            f"the payload must be 0-{_MAX_FRAME_BYTES - ADTS_HEADER_BYTES} bytes"
        )
    frequency_index = sampling_frequency_index(sample_rate_hz)
    configuration = channel_configuration(channels)
    # (value, width in bits), most significant field first.
    fields = (
        (_SYNCWORD, 12),
        (_MPEG4_ID, 1),
        (0, 2),  # layer
        (1, 1),  # protection_absent: no CRC follows
        (AAC_LC_OBJECT_TYPE - 1, 2),  # profile
        (frequency_index, 4),
        (0, 1),  # private bit
        (configuration, 3),
        (0, 4),  # original/copy, home, copyright id bit, copyright id start
        (frame_length, _FRAME_LENGTH_BITS),
        (_BUFFER_FULLNESS_VBR, 11),
        (0, 2),  # number_of_raw_data_blocks_in_frame - 1
    )
    bits = 0
    for value, width in fields:
        bits = (bits << width) | value
    return bits.to_bytes(ADTS_HEADER_BYTES, "big")


def adts_frame(payload: bytes, *, sample_rate_hz: int, channels: int) -> bytes:
    """One AAC-LC raw frame with its ADTS header in front."""
    header = adts_header(len(payload), sample_rate_hz=sample_rate_hz, channels=channels)
    return header + payload
