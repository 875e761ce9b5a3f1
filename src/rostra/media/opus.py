"""Opus decoding through libopus (ctypes): packets, loss concealment and in-band FEC to PCM.

Media plane: the jitter buffer turns each speaker's RTP payloads into program-format audio with it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from types import TracebackType

import numpy as np

from rostra.media.audio import SAMPLE_RATE_HZ, Pcm

LIBOPUS_NAME = "opus"
LIBOPUS_SONAME = "libopus.so.0"

OPUS_OK = 0
OPUS_INVALID_PACKET = -4
MAX_PACKET_DURATION_MS = 120
MAX_FRAMES_PER_PACKET = 48  # RFC 6716 §3.2.5: at most 120 ms of 2.5 ms frames
TOC_CONFIG_SHIFT = 3
FIRST_CELT_ONLY_CONFIG = 16  # RFC 6716 §3.1: configs 0–11 SILK-only, 12–15 hybrid, 16–31 CELT
SILK_FRAME_MS = 20
MS_PER_S = 1000
BITS_PER_BYTE = 8
TOC_STEREO_FLAG = 0x04  # RFC 6716 §3.1

_DecoderHandle = ctypes.c_void_p
_UCharPointer = ctypes.POINTER(ctypes.c_ubyte)
_FloatPointer = ctypes.POINTER(ctypes.c_float)


class OpusError(ValueError):
    """libopus refused a packet or a call; `code` is the libopus error code."""

    def __init__(self, code: int, context: str) -> None:
        self.code = code
        super().__init__(f"{context}: {strerror(code)} (libopus error {code})")


class OpusLibraryError(RuntimeError):
    """libopus could not be loaded; on Debian it comes with the libopus0 package."""


@functools.cache
def _libopus() -> ctypes.CDLL:
    path = ctypes.util.find_library(LIBOPUS_NAME) or LIBOPUS_SONAME
    try:
        lib = ctypes.CDLL(path)
    except OSError as error:
        raise OpusLibraryError(
            f"cannot load libopus ({path}): install the libopus0 package"
        ) from error
    _declare(lib)
    return lib


def _declare(lib: ctypes.CDLL) -> None:
    lib.opus_decoder_create.argtypes = [
        ctypes.c_int32,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.opus_decoder_create.restype = _DecoderHandle
    lib.opus_decoder_destroy.argtypes = [_DecoderHandle]
    lib.opus_decoder_destroy.restype = None
    lib.opus_decode_float.argtypes = [
        _DecoderHandle,
        _UCharPointer,
        ctypes.c_int32,
        _FloatPointer,
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.opus_decode_float.restype = ctypes.c_int
    lib.opus_packet_get_nb_samples.argtypes = [_UCharPointer, ctypes.c_int32, ctypes.c_int32]
    lib.opus_packet_get_nb_samples.restype = ctypes.c_int
    lib.opus_packet_parse.argtypes = [
        _UCharPointer,
        ctypes.c_int32,
        ctypes.POINTER(ctypes.c_ubyte),
        ctypes.c_void_p * MAX_FRAMES_PER_PACKET,
        ctypes.c_int16 * MAX_FRAMES_PER_PACKET,
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.opus_packet_parse.restype = ctypes.c_int
    lib.opus_strerror.argtypes = [ctypes.c_int]
    lib.opus_strerror.restype = ctypes.c_char_p


def strerror(code: int) -> str:
    """libopus's own description of an error code."""
    message: bytes | None = _libopus().opus_strerror(code)
    return message.decode("ascii", "replace") if message else "unknown error"


def _packet_buffer(payload: bytes) -> ctypes.Array[ctypes.c_ubyte]:
    if not payload:
        raise OpusError(OPUS_INVALID_PACKET, "empty Opus packet")
    return (ctypes.c_ubyte * len(payload)).from_buffer_copy(payload)


def _as_uchar(buffer: ctypes.Array[ctypes.c_ubyte]) -> ctypes._Pointer[ctypes.c_ubyte]:
    return ctypes.cast(buffer, _UCharPointer)


class OpusDecoder:
    """One libopus decoder: one per speaker, since concealment and FEC depend on its state.

    Not thread-safe; the jitter buffer serialises calls under its lock. Mono output is 1-D
    float32; stereo output has shape (samples, 2).
    """

    def __init__(self, channels: int = 1, sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
        self.channels = channels
        self.sample_rate_hz = sample_rate_hz
        self.max_packet_samples = sample_rate_hz * MAX_PACKET_DURATION_MS // MS_PER_S
        self._lib = _libopus()
        self._handle: int | None = self._create()
        self._scratch = np.empty(self.max_packet_samples * channels, dtype=np.float32)

    def decode(self, payload: bytes) -> Pcm:
        """Decode one packet into its own duration of PCM; raises OpusError if it is corrupt."""
        buffer = _packet_buffer(payload)
        return self._decode(_as_uchar(buffer), len(payload), self.max_packet_samples, False)

    def conceal(self, samples: int) -> Pcm:
        """Packet loss concealment for `samples` per channel (a multiple of 2.5 ms)."""
        return self._decode(None, 0, samples, False)

    def decode_fec(self, next_payload: bytes, samples: int) -> Pcm:
        """Rebuild the `samples` lost just before `next_payload` from its in-band FEC data.

        libopus falls back to concealment when the packet carries no FEC (see has_fec).
        """
        buffer = _packet_buffer(next_payload)
        return self._decode(_as_uchar(buffer), len(next_payload), samples, True)

    def packet_samples(self, payload: bytes) -> int:
        """The duration of a packet, in samples per channel at this decoder's rate."""
        buffer = _packet_buffer(payload)
        count = int(
            self._lib.opus_packet_get_nb_samples(
                _as_uchar(buffer), len(payload), self.sample_rate_hz
            )
        )
        if count <= 0:  # a code 3 packet may claim zero frames (RFC 6716 §3.2.5)
            raise OpusError(count or OPUS_INVALID_PACKET, "cannot read the packet duration")
        return count

    def has_fec(self, payload: bytes) -> bool:
        """Whether the packet carries LBRR (in-band FEC) data for the packet before it.

        RFC 6716 §4.2.3–4.2.4: a SILK or hybrid frame opens with one VAD flag per 20 ms SILK
        frame and then the LBRR flag, per channel; these equiprobable flags are the first frame's
        leading bits. CELT-only packets carry none.
        """
        buffer = _packet_buffer(payload)
        toc = ctypes.c_ubyte()
        frames = (ctypes.c_void_p * MAX_FRAMES_PER_PACKET)()
        sizes = (ctypes.c_int16 * MAX_FRAMES_PER_PACKET)()
        count = int(
            self._lib.opus_packet_parse(
                _as_uchar(buffer), len(payload), ctypes.byref(toc), frames, sizes, None
            )
        )
        if count < 0:
            raise OpusError(count, "cannot parse the packet")
        if count == 0 or sizes[0] <= 0 or toc.value >> TOC_CONFIG_SHIFT >= FIRST_CELT_ONLY_CONFIG:
            return False
        frame_offset = int(frames[0] or 0) - ctypes.addressof(buffer)
        header = payload[frame_offset]
        frame_samples = self.packet_samples(payload) // count
        silk_frames = max(1, frame_samples * MS_PER_S // (self.sample_rate_hz * SILK_FRAME_MS))
        mid_lbrr_bit = BITS_PER_BYTE - 1 - silk_frames
        has_lbrr = bool(header >> mid_lbrr_bit & 1)
        if toc.value & TOC_STEREO_FLAG:
            has_lbrr |= bool(header >> (mid_lbrr_bit - silk_frames - 1) & 1)
        return has_lbrr

    def reset(self) -> None:
        """Forget the stream: the next packet decodes as the start of a new one."""
        self._require_handle()
        handle = self._create()
        self.close()
        self._handle = handle

    def close(self) -> None:
        if self._handle is not None:
            self._lib.opus_decoder_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> OpusDecoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_handle", None) is not None:
            self.close()

    def _create(self) -> int:
        error = ctypes.c_int(OPUS_OK)
        handle: int | None = self._lib.opus_decoder_create(
            self.sample_rate_hz, self.channels, ctypes.byref(error)
        )
        if error.value != OPUS_OK or not handle:
            raise OpusError(error.value, f"cannot create a {self.channels}-channel decoder")
        return handle

    def _require_handle(self) -> int:
        if self._handle is None:
            raise ValueError("the Opus decoder is closed")
        return self._handle

    def _decode(
        self,
        data: ctypes._Pointer[ctypes.c_ubyte] | None,
        length: int,
        samples: int,
        is_fec: bool,
    ) -> Pcm:
        handle = self._require_handle()
        if not 0 < samples <= self.max_packet_samples:
            raise ValueError(f"{samples} samples is outside one Opus packet's duration")
        out = self._scratch.ctypes.data_as(_FloatPointer)
        count = int(self._lib.opus_decode_float(handle, data, length, out, samples, int(is_fec)))
        if count < 0:
            raise OpusError(count, "cannot decode the packet")
        pcm = self._scratch[: count * self.channels].copy()
        return pcm if self.channels == 1 else pcm.reshape(count, self.channels)
