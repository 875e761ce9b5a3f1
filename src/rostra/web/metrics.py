"""Prometheus collectors for the gate: joins, heartbeats, rejections by reason, store health.

Web plane. Read at scrape time from the gate's counters: nothing to keep in step.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from rostra.audience.gate import Gate


class GateCollector(Collector):
    def __init__(self, gate: Gate) -> None:
        self._gate = gate

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        counters = dict(self._gate.counters)
        requests = CounterMetricFamily(
            "rostra_gate_requests", "Accepted listener writes by kind", labels=["kind"]
        )
        for kind in ("joins", "heartbeats", "renewals", "leaves", "reactions", "hands"):
            requests.add_metric([kind], counters.get(kind, 0))
        yield requests
        rejected = CounterMetricFamily(
            "rostra_gate_rejections", "Refused listener writes by reason", labels=["reason"]
        )
        for key, value in counters.items():
            if key.startswith("rejected:"):
                rejected.add_metric([key.split(":", 1)[1]], value)
        yield rejected
        stats = self._gate.presence.stats
        flushed = CounterMetricFamily(
            "rostra_presence_flushed_ids", "Listener ids written to the presence store"
        )
        flushed.add_metric([], stats.flushed_ids)
        failed = CounterMetricFamily(
            "rostra_presence_failed_flushes", "Flushes the presence store refused (kept to retry)"
        )
        failed.add_metric([], stats.failed_flushes)
        latency = GaugeMetricFamily(
            "rostra_presence_store_latency_seconds", "Duration of the last presence store write"
        )
        latency.add_metric([], stats.store_latency_s)
        yield from (flushed, failed, latency)
        listeners = GaugeMetricFamily(
            "rostra_listeners", "Ticketed listeners heartbeating in the window", labels=["space"]
        )
        error = GaugeMetricFamily(
            "rostra_listeners_error_ratio", "Relative 1σ of the listener count", labels=["space"]
        )
        stale = GaugeMetricFamily(
            "rostra_listeners_stale", "1 when the count could not be refreshed", labels=["space"]
        )
        for space_id, snapshot in self._gate.presence.last_counts().items():
            listeners.add_metric([space_id], snapshot.listeners)
            error.add_metric([space_id], snapshot.error)
            stale.add_metric([space_id], float(snapshot.is_stale))
        yield from (listeners, error, stale)
