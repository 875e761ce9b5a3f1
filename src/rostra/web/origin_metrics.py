"""Prometheus collectors of the origin process: spaces on air, voices, the mixer's clock, dropped
program frames, speaker packets by fate, what speakers sent (bytes, packets, FEC), and each
pipeline's health.

Web plane (origin process). Listener workers append this text to their own /metrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from rostra.media.origin import Origin


class OriginCollector(Collector):
    """Reads the origin's state at scrape time: nothing to keep in step."""

    def __init__(self, origin: Origin) -> None:
        self._origin = origin

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        pipelines = self._origin.pipelines()
        on_air = GaugeMetricFamily("rostra_spaces_on_air", "Spaces whose program is on air")
        on_air.add_metric([], sum(1 for p in pipelines.values() if p.is_on_air))
        yield on_air
        voices = GaugeMetricFamily("rostra_voices", "Speakers connected", labels=["space"])
        late = CounterMetricFamily(
            "rostra_mixer_late_ticks", "Mixer ticks past their deadline", labels=["space"]
        )
        late_frame = CounterMetricFamily(
            "rostra_mixer_late_ticks_over_20ms",
            "Mixer ticks more than one frame (20 ms) past their deadline",
            labels=["space"],
        )
        lateness = GaugeMetricFamily(
            "rostra_mixer_max_lateness_seconds", "Worst mixer tick lateness", labels=["space"]
        )
        dropped = CounterMetricFamily(
            "rostra_program_frames_dropped", "Program frames the encoder missed", labels=["space"]
        )
        ingest = CounterMetricFamily(
            "rostra_ingest_packets",
            "Speaker packets by fate: received, lost, recovered (FEC), concealed (PLC), …",
            labels=["space", "fate"],
        )
        for space_id in pipelines:
            for fate, count in self._origin.ingest_totals(space_id).items():
                ingest.add_metric([space_id, fate], count)
        yield ingest
        yield from self._speaker_received(pipelines)
        for space_id, pipeline in pipelines.items():
            voices.add_metric([space_id], pipeline.voice_count)
            late.add_metric([space_id], pipeline.clock_stats.late_ticks)
            late_frame.add_metric([space_id], pipeline.clock_stats.late_ticks_over_frame)
            lateness.add_metric([space_id], pipeline.clock_stats.max_lateness_s)
            dropped.add_metric([space_id], pipeline.clock_stats.dropped_program_frames)
        yield from (voices, late, late_frame, lateness, dropped)
        degraded = GaugeMetricFamily(
            "rostra_space_degraded",
            "1 while its pipeline reports a problem",
            labels=["space"],
        )
        for space_id in pipelines:
            health = self._origin.health(space_id)
            degraded.add_metric([space_id], 0 if health is None or health.is_ok else 1)
        yield degraded

    def _speaker_received(self, space_ids: Iterable[str]) -> Iterator[CounterMetricFamily]:
        """What speakers sent, as the origin received it: bitrate and FEC are read from these."""
        received_bytes = CounterMetricFamily(
            "rostra_speaker_received_bytes",
            "Opus payload bytes received from speakers",
            labels=["space"],
        )
        received_packets = CounterMetricFamily(
            "rostra_speaker_received_packets",
            "RTP packets received from speakers",
            labels=["space"],
        )
        fec_packets = CounterMetricFamily(
            "rostra_speaker_fec_packets",
            "Speaker packets carrying in-band FEC (Opus LBRR) for the packet before",
            labels=["space"],
        )
        for space_id in space_ids:
            received = self._origin.speaker_received(space_id)
            received_bytes.add_metric([space_id], received.payload_bytes)
            received_packets.add_metric([space_id], received.packets)
            fec_packets.add_metric([space_id], received.fec_packets)
        yield from (received_bytes, received_packets, fec_packets)
