"""The jitter buffer on a real Opus speech stream, in simulated time: one pop per 20 ms tick.

Packets are pushed by arrival time before each pop; no test sleeps except the two-thread one.
Sequence numbers and timestamps start just below their wrap, so every stream crosses it.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from rostra.media.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ, Pcm
from rostra.media.jitter import FrameSource, JitterBuffer
from rostra.media.opus import OpusDecoder, OpusError
from tests.media.jitter_playout import (
    FRAME_MS,
    encode,
    longest_run,
    lossy_arrivals,
    on_time,
    play_with_loss,
    playout,
    rtp,
    simulate,
    speech_pcm,
    stock_delivered,
    straight_decode,
)

DEFAULT_TARGET_DELAY_MS = 40
END_FADE_FRAMES = 3  # the default 60 ms stall fade after a stream's last packet


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Pcm:
    return speech_pcm(tmp_path_factory.mktemp("speech"))


@pytest.fixture(scope="module")
def packets(speech: Pcm) -> list[bytes]:
    return encode(speech)


@pytest.fixture(scope="module")
def reference(packets: list[bytes]) -> list[Pcm]:
    return straight_decode(packets)


def correlation(a: Sequence[Pcm], b: Sequence[Pcm]) -> float:
    return float(np.corrcoef(np.concatenate(a), np.concatenate(b))[0, 1])


def test_lossless_stream_plays_exactly_the_straight_decode(
    packets: list[bytes], reference: list[Pcm]
) -> None:
    buffer = JitterBuffer()
    frames = simulate(buffer, packets, on_time(len(packets)), pops=len(packets) + 10)

    first = next(index for index, frame in enumerate(frames) if frame is not None)
    assert frames[:first] == [None] * first
    assert DEFAULT_TARGET_DELAY_MS <= first * FRAME_MS <= DEFAULT_TARGET_DELAY_MS + FRAME_MS
    played = playout(frames, len(packets))
    assert {frame.source for frame in played} == {FrameSource.DECODED}
    assert np.array_equal(
        np.concatenate([frame.pcm for frame in played]), np.concatenate(reference)
    )
    stats = buffer.stats
    assert (stats.received, stats.lost, stats.late, stats.dropped) == (len(packets), 0, 0, 0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_three_percent_loss_leaves_at_most_3_5_percent_missing_and_no_gap_over_60_ms(
    packets: list[bytes], reference: list[Pcm], seed: int
) -> None:
    loss = play_with_loss(packets, reference, seed)
    kept, played, missing = loss.kept, loss.played, loss.missing
    assert sum(missing) / len(played) <= 0.035
    assert longest_run(missing) * FRAME_MS <= 60
    sources = [frame.source for frame in played]
    stats = loss.stats
    assert stats.lost == len(packets) - len(kept)
    assert stats.recovered == sources.count(FrameSource.RECOVERED) > 0
    assert stats.concealed == sources.count(FrameSource.CONCEALED)
    assert stats.lost == stats.recovered + stats.concealed
    assert (stats.underruns, stats.stalls) == (END_FADE_FRAMES, 1)  # only after the last packet
    decoded = [k for k, source in enumerate(sources) if source is FrameSource.DECODED]
    recovered = [k for k, source in enumerate(sources) if source is FrameSource.RECOVERED]
    assert correlation([played[k].pcm for k in decoded], [reference[k] for k in decoded]) > 0.99
    assert correlation([played[k].pcm for k in recovered], [reference[k] for k in recovered]) > 0.7


def test_stock_aiortc_buffer_would_lose_far_more_of_the_same_stream(packets: list[bytes]) -> None:
    delivered = stock_delivered(packets, lossy_arrivals(len(packets), seed=1))
    assert 1 - sum(delivered) / len(packets) > 0.10


def test_packets_reordered_within_40_ms_play_in_order_without_loss(
    packets: list[bytes], reference: list[Pcm]
) -> None:
    rng = random.Random(5)
    # the first packet comes early, every later one up to 40 ms late: the worst case
    arrivals = [
        (at + rng.uniform(0, 40) * (index > 0), index) for at, index in on_time(len(packets))
    ]
    order = [index for _, index in sorted(arrivals)]
    assert sum(a > b for a, b in itertools.pairwise(order)) > len(packets) // 10
    duplicates = arrivals[::25]  # delivered twice, back to back

    buffer = JitterBuffer()
    frames = simulate(buffer, packets, arrivals + duplicates, pops=len(packets) + 10)
    played = playout(frames, len(packets))

    assert {frame.source for frame in played} == {FrameSource.DECODED}
    assert np.array_equal(
        np.concatenate([frame.pcm for frame in played]), np.concatenate(reference)
    )
    stats = buffer.stats
    assert (stats.lost, stats.late, stats.dropped) == (0, 0, 0)
    assert stats.duplicates == len(duplicates)


@pytest.mark.parametrize("packet_ms", [10, 40, 60])
def test_packets_of_10_to_60_ms_play_continuously(speech: Pcm, packet_ms: int) -> None:
    packets = encode(speech, packet_ms)
    samples = SAMPLE_RATE_HZ * packet_ms // 1000
    buffer = JitterBuffer()
    pops = len(packets) * packet_ms // FRAME_MS
    frames = simulate(
        buffer,
        packets,
        on_time(len(packets), packet_ms),
        pops=pops + 10,
        header=lambda index: rtp(index, samples),
    )
    played = playout(frames, pops)

    assert {frame.source for frame in played} == {FrameSource.DECODED}
    assert np.array_equal(
        np.concatenate([frame.pcm for frame in played]),
        np.concatenate(straight_decode(packets))[: pops * FRAME_SAMPLES],
    )
    assert (buffer.stats.lost, buffer.stats.dropped) == (0, 0)


def test_stalled_speaker_goes_silent_within_100_ms_and_resumes(
    packets: list[bytes], reference: list[Pcm]
) -> None:
    # the network drops everything between packets 100 and 150, then recovers
    arrivals = [arrival for arrival in on_time(len(packets)) if not 100 <= arrival[1] < 150]
    buffer = JitterBuffer()
    frames = simulate(buffer, packets, arrivals, pops=len(packets) + 10)

    start = frames.index(next(frame for frame in frames if frame is not None))
    last_of_packet_99 = start + 99
    last_frame = frames[last_of_packet_99]
    assert last_frame is not None
    assert last_frame.source is FrameSource.DECODED
    fade_frames = frames[last_of_packet_99 + 1 :].index(None)
    assert fade_frames * FRAME_MS <= 100
    assert all(frame is None for frame in frames[last_of_packet_99 + 1 + fade_frames : 150])
    resumed = next(tick for tick in range(150, len(frames)) if frames[tick] is not None)
    assert (resumed - 150) * FRAME_MS <= DEFAULT_TARGET_DELAY_MS + FRAME_MS
    tail = [frame for frame in frames[resumed : resumed + 200] if frame is not None]
    assert len(tail) == 200
    assert {frame.source for frame in tail} == {FrameSource.DECODED}
    assert correlation([frame.pcm for frame in tail], reference[150:350]) > 0.99
    stats = buffer.stats
    assert stats.stalls == 2  # the outage, then the end of the stream
    assert stats.underruns == 2 * fade_frames
    assert stats.lost == stats.late == 0


def test_talk_pause_is_not_counted_as_loss(packets: list[bytes]) -> None:
    pause_frames = 25  # the sender stopped sending (DTX) for 500 ms after packet 99

    def paused(index: int) -> tuple[int, int]:
        sequence, timestamp = rtp(index)
        return sequence, timestamp + (pause_frames * FRAME_SAMPLES if index >= 100 else 0)

    arrivals = [(at + (pause_frames * FRAME_MS if i >= 100 else 0), i) for at, i in on_time(300)]
    buffer = JitterBuffer()
    frames = simulate(buffer, packets, arrivals, pops=300 + pause_frames + 10, header=paused)

    stats = buffer.stats
    assert (stats.lost, stats.concealed, stats.late) == (0, 0, 0)
    resumed = next(tick for tick in range(100 + pause_frames, len(frames)) if frames[tick])
    assert all(frame is not None for frame in frames[resumed : resumed + 200])
    assert all(
        frame is not None and frame.source is FrameSource.DECODED
        for frame in frames[resumed : resumed + 200]
    )


def test_timestamp_jump_with_contiguous_sequence_plays_as_silence(
    packets: list[bytes],
) -> None:
    skipped_frames = 3  # the sender's timestamps skip 60 ms after packet 99; packets keep coming

    def skipping(index: int) -> tuple[int, int]:
        sequence, timestamp = rtp(index)
        return sequence, timestamp + (skipped_frames * FRAME_SAMPLES if index >= 100 else 0)

    buffer = JitterBuffer()
    frames = simulate(buffer, packets, on_time(300), pops=300 + 10, header=skipping)
    played = playout(frames, 300 + skipped_frames)

    sources = [frame.source for frame in played]
    assert sources[:100] == [FrameSource.DECODED] * 100
    assert sources[100 : 100 + skipped_frames] == [FrameSource.SILENCE] * skipped_frames
    assert all(not frame.pcm.any() for frame in played[100 : 100 + skipped_frames])
    assert sources[100 + skipped_frames :] == [FrameSource.DECODED] * 200
    stats = buffer.stats
    assert (stats.lost, stats.concealed, stats.stalls) == (0, 0, 1)  # stalled at the end only


def test_sender_restart_with_a_new_sequence_base_recovers(packets: list[bytes]) -> None:
    def restarted(index: int) -> tuple[int, int]:  # a new random base from packet 200 on
        if index < 200:
            return rtp(index)
        return (12_345 + index) % 2**16, (987_654_321 + index * FRAME_SAMPLES) % 2**32

    buffer = JitterBuffer()
    frames = simulate(buffer, packets, on_time(400), pops=400, header=restarted)

    assert buffer.stats.restarts == 1
    assert frames[200:].count(None) <= DEFAULT_TARGET_DELAY_MS // FRAME_MS + 2
    assert all(frame is not None and frame.source is FrameSource.DECODED for frame in frames[210:])


def test_packet_arriving_after_its_turn_is_concealed_then_counted_late(
    packets: list[bytes],
) -> None:
    arrivals = [(at + (300 if index == 120 else 0), index) for at, index in on_time(300)]
    buffer = JitterBuffer()
    played = playout(simulate(buffer, packets, arrivals, pops=300), 290)

    stats = buffer.stats
    assert (stats.lost, stats.late) == (1, 1)
    assert played[120].source in (FrameSource.RECOVERED, FrameSource.CONCEALED)
    assert {frame.source for frame in played[121:]} == {FrameSource.DECODED}


def test_garbage_payloads_are_concealed_and_counted_never_raised(
    packets: list[bytes],
) -> None:
    rng = random.Random(11)
    garbled = list(packets[:400])
    garbage_indices = range(50, 400, 25)
    for index in garbage_indices:
        garbled[index] = rng.randbytes(rng.randrange(0, 120))
    garbled[50] = bytes([0x03, 0x00])  # a code 3 packet with no frames: always invalid
    rejected = []
    with OpusDecoder() as probe:
        for index in garbage_indices:
            try:
                probe.decode(garbled[index])
            except OpusError:
                rejected.append(index)

    buffer = JitterBuffer()
    played = playout(simulate(buffer, garbled, on_time(400), pops=410), 400)

    assert buffer.stats.corrupt == len(rejected) > 0
    assert all(played[index].source is FrameSource.CONCEALED for index in rejected)
    assert all(frame.pcm.shape == (FRAME_SAMPLES,) for frame in played)
    assert all(np.all(np.isfinite(frame.pcm)) for frame in played)


def test_burst_beyond_max_delay_drops_oldest_to_catch_up(packets: list[bytes]) -> None:
    # the network holds packets 50–79 (600 ms) back, then delivers them at once
    arrivals = [(80 * FRAME_MS if 50 <= i < 80 else at, i) for at, i in on_time(300)]
    depths_ms: list[float] = []
    buffer = JitterBuffer(max_delay_ms=200)
    frames = simulate(buffer, packets, arrivals, pops=300, depths_ms=depths_ms)

    playing_depths_ms = [depth for depth, frame in zip(depths_ms, frames, strict=True) if frame]
    assert max(playing_depths_ms) <= 200
    assert buffer.stats.dropped >= 20
    assert all(frame is not None and frame.source is FrameSource.DECODED for frame in frames[90:])
    assert max(depths_ms[90:]) <= DEFAULT_TARGET_DELAY_MS


def test_fast_sender_clock_keeps_the_delay_bounded(packets: list[bytes]) -> None:
    # the sender's clock runs 2 % fast: 13.5 s of its packets arrive in 13.2 s of the mixer's
    arrivals = [(index * FRAME_MS * 0.98, index) for index in range(len(packets))]
    depths_ms: list[float] = []
    buffer = JitterBuffer(max_delay_ms=200)
    frames = simulate(buffer, packets, arrivals, pops=len(packets) - 40, depths_ms=depths_ms)

    assert max(depths_ms) <= 200
    assert all(frame is not None and frame.source is FrameSource.DECODED for frame in frames[2:])
    stats = buffer.stats
    assert stats.dropped > 0
    assert (stats.lost, stats.late, stats.underruns) == (0, 0, 0)


def test_push_and_pop_from_two_threads_for_two_seconds(packets: list[bytes]) -> None:
    buffer = JitterBuffer()
    errors: list[BaseException] = []
    deadline = time.monotonic() + 2.0
    pushed = popped = 0

    def push_forever() -> None:
        nonlocal pushed
        try:
            while time.monotonic() < deadline:
                index = pushed % len(packets)
                buffer.push(*rtp(pushed), packets[index])
                pushed += 1
                if pushed % 8 == 0:
                    time.sleep(0.001)
        except BaseException as error:  # noqa: BLE001 — reported to the test thread
            errors.append(error)

    pusher = threading.Thread(target=push_forever)
    pusher.start()
    while time.monotonic() < deadline:
        pcm = buffer.pop()
        assert pcm is None or (pcm.shape == (FRAME_SAMPLES,) and pcm.dtype == np.float32)
        popped += 1
        time.sleep(0.001)
    pusher.join(timeout=5)

    assert not pusher.is_alive()
    assert errors == []
    stats = buffer.stats
    assert stats.received == pushed > 0
    assert popped > 0
    assert stats.depth_ms <= 2 * 200 + 2 * FRAME_MS
