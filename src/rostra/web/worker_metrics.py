"""One /metrics for all listener workers of a machine: each worker writes its own metrics to the
run folder every second, and whichever worker a scrape reaches answers with all of them merged —
counters and per-worker gauges summed, shared gauges (the count, read from one store) as the
highest any worker read.

Web plane. A worker gone for more than 10 s is left out; its counters leave the sum with it, as
when a process restarts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

WRITE_INTERVAL_S = 1.0
FRESH_S = 10.0
# gauges each worker holds a part of: summed; every other gauge is read from one shared store,
# at slightly different moments: the highest is kept
SUMMED_GAUGES = frozenset({"rostra_worker_stream_listeners"})
SUMMED_TYPES = frozenset({"counter"})


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry, run_dir: Path) -> None:
        self._registry = registry
        self._run_dir = run_dir
        self._path = run_dir / f"metrics-{os.getpid()}.prom"

    async def run(self) -> None:
        """Write this worker's metrics every second, until cancelled."""
        try:
            while True:
                await asyncio.sleep(WRITE_INTERVAL_S)
                self._write()
        finally:
            self._path.unlink(missing_ok=True)

    def _write(self) -> None:
        temporary = self._path.with_suffix(".tmp")
        try:
            temporary.write_bytes(generate_latest(self._registry))
            temporary.replace(self._path)
        except OSError as error:
            log.warning("worker metrics not written", extra={"error": str(error)[:200]})

    def merged_text(self) -> bytes:
        """Every fresh worker's metrics, this one's as of now."""
        texts = [generate_latest(self._registry).decode()]
        now_s = time.time()
        for path in self._run_dir.glob("metrics-*.prom"):
            if path == self._path:
                continue
            try:
                if now_s - path.stat().st_mtime <= FRESH_S:
                    texts.append(path.read_text())
            except OSError:
                continue
        merged = CollectorRegistry()
        merged.register(_Merged(texts))
        return generate_latest(merged)


class _Merged(Collector):
    def __init__(self, texts: list[str]) -> None:
        self._texts = texts

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        values: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
        for text in self._texts:
            for family in text_string_to_metric_families(text):
                families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                is_summed = family.type in SUMMED_TYPES or family.name in SUMMED_GAUGES
                for sample in family.samples:
                    key = (family.name, sample.name, tuple(sorted(sample.labels.items())))
                    before = values.get(key)
                    if before is None:
                        values[key] = sample.value
                    else:
                        values[key] = (
                            before + sample.value if is_summed else max(before, sample.value)
                        )
        for (family_name, sample_name, labels), value in values.items():
            families[family_name].add_sample(sample_name, dict(labels), value)
        yield from families.values()
