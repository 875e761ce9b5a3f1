"""CMAF fragmented MP4 (ISO/IEC 14496-12, 23000-19) for one audio track, AAC-LC or Opus
("Encapsulation of Opus in ISO Base Media File Format"): init and media segments.

Media plane: the HLS segmenter writes these bytes around frames the encoder made.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from rostra.media.adts import AAC_LC_OBJECT_TYPE, channel_configuration, sampling_frequency_index

_BOX_HEADER_BYTES = 8
_U32_MAX = 0xFFFF_FFFF
_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF

_INIT_BRANDS = (b"iso6", b"cmfc", b"mp41")
_SEGMENT_BRANDS = (b"msdh", b"cmfs", b"cmff")

_MOVIE_TIMESCALE_HZ = 1_000
_FIXED_16_16_ONE = 0x0001_0000
_FIXED_8_8_ONE = 0x0100
_FIXED_2_30_ONE = 0x4000_0000
_UNITY_MATRIX = (_FIXED_16_16_ONE, 0, 0, 0, _FIXED_16_16_ONE, 0, 0, 0, _FIXED_2_30_ONE)
_LANGUAGE = "und"
_LANGUAGE_CHAR_BITS = 5
_LANGUAGE_CHAR_OFFSET = 0x60
_MAX_SAMPLE_ENTRY_RATE_HZ = 0xFFFF  # the integer half of the 16.16 samplerate field
_SAMPLE_SIZE_BITS = 16
_DATA_REFERENCE_INDEX = 1
_SAMPLE_DESCRIPTION_INDEX = 1

_TKHD_ENABLED_IN_MOVIE = 0x00_0003
_URL_SELF_CONTAINED = 0x00_0001
_TFHD_DEFAULT_SAMPLE_DURATION = 0x00_0008
_TFHD_DEFAULT_SAMPLE_FLAGS = 0x00_0020
_TFHD_DEFAULT_BASE_IS_MOOF = 0x02_0000
_TRUN_DATA_OFFSET = 0x00_0001
_TRUN_SAMPLE_SIZE = 0x00_0200
# sample_depends_on = 2 (depends on no other sample), sample_is_non_sync_sample = 0.
_SYNC_SAMPLE_FLAGS = 0x0200_0000

# ISO/IEC 14496-1 descriptors inside 'esds'.
_ES_DESCRIPTOR_TAG = 0x03
_DECODER_CONFIG_DESCRIPTOR_TAG = 0x04
_DECODER_SPECIFIC_INFO_TAG = 0x05
_SL_CONFIG_DESCRIPTOR_TAG = 0x06
_OBJECT_TYPE_MPEG4_AUDIO = 0x40
_STREAM_TYPE_AUDIO = 0x05
_SL_PREDEFINED_MP4 = 0x02
_DESCRIPTOR_LENGTH_BITS = 7
_DESCRIPTOR_LENGTH_MAX_BYTES = 4
_DESCRIPTOR_LENGTH_MASK = 0x7F
_DESCRIPTOR_LENGTH_MORE = 0x80  # set on every length byte but the last

_AUDIO_SPECIFIC_CONFIG_BYTES = 2
_FREQUENCY_INDEX_BITS = 4
_CHANNEL_CONFIGURATION_BITS = 4
_GA_SPECIFIC_CONFIG_BITS = 3

# the Opus sample entry: its timescale and rate are always 48 kHz, whatever the input rate
OPUS_TIMESCALE_HZ = 48_000
_DOPS_VERSION = 0
_OPUS_MAPPING_FAMILY_MONO_STEREO = 0
_OPUS_MAX_FAMILY_0_CHANNELS = 2
_U16_MAX = 0xFFFF


def audio_specific_config(sample_rate_hz: int, channels: int) -> bytes:
    """The 2-byte AudioSpecificConfig of AAC-LC with 1024-sample frames (ISO/IEC 14496-3 1.6.2)."""
    frequency_index = sampling_frequency_index(sample_rate_hz)
    configuration = channel_configuration(channels)
    # object type (5 bits), frequency index (4), channel configuration (4), then
    # GASpecificConfig: frameLengthFlag, dependsOnCoreCoder, extensionFlag (1 each), all 0.
    bits = AAC_LC_OBJECT_TYPE
    bits = bits << _FREQUENCY_INDEX_BITS | frequency_index
    bits = bits << _CHANNEL_CONFIGURATION_BITS | configuration
    bits <<= _GA_SPECIFIC_CONFIG_BITS
    return bits.to_bytes(_AUDIO_SPECIFIC_CONFIG_BYTES, "big")


def init_segment(
    *, audio_specific_config: bytes, sample_rate_hz: int, channels: int, track_id: int = 1
) -> bytes:
    """ftyp + moov for one AAC-LC track whose media timescale is `sample_rate_hz`."""
    if not audio_specific_config:
        raise ValueError("the AudioSpecificConfig is empty")
    if not 0 < sample_rate_hz <= _MAX_SAMPLE_ENTRY_RATE_HZ:
        raise ValueError(
            f"sample rate {sample_rate_hz} Hz does not fit the mp4a sample entry; "
            f"use at most {_MAX_SAMPLE_ENTRY_RATE_HZ} Hz"
        )
    channel_configuration(channels)
    _check_u32("track_id", track_id, minimum=1)
    _check_u32("next_track_ID", track_id + 1, minimum=2)
    mp4a = _box(
        b"mp4a",
        _audio_sample_entry_fields(channels, sample_rate_hz),
        _full_box(b"esds", 0, 0, _es_descriptor(audio_specific_config)),
    )
    return _init(mp4a, sample_rate_hz, track_id)


def opus_init_segment(
    *, channels: int, pre_skip: int, input_sample_rate_hz: int, track_id: int = 1
) -> bytes:
    """ftyp + moov for one Opus track (mapping family 0: mono or stereo) at the 48 kHz timescale,
    its 'Opus' sample entry carrying a 'dOps' box (Opus in ISOBMFF §4.3.2)."""
    if not 1 <= channels <= _OPUS_MAX_FAMILY_0_CHANNELS:
        raise ValueError(f"{channels} channels: mapping family 0 carries 1 or 2")
    if not 0 <= pre_skip <= _U16_MAX:
        raise ValueError(f"pre-skip {pre_skip} must be in 0..{_U16_MAX}")
    _check_u32("input_sample_rate_hz", input_sample_rate_hz, minimum=0)
    _check_u32("track_id", track_id, minimum=1)
    _check_u32("next_track_ID", track_id + 1, minimum=2)
    # Version, OutputChannelCount, PreSkip, InputSampleRate, OutputGain (0 dB), family
    dops = _box(
        b"dOps",
        struct.pack(
            ">BBHIhB",
            _DOPS_VERSION,
            channels,
            pre_skip,
            input_sample_rate_hz,
            0,
            _OPUS_MAPPING_FAMILY_MONO_STEREO,
        ),
    )
    opus = _box(b"Opus", _audio_sample_entry_fields(channels, OPUS_TIMESCALE_HZ), dops)
    return _init(opus, OPUS_TIMESCALE_HZ, track_id)


def _init(sample_entry: bytes, timescale_hz: int, track_id: int) -> bytes:
    moov = _box(
        b"moov",
        _mvhd(next_track_id=track_id + 1),
        _trak(sample_entry, timescale_hz, track_id),
        _box(b"mvex", _trex(track_id)),
    )
    return _box(b"ftyp", _INIT_BRANDS[0], _u32(0), *_INIT_BRANDS) + moov


def _audio_sample_entry_fields(channels: int, sample_rate_hz: int) -> bytes:
    """SampleEntry and AudioSampleEntry fields (ISO/IEC 14496-12 8.5.2, 12.2.3), then boxes."""
    return struct.pack(">6xH", _DATA_REFERENCE_INDEX) + struct.pack(
        ">8xHHHHI", channels, _SAMPLE_SIZE_BITS, 0, 0, sample_rate_hz << 16
    )


def media_segment(
    *,
    sequence_number: int,
    base_media_decode_time: int,
    samples: Sequence[bytes],
    sample_duration: int,
    track_id: int = 1,
) -> bytes:
    """styp + moof + mdat carrying `samples` (raw AAC frames or Opus packets, all sync samples).

    `base_media_decode_time` and `sample_duration` count samples of the track timescale.
    """
    styp = _box(b"styp", _SEGMENT_BRANDS[0], _u32(0), *_SEGMENT_BRANDS)
    return styp + media_fragment(
        sequence_number=sequence_number,
        base_media_decode_time=base_media_decode_time,
        samples=samples,
        sample_duration=sample_duration,
        track_id=track_id,
    )


def media_fragment(
    *,
    sequence_number: int,
    base_media_decode_time: int,
    samples: Sequence[bytes],
    sample_duration: int,
    track_id: int = 1,
) -> bytes:
    """moof + mdat carrying `samples`: one CMAF chunk, as an LL-HLS part is (RFC 8216bis
    §4.4.4.9), decodable after the init segment on its own.

    `sequence_number` (mfhd) rises from one fragment to the next of the track.
    """
    if not samples:
        raise ValueError("a media fragment needs at least one sample")
    _check_u32("sequence_number", sequence_number, minimum=0)
    _check_u32("sample_duration", sample_duration, minimum=1)
    _check_u32("track_id", track_id, minimum=1)
    if not 0 <= base_media_decode_time <= _U64_MAX:
        raise ValueError(f"base_media_decode_time {base_media_decode_time} does not fit 64 bits")
    sizes = [len(sample) for sample in samples]

    def moof(data_offset: int) -> bytes:
        traf = _box(
            b"traf",
            _tfhd(track_id, sample_duration),
            _full_box(b"tfdt", 1, 0, struct.pack(">Q", base_media_decode_time)),
            _trun(sizes, data_offset),
        )
        return _box(b"moof", _full_box(b"mfhd", 0, 0, _u32(sequence_number)), traf)

    # The data offset counts from the first byte of moof (default-base-is-moof) to the
    # first sample, just past the mdat header; the moof length does not depend on it.
    data_offset = len(moof(0)) + _BOX_HEADER_BYTES
    return moof(data_offset) + _box(b"mdat", *samples)


def _mvhd(*, next_track_id: int) -> bytes:
    return _full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, _MOVIE_TIMESCALE_HZ, 0),  # created, modified, scale, duration
        struct.pack(">IH10x", _FIXED_16_16_ONE, _FIXED_8_8_ONE),  # rate, volume, reserved
        struct.pack(">9I", *_UNITY_MATRIX),
        bytes(24),  # pre_defined
        _u32(next_track_id),
    )


def _trak(sample_entry: bytes, sample_rate_hz: int, track_id: int) -> bytes:
    tkhd = _full_box(
        b"tkhd",
        0,
        _TKHD_ENABLED_IN_MOVIE,
        struct.pack(">IIIII", 0, 0, track_id, 0, 0),  # created, modified, id, reserved, duration
        struct.pack(">8xhhH2x", 0, 0, _FIXED_8_8_ONE),  # layer, alternate group, volume
        struct.pack(">9I", *_UNITY_MATRIX),
        struct.pack(">II", 0, 0),  # width, height
    )
    mdhd = _full_box(
        b"mdhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, sample_rate_hz, 0),  # created, modified, scale, duration
        struct.pack(">HH", _packed_language(_LANGUAGE), 0),
    )
    hdlr = _full_box(b"hdlr", 0, 0, _u32(0), b"soun", bytes(12), b"SoundHandler\x00")
    minf = _box(
        b"minf",
        _full_box(b"smhd", 0, 0, struct.pack(">hH", 0, 0)),  # balance, reserved
        _box(
            b"dinf", _full_box(b"dref", 0, 0, _u32(1), _full_box(b"url ", 0, _URL_SELF_CONTAINED))
        ),
        _stbl(sample_entry),
    )
    return _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))


def _stbl(sample_entry: bytes) -> bytes:
    # A fragmented file keeps every sample in the fragments, so the tables stay empty.
    return _box(
        b"stbl",
        _full_box(b"stsd", 0, 0, _u32(1), sample_entry),
        _full_box(b"stts", 0, 0, _u32(0)),
        _full_box(b"stsc", 0, 0, _u32(0)),
        _full_box(b"stsz", 0, 0, _u32(0), _u32(0)),  # sample_size, sample_count
        _full_box(b"stco", 0, 0, _u32(0)),
    )


def _es_descriptor(asc: bytes) -> bytes:
    stream_type_byte = _STREAM_TYPE_AUDIO << 2 | 1  # upStream 0, reserved 1
    decoder_config = _descriptor(
        _DECODER_CONFIG_DESCRIPTOR_TAG,
        bytes((_OBJECT_TYPE_MPEG4_AUDIO, stream_type_byte)),
        bytes(3),  # bufferSizeDB unknown
        struct.pack(">II", 0, 0),  # maxBitrate, avgBitrate unknown (variable)
        _descriptor(_DECODER_SPECIFIC_INFO_TAG, asc),
    )
    sl_config = _descriptor(_SL_CONFIG_DESCRIPTOR_TAG, bytes((_SL_PREDEFINED_MP4,)))
    # ES_ID is 0 inside an MP4 file (ISO/IEC 14496-14 3.1.2); flags byte 0.
    return _descriptor(_ES_DESCRIPTOR_TAG, struct.pack(">HB", 0, 0), decoder_config, sl_config)


def _descriptor(tag: int, *payloads: bytes) -> bytes:
    body = b"".join(payloads)
    length = len(body)
    if length >> (_DESCRIPTOR_LENGTH_BITS * _DESCRIPTOR_LENGTH_MAX_BYTES):
        raise ValueError(f"descriptor of {length} bytes is too long for esds")
    groups = [length & _DESCRIPTOR_LENGTH_MASK]
    length >>= _DESCRIPTOR_LENGTH_BITS
    while length:
        groups.append(length & _DESCRIPTOR_LENGTH_MASK | _DESCRIPTOR_LENGTH_MORE)
        length >>= _DESCRIPTOR_LENGTH_BITS
    return bytes((tag, *reversed(groups))) + body


def _trex(track_id: int) -> bytes:
    # Defaults: description 1, duration 0, size 0, flags 0; each fragment states its own.
    return _full_box(
        b"trex", 0, 0, struct.pack(">IIIII", track_id, _SAMPLE_DESCRIPTION_INDEX, 0, 0, 0)
    )


def _tfhd(track_id: int, sample_duration: int) -> bytes:
    flags = _TFHD_DEFAULT_BASE_IS_MOOF | _TFHD_DEFAULT_SAMPLE_DURATION | _TFHD_DEFAULT_SAMPLE_FLAGS
    return _full_box(
        b"tfhd", 0, flags, struct.pack(">III", track_id, sample_duration, _SYNC_SAMPLE_FLAGS)
    )


def _trun(sizes: Sequence[int], data_offset: int) -> bytes:
    flags = _TRUN_DATA_OFFSET | _TRUN_SAMPLE_SIZE
    header = struct.pack(">Ii", len(sizes), data_offset)
    return _full_box(b"trun", 0, flags, header, struct.pack(f">{len(sizes)}I", *sizes))


def _packed_language(code: str) -> int:
    packed = 0
    for char in code:
        packed = packed << _LANGUAGE_CHAR_BITS | (ord(char) - _LANGUAGE_CHAR_OFFSET)
    return packed


def _box(box_type: bytes, *payloads: bytes) -> bytes:
    body = b"".join(payloads)
    size = _BOX_HEADER_BYTES + len(body)
    if size > _U32_MAX:
        raise ValueError(f"'{box_type.decode()}' box of {size} bytes needs a 64-bit size")
    return struct.pack(">I4s", size, box_type) + body


def _full_box(box_type: bytes, version: int, flags: int, *payloads: bytes) -> bytes:
    return _box(box_type, bytes((version,)), flags.to_bytes(3, "big"), *payloads)


def _u32(value: int) -> bytes:
    return struct.pack(">I", value)


def _check_u32(name: str, value: int, *, minimum: int) -> None:
    if not minimum <= value <= _U32_MAX:
        raise ValueError(f"{name} {value} must be in {minimum}..{_U32_MAX}")
