"""Unit costs for the capacity plan, and where each comes from: bench/results, a rehearsal's
report.json, `--unit KEY=VALUE`. Rehearsal plane; file reading only, no network.

Every unit cost is a `Figure` (value and source). A source reads `FILE.json: key path`, `--unit
KEY=VALUE`, `input: …`, `assumption: …`, `derived: …` or `unmeasured: …`. A rehearsal report
gives its figures as `"unit_costs": {KEY: number}`, KEY from `UNIT_KEYS`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# the program's sample rate: a segment's length is counted in its samples
SAMPLE_RATE_HZ = 48_000
# the AAC-LC rate at which the committed benchmarks' segments were encoded (bench/results/, before
# the server's default became 128 kbit/s): measured segment bytes scale from it
SERVER_AAC_KBPS = 96.0
# the server's AAC-LC rate today (rostra.media.codecs.AAC_BITRATE_BPS; the rehearsal plane does not
# import the media plane): what `rostra plan` assumes listeners receive
DEFAULT_AAC_KBPS = 128.0
# the scale-out gate as shipped: `rostra gate --workers 1` on Redis, as bench/gate.py names it
GATE_SERVER = "gate-1w"

UNIT_KEYS: dict[str, str] = {
    "heartbeats_per_gate_core_s": "heartbeats one gate core answers per second, fully busy",
    "joins_per_gate_core_s": "joins one gate core answers per second, fully busy",
    "redis_cpu_us_per_heartbeat": "Redis CPU per heartbeat, microseconds",
    "redis_cpu_us_per_join": "Redis CPU per join, microseconds",
    "segment_bytes": "mean body bytes of one media segment as a listener fetches it",
    "segment_duration_s": "the duration of those segments",
    "segment_bitrate_kbps": "the encoder bitrate of those segments",
    "playlist_bytes": "mean body bytes of one live media playlist",
    "response_header_bytes": "mean bytes of an HTTP response's status line and headers",
    "edge_requests_per_core_s": "requests one edge (nginx) core answers per second",
    "origin_requests_per_s": "requests/s the origin answers behind one edge, per live space",
    "origin_cpu_cores": "origin CPU of one live space with a full stage (13 voices), cores",
    "listeners_per_generator_core": "simulated HLS listeners one load-generator core keeps on time",
    "generator_bytes_per_listener": "load-generator memory per simulated listener, bytes",
}


class PlanInputError(ValueError):
    """An input, a report or a `--unit` the plan cannot use."""


@dataclass(frozen=True, slots=True)
class Figure:
    value: float
    source: str


Units = Mapping[str, Figure]


def fmt(value: float) -> str:
    """1,300,000 · 21,453 · 65.4 · 0.236"""
    if value == int(value) or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def find_bench_results(start: Path | None = None) -> Path | None:
    """bench/results is not installed with the package: find it beside the checkout."""
    candidates = [Path(__file__).resolve(), Path.cwd()]
    if start is not None:
        candidates.insert(0, start)
    for base in candidates:
        for folder in [base, *base.parents]:
            path = folder / "bench" / "results"
            if path.is_dir():
                return path
    return None


def _num(doc: Any, *path: str) -> float | None:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    if isinstance(doc, bool) or not isinstance(doc, int | float):
        return None
    return float(doc)


def _put(units: dict[str, Figure], key: str, value: float | None, source: str) -> None:
    if value is not None and math.isfinite(value) and value > 0:
        units[key] = Figure(value, source)


def _ratio(numerator: float | None, denominator: float | None, scale: float = 1.0) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator * scale


def _gate_units(doc: Any) -> dict[str, Figure]:
    servers = doc.get("servers", []) if isinstance(doc, dict) else []
    server = next((s for s in servers if isinstance(s, dict) and s.get("name") == GATE_SERVER), {})
    at = f"gate.json: servers[{GATE_SERVER}]"
    units: dict[str, Figure] = {}
    for kind in ("heartbeats", "joins"):
        key = f"{kind}_per_gate_core_s"
        _put(
            units,
            key,
            _num(server, kind, "per_server_core_per_s"),
            f"{at}.{kind}.per_server_core_per_s",
        )
    _put(
        units,
        "redis_cpu_us_per_heartbeat",
        _num(doc, "sizing", "redis_cpu_us_per_heartbeat_worst"),
        "gate.json: sizing.redis_cpu_us_per_heartbeat_worst",
    )
    joins_redis = _ratio(
        _num(server, "joins", "redis_cpu_cores"), _num(server, "joins", "rate_per_s"), 1e6
    )
    _put(units, "redis_cpu_us_per_join", joins_redis, f"{at}.joins.redis_cpu_cores / rate_per_s")
    return units


def _levels(doc: Any) -> list[dict[str, Any]]:
    levels = doc.get("levels", []) if isinstance(doc, dict) else []
    return [level for level in levels if isinstance(level, dict)]


def _is_on_time(level: dict[str, Any]) -> bool:
    """A level whose load generator kept up: its edge figures are the edge's, not the client's."""
    generator = level.get("generator")
    return isinstance(generator, dict) and generator.get("is_behind") is False


def _edge_units(doc: Any, name: str = "edge.json") -> dict[str, Figure]:
    levels = _levels(doc)
    units: dict[str, Figure] = {}
    origin = [v for v in (_num(lv, "origin_requests_per_s") for lv in levels) if v is not None]
    if origin:
        audiences = [_num(lv, "listeners") or 0 for lv in levels]
        span = f"{fmt(min(audiences))}–{fmt(max(audiences))}"
        source = f"{name}: levels[].origin_requests_per_s, the most over {span} listeners"
        _put(units, "origin_requests_per_s", max(origin), source)
    on_time = [lv for lv in levels if _num(lv, "edge_cpu_core_pct") and _is_on_time(lv)]
    if on_time:
        level = max(on_time, key=lambda lv: _num(lv, "listeners") or 0)
        per_core = _ratio(_num(level, "edge_requests_per_s"), _num(level, "edge_cpu_core_pct"), 100)
        at = f"{name}: levels[listeners={fmt(_num(level, 'listeners') or 0)}]"
        source = f"{at}.edge_requests_per_s / edge_cpu_core_pct"
        _put(units, "edge_requests_per_core_s", per_core, source)
    return units


def _cost_units(doc: Any) -> dict[str, Figure]:
    levels = _levels(doc)
    if not levels:
        return {}
    full = max(levels, key=lambda lv: _num(lv, "voices") or 0)
    units: dict[str, Figure] = {}
    at = f"cost.json: levels[voices={fmt(_num(full, 'voices') or 0)}].server_cpu.core_pct / 100"
    _put(units, "origin_cpu_cores", _ratio(_num(full, "server_cpu", "core_pct"), 100), at)
    return units


def _soak_units(doc: Any) -> dict[str, Figure]:
    units: dict[str, Figure] = {}
    segments = _num(doc, "listeners", "hls", "segments")
    mean = _ratio(_num(doc, "listeners", "hls", "bytes"), segments)
    if mean is not None and segments:
        source = (
            f"soak.json: listeners.hls.bytes / listeners.hls.segments ({fmt(segments)} fetched)"
        )
        _put(units, "segment_bytes", mean, source)
        # the soak's players listened to the server's own AAC-LC rendition
        units["segment_bitrate_kbps"] = Figure(
            SERVER_AAC_KBPS,
            "assumption: soak.json's segments carry AAC-LC at 96 kbit/s, the server's rate then",
        )
    return units


def _restart_units(doc: Any) -> dict[str, Figure]:
    units: dict[str, Figure] = {}
    samples = _num(doc, "segments_on_disk", "full_segment_samples")
    source = f"restart.json: segments_on_disk.full_segment_samples / {fmt(SAMPLE_RATE_HZ)} Hz"
    _put(units, "segment_duration_s", _ratio(samples, SAMPLE_RATE_HZ), source)
    return units


def _capacity_units(doc: Any, name: str = "rehearse_capacity.json") -> dict[str, Figure]:
    """Top-level keys of bench/rehearse_capacity.py's file: listeners kept on time per core, and
    the generator's memory per listener in KiB (its RSS held minus idle, over the users). A run
    whose players were not fed (`targets.is_fed` false) gives nothing."""
    units: dict[str, Figure] = {}
    if _num(doc, "targets", "stall_ratio_held") is not None and not doc["targets"].get("is_fed"):
        return units
    at = name
    key = "listeners_per_generator_core_on_time"
    _put(units, "listeners_per_generator_core", _num(doc, key), f"{at}: {key}")
    kib = _num(doc, "kb_per_listener")
    source = f"{at}: kb_per_listener × 1,024"
    _put(units, "generator_bytes_per_listener", kib * 1024 if kib else None, source)
    return units


BENCH_READERS: dict[str, Callable[[Any], dict[str, Figure]]] = {
    "gate.json": _gate_units,
    "edge.json": _edge_units,
    "cost.json": _cost_units,
    "soak.json": _soak_units,
    "restart.json": _restart_units,
    "rehearse_capacity.json": _capacity_units,
}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanInputError(f"{path}: not a readable JSON file ({exc})") from exc


# measured with low-latency (LL-HLS) players: they win over the legacy files in that mode
LL_BENCH_READERS: dict[str, Callable[[Any], dict[str, Figure]]] = {
    "edge_ll.json": lambda doc: _edge_units(doc, "edge_ll.json"),
    "rehearse_capacity_ll.json": lambda doc: _capacity_units(doc, "rehearse_capacity_ll.json"),
}


def load_bench_units(results: Path | None, *, hls_mode: str = "legacy") -> dict[str, Figure]:
    """The unit costs measured by bench/ and kept in its results folder; absent files give none.
    With `hls_mode` "ll", figures measured with LL-HLS players win where they exist."""
    units: dict[str, Figure] = {}
    if results is None:
        return units
    readers = dict(BENCH_READERS)
    if hls_mode == "ll":
        readers.update(LL_BENCH_READERS)
    for name, reader in readers.items():
        if (results / name).is_file():
            units.update(reader(_read_json(results / name)))
    return units


def load_report_units(path: Path) -> dict[str, Figure]:
    """A rehearsal report's `unit_costs`; a key this plan does not know, or null, is skipped."""
    doc = _read_json(path)
    costs = doc.get("unit_costs") if isinstance(doc, dict) else None
    if not isinstance(costs, dict):
        raise PlanInputError(f"{path}: has no 'unit_costs' object")
    units: dict[str, Figure] = {}
    for key in UNIT_KEYS:
        _put(units, key, _num(costs, key), f"{path.name}: unit_costs.{key}")
    return units


def parse_unit_overrides(items: Iterable[str]) -> dict[str, Figure]:
    """`KEY=VALUE` pairs from the command line, KEY from UNIT_KEYS, VALUE a positive number."""
    units: dict[str, Figure] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key not in UNIT_KEYS:
            known = ", ".join(UNIT_KEYS)
            raise PlanInputError(f"'{item}' is not KEY=VALUE with KEY one of: {known}")
        try:
            value = float(text)
        except ValueError:
            raise PlanInputError(f"'{item}': '{text}' is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise PlanInputError(f"'{item}': the value must be a positive number")
        units[key] = Figure(value, f"--unit {key}={text.strip()}")
    return units
