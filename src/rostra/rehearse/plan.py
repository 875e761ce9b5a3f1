"""Capacity plan: measured unit costs (read by `rostra.rehearse.plan_sources`) turned into the
gate cores, Redis nodes, edge egress and requests, origin load and load-generator cores that N
listeners need. Rehearsal plane; arithmetic only, no file and no network.

Each plan line names the figures, inputs and assumptions it was computed from; a figure nobody
measured makes its line `unmeasured` (or a lower bound that says what it lacks), never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rostra.rehearse.plan_sources import DEFAULT_AAC_KBPS, PlanInputError, Units, fmt

# Redis runs commands on one core; keep it at most half busy so a surge has room
REDIS_BUSY_PCT = 50.0
BYTES_PER_GB = 1e9
BITS_PER_GBIT = 1e9
# how listeners play HLS: `ll` as the listener page's hls.js (a blocking playlist reload and a
# part per part), `legacy` (a playlist poll per target duration, a segment per segment)
HLS_MODES = ("ll", "legacy")
PART_S = 0.256  # the packager's parts: 12 AAC frames of 1,024 samples at 48 kHz

HOW_TO_MEASURE = {
    "listeners_per_generator_core": "run bench/rehearse_capacity.py",
    "generator_bytes_per_listener": "run bench/rehearse_capacity.py",
    "playlist_bytes": "give a rehearsal's --from report.json or --unit KEY=VALUE",
    "response_header_bytes": "give a rehearsal's --from report.json or --unit KEY=VALUE",
}
DEFAULT_HOW = "run bench/, or give --from report.json or --unit KEY=VALUE"


@dataclass(frozen=True, slots=True)
class PlanInputs:
    listeners: int
    heartbeat_s: float = 20.0
    segment_s: float = 1.024
    bitrate_kbps: float = DEFAULT_AAC_KBPS
    join_window_s: float = 300.0
    busy_pct: float = 70.0
    is_gate_behind_edge: bool = True
    hls_mode: str = "ll"
    part_s: float = PART_S

    def __post_init__(self) -> None:
        if self.hls_mode not in HLS_MODES:
            raise PlanInputError(f"hls_mode is {self.hls_mode!r}; one of {', '.join(HLS_MODES)}")
        positive = (
            "listeners",
            "heartbeat_s",
            "segment_s",
            "bitrate_kbps",
            "join_window_s",
            "part_s",
        )
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
    def playlists_per_s(self) -> float:
        """A listener's playlist requests/s: a blocking reload per part under LL-HLS, else a
        poll per target duration."""
        return 1 / self.part_s if self.hls_mode == "ll" else 1 / self.target_duration_s

    @property
    def media_per_s(self) -> float:
        """A listener's media requests/s: a part per part under LL-HLS, else a segment per
        segment."""
        return 1 / self.part_s if self.hls_mode == "ll" else 1 / self.segment_s

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
                "hls_mode": self.inputs.hls_mode,
                "part_s": self.inputs.part_s,
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
    rate = inputs.playlists_per_s + inputs.media_per_s
    return rate + (1 / inputs.heartbeat_s if inputs.is_gate_behind_edge else 0.0)


def _player_requests(inputs: PlanInputs) -> str:
    """What a listener's player asks for, as the edge line says it."""
    if inputs.hls_mode == "ll":
        return (
            "assumption --hls-mode ll, as the listener page's hls.js: a blocking playlist reload "
            f"and a part per part of {fmt(inputs.part_s)} s"
        )
    return (
        "assumption --hls-mode legacy: a playlist poll per target duration, "
        f"{inputs.target_duration_s} s + a segment per --segment-s {fmt(inputs.segment_s)} s"
    )


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
        units["playlist_bytes"].value * inputs.playlists_per_s if "playlist_bytes" in units else 0.0
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
            f"input: {fmt(n)} listeners × ({_player_requests(inputs)}"
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
        f"segments of {fmt(i.segment_s)} s at {fmt(i.bitrate_kbps)} kbit/s, HLS played "
        f"{'low-latency (parts)' if i.hls_mode == 'll' else 'legacy'}, all joining within "
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
