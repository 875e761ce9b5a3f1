"""The capacity plan turns measured unit costs into cores, nodes and bandwidth: exact arithmetic,
every line naming its source, a rehearsal report's figures winning over bench/'s, a `--unit`
winning over both, and a figure nobody measured reported as unmeasured instead of invented."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rostra.rehearse.plan import PlanInputs, make_plan, render_text
from rostra.rehearse.plan_sources import (
    Figure,
    PlanInputError,
    find_bench_results,
    load_bench_units,
    load_report_units,
    parse_unit_overrides,
)

ROOT = Path(__file__).resolve().parents[2]
BENCH_RESULTS = ROOT / "bench" / "results"
LISTENERS = 1_300_000
CLI_TIMEOUT_S = 60.0
# a bench/results file and its key, a report's key, a --unit, or what the line rests on
SOURCE = re.compile(r"^([\w.-]+\.json: \S|--unit \w+=|(input|assumption|derived|unmeasured): )")


def given(**values: float) -> dict[str, Figure]:
    return {key: Figure(value, f"test: {key}") for key, value in values.items()}


def rostra_plan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rostra", "plan", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def test_gate_cores_and_redis_nodes_follow_heartbeats_and_the_join_surge() -> None:
    units = given(
        heartbeats_per_gate_core_s=20_000,
        joins_per_gate_core_s=13_000,
        redis_cpu_us_per_heartbeat=10,
        redis_cpu_us_per_join=30,
    )
    busy = make_plan(PlanInputs(LISTENERS, heartbeat_s=20, join_window_s=300), units)
    full = make_plan(PlanInputs(LISTENERS, heartbeat_s=20, join_window_s=300, busy_pct=100), units)

    assert busy.line("heartbeats_per_s").value == 65_000
    assert busy.line("joins_per_s").value == 4_334  # 4,333.3 rounded up: the admission rate
    # 65,000 / 20,000 + 4,333.3 / 13,000 = 3.583 cores of work
    assert full.line("gate_cores").value == 4
    assert busy.line("gate_cores").value == 6  # 3.583 / 0.7 = 5.12
    # 65,000 × 10 µs + 4,333.3 × 30 µs = 0.78 of a core; a Redis node is kept at most 50 % busy
    assert busy.line("redis_cores").value == pytest.approx(0.78)
    assert busy.line("redis_nodes").value == 2
    assert "test: heartbeats_per_gate_core_s = 20,000" in busy.line("gate_cores").source
    assert "assumption: cores at most 70 % busy" in busy.line("gate_cores").source
    assert "--join-window-s 300" in busy.line("joins_per_s").source


def test_edge_egress_counts_measured_segment_playlist_and_header_bytes() -> None:
    units = given(
        segment_bytes=13_000,
        segment_duration_s=1.0,
        segment_bitrate_kbps=96,
        playlist_bytes=1_000,
        response_header_bytes=300,
        edge_requests_per_core_s=20_500,
    )
    inputs = PlanInputs(
        LISTENERS, heartbeat_s=20, segment_s=1.0, bitrate_kbps=96, busy_pct=100, hls_mode="legacy"
    )
    plan = make_plan(inputs, units)

    # per listener each second: a playlist poll, a segment, a heartbeat every 20 s through the edge
    assert plan.line("edge_requests_per_s").value == pytest.approx(LISTENERS * 2.05)
    # 13,000 B of segment + 1,000 B of playlist + 300 B of headers × 2.05 responses, each second
    per_listener_bytes_s = 13_000 + 1_000 + 300 * 2.05
    assert plan.line("listener_kbit_s").value == pytest.approx(per_listener_bytes_s * 8 / 1000)
    egress = plan.line("edge_egress_gbit_s")
    assert egress.value == pytest.approx(LISTENERS * per_listener_bytes_s * 8 / 1e9)
    assert egress.value == pytest.approx(151.996)
    assert not egress.is_lower_bound
    assert plan.line("edge_cores").value == math.ceil(LISTENERS * 2.05 / 20_500)
    assert plan.line("generator_ingress_gbit_s").value == egress.value

    apart = make_plan(
        PlanInputs(
            LISTENERS, segment_s=1.0, bitrate_kbps=96, is_gate_behind_edge=False, hls_mode="legacy"
        ),
        units,
    )
    assert apart.line("edge_requests_per_s").value == pytest.approx(LISTENERS * 2.0)
    richer = make_plan(
        PlanInputs(LISTENERS, segment_s=1.0, bitrate_kbps=128, hls_mode="legacy"), units
    )
    assert richer.line("listener_kbit_s").value == pytest.approx(
        (13_000 * 128 / 96 + 1_000 + 300 * 2.05) * 8 / 1000
    )


def test_low_latency_listeners_ask_a_blocking_reload_and_a_part_per_part() -> None:
    units = given(
        segment_bytes=13_000,
        segment_duration_s=1.0,
        segment_bitrate_kbps=96,
        playlist_bytes=1_000,
        response_header_bytes=300,
    )
    inputs = PlanInputs(LISTENERS, heartbeat_s=20, segment_s=1.024, part_s=0.256, bitrate_kbps=96)
    assert inputs.hls_mode == "ll"  # as the listener page plays
    plan = make_plan(inputs, units)

    # 1 / 0.256 blocking reloads + 1 / 0.256 parts + a heartbeat every 20 s: 7.86 requests/s
    per_listener = 2 / 0.256 + 1 / 20
    requests = plan.line("edge_requests_per_s")
    assert requests.value == pytest.approx(LISTENERS * per_listener)
    assert "assumption --hls-mode ll" in requests.source
    assert "a blocking playlist reload and a part per part of 0.256 s" in requests.source
    # the media is the same bytes; a playlist comes with each part, and headers with each answer
    per_listener_bytes_s = 13_000 + 1_000 / 0.256 + 300 * per_listener
    assert plan.line("listener_kbit_s").value == pytest.approx(per_listener_bytes_s * 8 / 1000)

    legacy = make_plan(PlanInputs(LISTENERS, heartbeat_s=20, hls_mode="legacy"), units)
    assert legacy.line("edge_requests_per_s").value == pytest.approx(
        LISTENERS * (1 + 1 / 1.024 + 1 / 20)
    )
    assert "assumption --hls-mode legacy" in legacy.line("edge_requests_per_s").source
    assert "HLS played low-latency (parts)" in render_text(plan)
    with pytest.raises(PlanInputError, match="hls_mode"):
        PlanInputs(LISTENERS, hls_mode="fast")


def test_missing_figures_are_reported_unmeasured_not_invented(tmp_path: Path) -> None:
    plan = make_plan(PlanInputs(LISTENERS), load_bench_units(tmp_path))

    assert plan.units == {}
    assert plan.line("heartbeats_per_s").value == 65_000  # from the inputs alone
    for key in ("gate_cores", "redis_nodes", "edge_cores", "origin_requests_per_s"):
        assert plan.line(key).value is None
        assert plan.line(key).source.startswith("unmeasured: ")
    generator = plan.line("generator_cores")
    assert generator.value is None
    assert generator.source.startswith("unmeasured: run bench/rehearse_capacity.py")
    # without a measured segment, egress is only the nominal bitrate (the server's AAC-LC, 128
    # kbit/s): a lower bound that says so
    egress = plan.line("edge_egress_gbit_s")
    assert egress.is_lower_bound
    assert egress.value == pytest.approx(LISTENERS * 128_000 / 1e9)
    assert set(egress.lacks) >= {"segment_bytes", "playlist_bytes", "response_header_bytes"}
    text = render_text(plan)
    assert "unmeasured: run bench/rehearse_capacity.py" in text
    assert "≥ 166.4 Gbit/s" in text


def test_generator_cores_come_from_the_measured_generator_capacity(tmp_path: Path) -> None:
    capacity = {
        "users": 1500,
        "listeners_per_generator_core_on_time": 1_600,
        "kb_per_listener": 32.5,
    }
    (tmp_path / "rehearse_capacity.json").write_text(json.dumps(capacity))

    plan = make_plan(PlanInputs(LISTENERS), load_bench_units(tmp_path))

    assert plan.line("generator_cores").value == 813  # 812.5 rounded up
    assert plan.line("generator_cores").source.startswith(
        "rehearse_capacity.json: listeners_per_generator_core_on_time = 1,600"
    )
    assert plan.line("generator_memory_gb").value == pytest.approx(LISTENERS * 32.5 * 1024 / 1e9)


def test_bench_results_give_every_line_a_named_source() -> None:
    assert find_bench_results() == BENCH_RESULTS
    gate = json.loads((BENCH_RESULTS / "gate.json").read_text())
    server = next(s for s in gate["servers"] if s["name"] == "gate-1w")
    soak = json.loads((BENCH_RESULTS / "soak.json").read_text())["listeners"]["hls"]

    plan = make_plan(PlanInputs(LISTENERS), load_bench_units(BENCH_RESULTS))

    per_core = server["heartbeats"]["per_server_core_per_s"]
    joins_per_core = server["joins"]["per_server_core_per_s"]
    work = 65_000 / per_core + (LISTENERS / 300) / joins_per_core
    assert plan.line("gate_cores").value == math.ceil(work / 0.7)
    assert (
        f"gate.json: servers[gate-1w].heartbeats.per_server_core_per_s = {per_core:,.0f}"
        in plan.line("gate_cores").source
    )
    assert plan.units["segment_bytes"].value == soak["bytes"] / soak["segments"]
    assert "soak.json: listeners.hls.bytes" in plan.line("listener_kbit_s").source
    assert plan.line("origin_requests_per_s").source.startswith("edge.json: levels[]")
    assert plan.line("origin_cores").source.startswith("cost.json: levels[voices=13]")
    for line in plan.lines:
        assert SOURCE.match(line.source), line


def test_report_figures_win_over_bench_and_a_unit_wins_over_both(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    costs: dict[str, Any] = {
        "heartbeats_per_gate_core_s": 5_000,
        "listeners_per_generator_core": 1_500,
        "playlist_bytes": None,  # a rehearsal that could not measure it
        "a_later_figure": 7,
    }
    report.write_text(json.dumps({"verdict": "GO", "unit_costs": costs}))
    units = {**load_bench_units(BENCH_RESULTS), **load_report_units(report)}
    assert units["heartbeats_per_gate_core_s"] == Figure(
        5_000, "report.json: unit_costs.heartbeats_per_gate_core_s"
    )
    assert "playlist_bytes" not in units

    override = "listeners_per_generator_core=2000"
    result = rostra_plan(
        "--listeners", "1300000", "--from", str(report), "--unit", override, "--json", cwd=tmp_path
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    lines = {line["key"]: line for line in plan["lines"]}
    assert lines["heartbeats_per_s"]["value"] == 65_000
    assert (
        "report.json: unit_costs.heartbeats_per_gate_core_s = 5,000"
        in lines["gate_cores"]["source"]
    )
    assert lines["gate_cores"]["value"] >= math.ceil(65_000 / 5_000 / 0.7)
    assert lines["generator_cores"]["value"] == 650  # 1,300,000 / 2,000
    assert lines["generator_cores"]["source"].startswith("--unit listeners_per_generator_core=2000")
    # the figures the report did not give still come from bench/results, found beside the checkout
    assert plan["unit_costs"]["joins_per_gate_core_s"]["source"].startswith("gate.json: ")


def test_cli_prints_a_readable_plan_and_refuses_a_malformed_unit(tmp_path: Path) -> None:
    empty = tmp_path / "results"
    empty.mkdir()
    table = rostra_plan("--listeners", "1300000", "--bench-results", str(empty), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "65,000 /s" in table.stdout
    assert "unmeasured: run bench/rehearse_capacity.py" in table.stdout

    wrong = rostra_plan("--listeners", "10", "--unit", "heartbeats=fast", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "'heartbeats=fast' is not KEY=VALUE" in wrong.stderr


def test_unit_overrides_name_their_key_and_value() -> None:
    units = parse_unit_overrides(["segment_bytes=13237.5"])
    assert units == {"segment_bytes": Figure(13_237.5, "--unit segment_bytes=13237.5")}
    with pytest.raises(PlanInputError, match="positive"):
        parse_unit_overrides(["segment_bytes=0"])
    with pytest.raises(PlanInputError, match="must be > 0"):
        PlanInputs(listeners=0)


def test_low_latency_plans_read_figures_measured_with_low_latency_players(tmp_path: Path) -> None:
    def edge(origin_per_s: float) -> dict[str, Any]:
        level = {"listeners": 100, "origin_requests_per_s": origin_per_s}
        return {"levels": [level | {"edge_requests_per_s": 700.0, "edge_cpu_core_pct": 5.0}]}

    (tmp_path / "edge.json").write_text(json.dumps(edge(1.45)))
    (tmp_path / "edge_ll.json").write_text(json.dumps(edge(7.8)))
    legacy = {"listeners_per_generator_core_on_time": 2_000, "kb_per_listener": 35.0}
    (tmp_path / "rehearse_capacity.json").write_text(json.dumps(legacy))
    # an LL run whose players stalled is no capacity figure: the legacy one stays, named as such
    starved = {
        "listeners_per_generator_core_on_time": 1_800,
        "kb_per_listener": 35.6,
        "targets": {"stall_ratio_held": 0.41, "is_fed": False},
    }
    (tmp_path / "rehearse_capacity_ll.json").write_text(json.dumps(starved))

    ll = make_plan(PlanInputs(LISTENERS), load_bench_units(tmp_path, hls_mode="ll"))
    old = make_plan(PlanInputs(LISTENERS), load_bench_units(tmp_path, hls_mode="legacy"))

    assert ll.line("origin_requests_per_s").value == pytest.approx(7.8)
    assert ll.line("origin_requests_per_s").source.startswith("edge_ll.json: ")
    assert old.line("origin_requests_per_s").value == pytest.approx(1.45)
    assert ll.line("generator_cores").source.startswith("rehearse_capacity.json: ")

    fed = starved | {"targets": {"stall_ratio_held": 0.004, "is_fed": True}}
    (tmp_path / "rehearse_capacity_ll.json").write_text(json.dumps(fed))
    ll = make_plan(PlanInputs(LISTENERS), load_bench_units(tmp_path, hls_mode="ll"))
    assert ll.line("generator_cores").source.startswith("rehearse_capacity_ll.json: ")
