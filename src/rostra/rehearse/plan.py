"""Capacity plan: measured unit costs (bench/results, a rehearsal's report.json, `--unit`) turned
into the gate cores, Redis nodes, edge egress and requests, origin load and load-generator cores
that N listeners need. Rehearsal plane; arithmetic and file reading only, no network.

Every unit cost is a `Figure` (value and source). Each plan line names the figures, inputs and
assumptions it was computed from; a figure nobody measured makes its line `unmeasured` (or a lower
bound that says what it lacks), never a guess. A source reads `FILE.json: key path`, `--unit
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
# the server's AAC-LC rate, at which the benchmarks' segments were encoded
SERVER_AAC_KBPS = 96.0
# Redis runs commands on one core; keep it at most half busy so a surge has room
REDIS_BUSY_PCT = 50.0
# the scale-out gate as shipped: `rostra gate --workers 1` on Redis, as bench/gate.py names it
GATE_SERVER = "gate-1w"
BYTES_PER_GB = 1e9
BITS_PER_GBIT = 1e9

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
HOW_TO_MEASURE = {
    "listeners_per_generator_core": "run bench/rehearse_capacity.py",
    "generator_bytes_per_listener": "run bench/rehearse_capacity.py",
    "playlist_bytes": "give a rehearsal's --from report.json or --unit KEY=VALUE",
    "response_header_bytes": "give a rehearsal's --from report.json or --unit KEY=VALUE",
}
DEFAULT_HOW = "run bench/, or give --from report.json or --unit KEY=VALUE"


class PlanInputError(ValueError):
    """An input, a report or a `--unit` the plan cannot use."""


@dataclass(frozen=True, slots=True)
class Figure:
    value: float
    source: str


Units = Mapping[str, Figure]


@dataclass(frozen=True, slots=True)
class PlanInputs:
    listeners: int
    heartbeat_s: float = 20.0
    segment_s: float = 1.024
    bitrate_kbps: float = SERVER_AAC_KBPS
    join_window_s: float = 300.0
    busy_pct: float = 70.0
    is_gate_behind_edge: bool = True

    def __post_init__(self) -> None:
        positive = ("listeners", "heartbeat_s", "segment_s", "bitrate_kbps", "join_window_s")
        for name in positive:
            if getattr(self, name) <= 0:
                raise PlanInputError(f"{name} is {getattr(self, name)}; it must be > 0")
        if not 0 < self.busy_pct <= 100:
            raise PlanInputError(f"busy_pct is {self.busy_pct}; it must be in (0, 100]")

    @property
    def target_duration_s(self) -> int:
        """RFC 8216: the longest segment duration rounded to the nearest integer, at least 1."""
        return max(1, round(self.segment_s))

    @property
    def busy(self) -> float:
        return self.busy_pct / 100


@dataclass(frozen=True, slots=True)
class PlanLine:
    key: str
    section: str
    label: str
    value: float | None  # None: unmeasured
    unit: str
    source: str
    lacks: tuple[str, ...] = ()  # unit keys not measured: the value is a lower bound, or None

    @property
    def is_lower_bound(self) -> bool:
        return self.value is not None and bool(self.lacks)


@dataclass(frozen=True, slots=True)
class Plan:
    inputs: PlanInputs
    units: Units
    lines: tuple[PlanLine, ...]

    def line(self, key: str) -> PlanLine:
        for line in self.lines:
            if line.key == key:
                return line
        raise KeyError(key)

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": {
                "listeners": self.inputs.listeners,
                "heartbeat_s": self.inputs.heartbeat_s,
                "segment_s": self.inputs.segment_s,
                "target_duration_s": self.inputs.target_duration_s,
                "bitrate_kbps": self.inputs.bitrate_kbps,
                "join_window_s": self.inputs.join_window_s,
                "busy_pct": self.inputs.busy_pct,
                "gate_behind_edge": self.inputs.is_gate_behind_edge,
            },
            "unit_costs": {
                key: {"value": fig.value, "source": fig.source}
                for key, fig in sorted(self.units.items())
            },
            "lines": [
                {
                    "key": line.key,
                    "section": line.section,
                    "label": line.label,
                    "value": line.value,
                    "unit": line.unit,
                    "lower_bound": line.is_lower_bound,
                    "unmeasured": list(line.lacks),
                    "source": line.source,
                }
                for line in self.lines
            ],
        }


def fmt(value: float) -> str:
    """1,300,000 · 21,453 · 65.4 · 0.236"""
    if value == int(value) or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:.4g}"


# --- unit costs: where they come from ---------------------------------------------------------


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


def _edge_units(doc: Any) -> dict[str, Figure]:
    levels = _levels(doc)
    units: dict[str, Figure] = {}
    origin = [v for v in (_num(lv, "origin_requests_per_s") for lv in levels) if v is not None]
    if origin:
        audiences = [_num(lv, "listeners") or 0 for lv in levels]
        span = f"{fmt(min(audiences))}–{fmt(max(audiences))}"
        source = f"edge.json: levels[].origin_requests_per_s, the most over {span} listeners"
        _put(units, "origin_requests_per_s", max(origin), source)
    on_time = [lv for lv in levels if _num(lv, "edge_cpu_core_pct") and _is_on_time(lv)]
    if on_time:
        level = max(on_time, key=lambda lv: _num(lv, "listeners") or 0)
        per_core = _ratio(_num(level, "edge_requests_per_s"), _num(level, "edge_cpu_core_pct"), 100)
        at = f"edge.json: levels[listeners={fmt(_num(level, 'listeners') or 0)}]"
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
            SERVER_AAC_KBPS, "assumption: soak.json's segments carry the server's AAC-LC, kbit/s"
        )
    return units


def _restart_units(doc: Any) -> dict[str, Figure]:
    units: dict[str, Figure] = {}
    samples = _num(doc, "segments_on_disk", "full_segment_samples")
    source = f"restart.json: segments_on_disk.full_segment_samples / {fmt(SAMPLE_RATE_HZ)} Hz"
    _put(units, "segment_duration_s", _ratio(samples, SAMPLE_RATE_HZ), source)
    return units


def _capacity_units(doc: Any) -> dict[str, Figure]:
    """Top-level keys of bench/rehearse_capacity.py's file: listeners kept on time per core, and
    the generator's memory per listener in KiB (its RSS held minus idle, over the users)."""
    units: dict[str, Figure] = {}
    at = "rehearse_capacity.json"
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


def load_bench_units(results: Path | None) -> dict[str, Figure]:
    """The unit costs measured by bench/ and kept in its results folder; absent files give none."""
    units: dict[str, Figure] = {}
    if results is None:
        return units
    for name, reader in BENCH_READERS.items():
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


# --- the plan ----------------------------------------------------------------------------------


def _unmeasured(lacks: Iterable[str]) -> str:
    hows: dict[str, list[str]] = {}
    for key in lacks:
        hows.setdefault(HOW_TO_MEASURE.get(key, DEFAULT_HOW), []).append(key)
    return "; ".join(f"unmeasured: {how} ({', '.join(keys)})" for how, keys in hows.items())


def _cite(units: Units, keys: Iterable[str]) -> list[str]:
    return [f"{units[k].source} = {fmt(units[k].value)}" for k in keys if k in units]


def _line(
    units: Units,
    head: tuple[str, str, str, str],
    needs: tuple[str, ...],
    compute: Callable[[Mapping[str, float]], float],
    notes: Iterable[str] = (),
) -> PlanLine:
    """A line computed from unit costs `needs`, or `unmeasured` when one of them is missing."""
    key, section, label, unit = head
    lacks = tuple(k for k in needs if k not in units)
    if lacks:
        return PlanLine(key, section, label, None, unit, _unmeasured(lacks), lacks)
    value = compute({k: units[k].value for k in needs})
    return PlanLine(key, section, label, value, unit, "; ".join([*_cite(units, needs), *notes]))


def _gate_lines(inputs: PlanInputs, units: Units) -> list[PlanLine]:
    n = inputs.listeners
    beats_s = n / inputs.heartbeat_s
    joins_s = n / inputs.join_window_s
    busy = f"assumption: cores at most {fmt(inputs.busy_pct)} % busy (--busy-pct)"
    redis_busy = f"assumption: a Redis node is one core kept at most {fmt(REDIS_BUSY_PCT)} % busy"

    def redis_cores(u: Mapping[str, float]) -> float:
        us = beats_s * u["redis_cpu_us_per_heartbeat"] + joins_s * u["redis_cpu_us_per_join"]
        return us / 1e6

    gate_keys = ("heartbeats_per_gate_core_s", "joins_per_gate_core_s")
    redis_keys = ("redis_cpu_us_per_heartbeat", "redis_cpu_us_per_join")
    return [
        PlanLine(
            "heartbeats_per_s",
            "gate",
            "heartbeats/s",
            beats_s,
            "/s",
            f"input: {fmt(n)} listeners / --heartbeat-s {fmt(inputs.heartbeat_s)}",
        ),
        PlanLine(
            "joins_per_s",
            "gate",
            "joins/s in the surge (the admission rate to set)",
            math.ceil(joins_s),
            "/s",
            f"assumption: all {fmt(n)} listeners join within --join-window-s "
            f"{fmt(inputs.join_window_s)} s",
        ),
        _line(
            units,
            ("gate_cores", "gate", "gate cores (all heartbeating as the surge ends)", ""),
            gate_keys,
            lambda u: math.ceil(
                (beats_s / u["heartbeats_per_gate_core_s"] + joins_s / u["joins_per_gate_core_s"])
                / inputs.busy
            ),
            [busy],
        ),
        _line(units, ("redis_cores", "gate", "Redis CPU", "cores"), redis_keys, redis_cores),
        _line(
            units,
            ("redis_nodes", "gate", "Redis nodes (a replica for availability on top)", ""),
            redis_keys,
            lambda u: max(1, math.ceil(redis_cores(u) / (REDIS_BUSY_PCT / 100))),
            [redis_busy],
        ),
    ]


SEGMENT_KEYS = ("segment_bytes", "segment_duration_s", "segment_bitrate_kbps")


def _requests_per_listener_s(inputs: PlanInputs) -> float:
    rate = 1 / inputs.target_duration_s + 1 / inputs.segment_s
    return rate + (1 / inputs.heartbeat_s if inputs.is_gate_behind_edge else 0.0)


def _listener_bytes_s(inputs: PlanInputs, units: Units) -> tuple[float, str, tuple[str, ...]]:
    """Bytes/s the edge sends one listener, what it rests on, and what it lacks (a lower bound)."""
    notes: list[str] = []
    if all(k in units for k in SEGMENT_KEYS):
        measured = units["segment_bytes"].value / units["segment_duration_s"].value
        media = measured * inputs.bitrate_kbps / units["segment_bitrate_kbps"].value
        notes += _cite(units, SEGMENT_KEYS)
        notes.append(
            "derived: segments' measured bytes/s (container included) × --bitrate-kbps "
            f"{fmt(inputs.bitrate_kbps)} / their bitrate"
        )
    else:
        media = inputs.bitrate_kbps * 1000 / 8
        notes.append(f"input: segments at the nominal --bitrate-kbps {fmt(inputs.bitrate_kbps)}")
    playlist = (
        units["playlist_bytes"].value / inputs.target_duration_s
        if "playlist_bytes" in units
        else 0.0
    )
    notes += _cite(units, ["playlist_bytes"])
    header = units.get("response_header_bytes")
    headers = header.value * _requests_per_listener_s(inputs) if header else 0.0
    notes += _cite(units, ["response_header_bytes"])
    lacks = tuple(
        k for k in (*SEGMENT_KEYS, "playlist_bytes", "response_header_bytes") if k not in units
    )
    if lacks:
        notes.append(_unmeasured(lacks) + ": a lower bound")
    return media + playlist + headers, "; ".join(notes), lacks


def _edge_lines(inputs: PlanInputs, units: Units) -> list[PlanLine]:
    n = inputs.listeners
    requests_s = n * _requests_per_listener_s(inputs)
    heartbeats = (
        f" + a heartbeat per {fmt(inputs.heartbeat_s)} s (assumption: the gate sits behind the "
        "edge, as deploy/nginx sends /api/ on to the origin's workers; --gate-apart if not)"
        if inputs.is_gate_behind_edge
        else " (the gate apart: heartbeats and joins go to the gate directly)"
    )
    per_listener, notes, lacks = _listener_bytes_s(inputs, units)
    egress_gbit_s = n * per_listener * 8 / BITS_PER_GBIT
    return [
        PlanLine(
            "edge_requests_per_s",
            "edge",
            "requests/s at the edge",
            requests_s,
            "/s",
            f"input: {fmt(n)} listeners × (a playlist poll per target duration, "
            f"{inputs.target_duration_s} s + a segment per --segment-s {fmt(inputs.segment_s)} s"
            f"{heartbeats}); the surge adds its joins/s",
        ),
        PlanLine(
            "listener_kbit_s",
            "edge",
            "egress per listener",
            per_listener * 8 / 1000,
            "kbit/s",
            notes,
            lacks,
        ),
        PlanLine(
            "edge_egress_gbit_s",
            "edge",
            "edge egress",
            egress_gbit_s,
            "Gbit/s",
            f"derived: {fmt(n)} listeners × egress per listener",
            lacks,
        ),
        _line(
            units,
            ("edge_cores", "edge", "edge cores (nginx)", ""),
            ("edge_requests_per_core_s",),
            lambda u: math.ceil(requests_s / (u["edge_requests_per_core_s"] * inputs.busy)),
            [
                "derived: requests/s at the edge over that",
                f"assumption: cores at most {fmt(inputs.busy_pct)} % busy",
            ],
        ),
    ]


def _origin_lines(inputs: PlanInputs, units: Units) -> list[PlanLine]:
    return [
        _line(
            units,
            ("origin_requests_per_s", "origin", "origin requests/s behind the edge", "/s"),
            ("origin_requests_per_s",),
            lambda u: u["origin_requests_per_s"],
            ["per live space and edge node (or CDN shield), flat in the audience"],
        ),
        _line(
            units,
            ("origin_cores", "origin", "origin cores per live space, 13 voices", ""),
            ("origin_cpu_cores",),
            lambda u: math.ceil(u["origin_cpu_cores"] / inputs.busy),
            [f"assumption: cores at most {fmt(inputs.busy_pct)} % busy"],
        ),
    ]


def _generator_lines(inputs: PlanInputs, units: Units, egress: PlanLine) -> list[PlanLine]:
    n = inputs.listeners
    return [
        _line(
            units,
            ("generator_cores", "rehearsal", "load-generator cores", ""),
            ("listeners_per_generator_core",),
            lambda u: math.ceil(n / u["listeners_per_generator_core"]),
            [f"{fmt(n)} simulated listeners"],
        ),
        _line(
            units,
            ("generator_memory_gb", "rehearsal", "load-generator memory", "GB"),
            ("generator_bytes_per_listener",),
            lambda u: n * u["generator_bytes_per_listener"] / BYTES_PER_GB,
        ),
        PlanLine(
            "generator_ingress_gbit_s",
            "rehearsal",
            "load-generator ingress",
            egress.value,
            "Gbit/s",
            "derived: edge egress (the simulated listeners download what the edge sends)",
            egress.lacks,
        ),
    ]


def make_plan(inputs: PlanInputs, units: Units) -> Plan:
    edge = _edge_lines(inputs, units)
    egress = next(line for line in edge if line.key == "edge_egress_gbit_s")
    lines = [
        *_gate_lines(inputs, units),
        *edge,
        *_origin_lines(inputs, units),
        *_generator_lines(inputs, units, egress),
    ]
    return Plan(inputs, dict(units), tuple(lines))


def render_text(plan: Plan) -> str:
    """The plan as a table a person reads: one line per figure, its source indented below."""
    i = plan.inputs
    out = [
        f"Capacity plan for {fmt(i.listeners)} listeners: heartbeats every {fmt(i.heartbeat_s)} s, "
        f"segments of {fmt(i.segment_s)} s at {fmt(i.bitrate_kbps)} kbit/s, all joining within "
        f"{fmt(i.join_window_s)} s, cores at most {fmt(i.busy_pct)} % busy",
    ]
    section = ""
    for line in plan.lines:
        if line.section != section:
            section = line.section
            out += ["", section]
        if line.value is None:
            value = "unmeasured"
        else:
            value = f"{'≥ ' if line.is_lower_bound else ''}{fmt(line.value)} {line.unit}".rstrip()
        out.append(f"  {line.label:<52} {value:>20}")
        out.append(f"      source: {line.source}")
    return "\n".join(out) + "\n"
