"""The simulated player: it plays once its start buffer is full, drains in real time, stalls
when it runs dry (never while starting), and knows how far behind live the audio it plays is.
The live playlist is read as a player reads it, date-times carried from segment to segment."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rostra.rehearse.hls_player import PlayerBuffer, PlayerState, parse_live_playlist
from rostra.rehearse.observations import Histogram, Observations

SEGMENT_S = 1.0


def test_waiting_for_the_start_buffer_is_start_up_not_a_stall() -> None:
    player = PlayerBuffer(2.0, now_s=100.0)
    player.add(SEGMENT_S, 50.0, now_s=100.5)
    player.advance(103.0)  # 2.5 s with one second buffered: still starting
    assert player.state == PlayerState.STARTING
    assert (player.tally.stalls, player.tally.stall_s, player.tally.played_s) == (0, 0.0, 0.0)
    player.add(SEGMENT_S, 51.0, now_s=103.0)
    assert player.state == PlayerState.PLAYING
    assert player.started_at_s == 103.0


def test_running_dry_is_a_stall_that_lasts_until_the_buffer_refills() -> None:
    player = PlayerBuffer(2.0, now_s=0.0)
    player.add(SEGMENT_S, 0.0, now_s=0.0)
    player.add(SEGMENT_S, 1.0, now_s=0.0)  # plays from 0 with 2 s buffered
    player.add(SEGMENT_S, 2.0, now_s=1.0)  # 1 s played, 2 s buffered
    player.advance(3.5)  # dry at 3.0: a stall since then
    assert player.state == PlayerState.STALLED
    assert (player.tally.stalls, player.tally.stall_s, player.tally.played_s) == (1, 0.5, 3.0)
    player.add(SEGMENT_S, 3.0, now_s=4.0)  # 1 s buffered < 2 s: still stalled
    assert player.state == PlayerState.STALLED
    player.add(SEGMENT_S, 4.0, now_s=5.0)  # 2 s buffered: plays again
    assert player.state == PlayerState.PLAYING
    assert (player.tally.stalls, player.tally.stall_s, player.tally.played_s) == (1, 2.0, 3.0)
    player.advance(6.0)
    taken = player.take()
    assert (taken.stalls, taken.stall_s, taken.played_s) == (1, 2.0, 4.0)
    assert (player.tally.stalls, player.tally.stall_s, player.tally.played_s) == (0, 0.0, 0.0)


def test_a_segment_arriving_as_the_buffer_empties_is_no_stall() -> None:
    player = PlayerBuffer(1.0, now_s=0.0)
    player.add(SEGMENT_S, 0.0, now_s=0.0)
    player.add(SEGMENT_S, 1.0, now_s=1.0)  # exactly when the first one ran out
    player.add(SEGMENT_S, 2.0, now_s=2.0)
    player.advance(2.5)
    assert player.state == PlayerState.PLAYING
    assert (player.tally.stalls, player.tally.stall_s, player.tally.played_s) == (0, 0.0, 2.5)


def test_latency_to_live_is_the_wall_clock_minus_the_date_time_being_played() -> None:
    player = PlayerBuffer(2.0, now_s=10.0)
    player.add(SEGMENT_S, 7.0, now_s=10.0)
    assert player.latency_to_live_s(10.0) is None  # not playing yet
    player.add(SEGMENT_S, 8.0, now_s=10.0)
    assert player.latency_to_live_s(10.0) == pytest.approx(3.0)
    assert player.latency_to_live_s(11.5) == pytest.approx(3.0)  # inside the second segment
    player.add(SEGMENT_S, 10.0, now_s=11.5)  # a gap in date-times: the latency follows it
    assert player.latency_to_live_s(12.25) == pytest.approx(2.0)  # 0.25 s into it


PLAYLIST = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:1
#EXT-X-MEDIA-SEQUENCE:41
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:05.000Z
#EXTINF:1.024,
seg-41.m4s
#EXTINF:1.024,
seg-42.m4s
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:05:00.500Z
#EXTINF:0.512,
seg-43.m4s
"""


def test_a_live_playlist_gives_each_segment_its_number_and_date_time() -> None:
    playlist = parse_live_playlist(PLAYLIST)
    start_s = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert playlist.target_duration_s == 1
    assert playlist.init_uri == "init.mp4"
    assert not playlist.is_ended
    assert [(s.uri, s.sequence_number, s.duration_s) for s in playlist.segments] == [
        ("seg-41.m4s", 41, 1.024),
        ("seg-42.m4s", 42, 1.024),
        ("seg-43.m4s", 43, 0.512),
    ]
    dates = [s.program_date_time_s for s in playlist.segments]
    assert dates == pytest.approx([start_s, start_s + 1.024, start_s + 55.5])
    with pytest.raises(ValueError, match="#EXTM3U"):
        parse_live_playlist("not a playlist")


def test_observations_merge_and_survive_json() -> None:
    one, two = Observations(), Observations()
    for value_s in (0.2, 0.4, 0.8):
        one.at(1000.2).ttfa.add(value_s)
    one.at(1000.7).joins["admitted"] += 3
    one.at(1001.1).live = 3
    two.at(1001.9).live = 2
    two.at(1001.0).stall_s += 0.5
    two.at(1001.0).attacks["forged-ticket:401"] += 1
    merged = Observations.from_json(one.to_json())
    merged.merge(Observations.from_json(two.to_json()))
    assert merged.live_series() == [(1000, 0), (1001, 5)]
    total = merged.total()
    assert total.joins == {"admitted": 3}
    assert total.attacks == {"forged-ticket:401": 1}
    assert total.stall_s == 0.5
    assert total.ttfa.count == 3
    assert total.ttfa.max_s == 0.8
    median = total.ttfa.quantile(0.5)
    assert median is not None
    assert median == pytest.approx(0.4, rel=0.03)


def test_a_histogram_keeps_buckets_not_samples() -> None:
    histogram = Histogram()
    for index in range(100_000):
        histogram.add(0.5 + (index % 1000) / 1000)  # 0.5 s to 1.5 s
    assert histogram.count == 100_000
    assert len(histogram.buckets) < 30
    p95 = histogram.quantile(0.95)
    assert p95 is not None
    assert p95 == pytest.approx(1.45, rel=0.03)
