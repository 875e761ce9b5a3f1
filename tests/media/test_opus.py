"""libopus through ctypes: decoding, concealment, in-band FEC and errors, on packets from PyAV."""

from __future__ import annotations

import ctypes
import random

import numpy as np
import pytest

from rostra.media import opus
from rostra.media.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ, Pcm
from rostra.media.opus import OpusDecoder, OpusError, OpusLibraryError
from tests.media.jitter_playout import FEC_OPTIONS, encode

DURATION_S = 3
FUNDAMENTAL_HZ = 140.0
HARMONICS = 8
VIBRATO_HZ = 5.0
VIBRATO_DEPTH_RAD = 3.0
SYLLABLE_HZ = 3.0
AMPLITUDE = 0.4
MAX_CODEC_DELAY_SAMPLES = 1_000


def voiced_signal() -> Pcm:
    """A vowel-like harmonic tone with vibrato and syllable-rate loudness: coded as speech."""
    t = np.arange(DURATION_S * SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    phase = 2 * np.pi * FUNDAMENTAL_HZ * t + VIBRATO_DEPTH_RAD * np.sin(2 * np.pi * VIBRATO_HZ * t)
    tone = np.sum([np.sin(k * phase) / k for k in range(1, HARMONICS + 1)], axis=0)
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * SYLLABLE_HZ * t)
    peak = float(np.max(np.abs(tone)))
    pcm: Pcm = (AMPLITUDE * envelope * tone / peak).astype(np.float32)
    return pcm


def correlation(a: Pcm, b: Pcm) -> float:
    return float(np.corrcoef(a, b)[0, 1])


@pytest.fixture(scope="module")
def source() -> Pcm:
    return voiced_signal()


@pytest.fixture(scope="module")
def fec_packets(source: Pcm) -> list[bytes]:
    return encode(source, options=FEC_OPTIONS)


@pytest.mark.parametrize("frame_ms", [10, 20, 40, 60])
def test_decode_returns_float32_mono_of_the_packets_own_duration(
    source: Pcm, frame_ms: int
) -> None:
    packets = encode(source, frame_ms, options={})
    expected_samples = SAMPLE_RATE_HZ * frame_ms // 1000
    with OpusDecoder() as decoder:
        pcm = [decoder.decode(packet) for packet in packets]
        assert {decoder.packet_samples(packet) for packet in packets} == {expected_samples}
    assert all(chunk.dtype == np.float32 and chunk.shape == (expected_samples,) for chunk in pcm)
    decoded = np.concatenate(pcm)
    best = max(
        correlation(decoded[lag : lag + source.size // 2], source[: source.size // 2])
        for lag in range(MAX_CODEC_DELAY_SAMPLES)
    )
    assert best > 0.9


def test_conceal_continues_the_voice_for_the_requested_samples(fec_packets: list[bytes]) -> None:
    with OpusDecoder() as decoder:
        for packet in fec_packets[:50]:
            decoder.decode(packet)
        concealed = decoder.conceal(FRAME_SAMPLES)
    assert concealed.shape == (FRAME_SAMPLES,)
    assert concealed.dtype == np.float32
    assert float(np.sqrt(np.mean(np.square(concealed)))) > 0.01


def test_fec_from_the_next_packet_rebuilds_the_lost_one_better_than_plc(
    fec_packets: list[bytes],
) -> None:
    with OpusDecoder() as reference:
        # the encoder adds FEC to voiced frames only: lose one whose successor carries it
        lost = next(i for i in range(20, 100) if reference.has_fec(fec_packets[i + 1]))
        truth = [reference.decode(packet) for packet in fec_packets[: lost + 1]][lost]
    with OpusDecoder() as with_fec, OpusDecoder() as with_plc:
        for packet in fec_packets[:lost]:
            with_fec.decode(packet)
            with_plc.decode(packet)
        rebuilt = with_fec.decode_fec(fec_packets[lost + 1], FRAME_SAMPLES)
        concealed = with_plc.conceal(FRAME_SAMPLES)
    assert rebuilt.shape == (FRAME_SAMPLES,)
    assert correlation(rebuilt, truth) > 0.9
    assert correlation(rebuilt, truth) > correlation(concealed, truth)


def test_has_fec_is_true_exactly_when_libopus_uses_the_fec_data(fec_packets: list[bytes]) -> None:
    flags = []
    with OpusDecoder() as fec_decoder, OpusDecoder() as plc_decoder:
        for lost in range(1, 40):
            for decoder in (fec_decoder, plc_decoder):
                decoder.reset()
                for packet in fec_packets[:lost]:
                    decoder.decode(packet)
            rebuilt = fec_decoder.decode_fec(fec_packets[lost + 1], FRAME_SAMPLES)
            concealed = plc_decoder.conceal(FRAME_SAMPLES)
            has_fec = fec_decoder.has_fec(fec_packets[lost + 1])
            flags.append(has_fec)
            assert has_fec == (not np.array_equal(rebuilt, concealed))
    assert any(flags)


def test_packets_encoded_without_fec_report_none(source: Pcm) -> None:
    with OpusDecoder() as decoder:
        assert not any(decoder.has_fec(packet) for packet in encode(source, options={}))


def test_corrupt_packet_raises_opus_error_with_the_libopus_message() -> None:
    code3_without_frames = bytes([0x03, 0x00])  # RFC 6716 §3.2.5: M = 0 is invalid
    with OpusDecoder() as decoder:
        with pytest.raises(OpusError, match="corrupted stream") as caught:
            decoder.decode(code3_without_frames)
        assert caught.value.code == opus.OPUS_INVALID_PACKET
        with pytest.raises(OpusError):
            decoder.packet_samples(code3_without_frames)
        with pytest.raises(OpusError):
            decoder.decode(b"")
        with pytest.raises(OpusError, match="invalid argument"):
            decoder.conceal(FRAME_SAMPLES + 1)


def test_random_garbage_decodes_or_raises_opus_error_and_never_crashes() -> None:
    rng = random.Random(7)
    rejected = 0
    with OpusDecoder() as decoder:
        for _ in range(500):
            payload = rng.randbytes(rng.randrange(0, 300))
            try:
                pcm = decoder.decode(payload)
            except OpusError:
                rejected += 1
                continue
            assert np.all(np.isfinite(pcm))
            decoder.has_fec(payload)
    assert rejected > 0


def test_close_is_idempotent_and_a_closed_decoder_refuses_work() -> None:
    decoder = OpusDecoder()
    decoder.close()
    decoder.close()
    with pytest.raises(ValueError, match="closed"):
        decoder.conceal(FRAME_SAMPLES)


def test_missing_libopus_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library(name: str) -> ctypes.CDLL:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_library)
    opus._libopus.cache_clear()
    try:
        with pytest.raises(OpusLibraryError, match="libopus0"):
            OpusDecoder()
    finally:
        opus._libopus.cache_clear()
