"""The rehearsal scenario file: the example loads, every bad key is named in the error, and
the command line's flags scale the arrival curve and replace the target."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rostra.errors import ScenarioInvalid
from rostra.rehearse.scenario import CurvePoint, from_dict, load

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "rehearsal.toml"


def test_example_scenario_loads_with_its_curve_and_targets() -> None:
    scenario = load(EXAMPLE)
    assert scenario.audience.curve == (
        CurvePoint(0, 0),
        CurvePoint(120, 1000),
        CurvePoint(290, 1000),
        CurvePoint(300, 700),
    )
    assert scenario.target.media == scenario.target.gate == "http://127.0.0.1:8080"
    assert scenario.speakers.tones_hz() == [440.0, 660.0]
    assert scenario.targets.count_error_max is None
    assert scenario.to_json()["audience"]["curve"][1] == {"at_s": 120.0, "listeners": 1000}


def test_flags_scale_the_curve_to_the_peak_and_duration_and_replace_the_target() -> None:
    scenario = load(EXAMPLE).with_overrides(
        target="http://10.0.0.5:9000/",
        space="abc",
        listeners=300,
        duration_s=30,
        report_dir="out",
        processes=3,
    )
    assert [(p.at_s, p.listeners) for p in scenario.audience.curve] == [
        (0, 0),
        (12, 300),
        (29, 300),
        (30, 210),
    ]
    assert scenario.target.media == scenario.target.gate == "http://10.0.0.5:9000"
    assert scenario.target.space == "abc"
    assert (scenario.run.report_dir, scenario.run.processes) == ("out", 3)
    assert scenario.audience.listeners_at(6) == 150
    assert scenario.audience.listeners_at(29.5) == 255
    assert scenario.audience.listeners_at(31) == 0


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"targets": {"ttfa_p95": 3}}, "unknown key targets.ttfa_p95"),
        ({"targets": {"stall_ratio_max": 2}}, "targets.stall_ratio_max = 2 is outside 0..1"),
        ({"targets": {"origin_health": "yes"}}, "targets.origin_health must be true or false"),
        ({"speakers": {"count": 1.5}}, "speakers.count must be a whole number"),
        ({"speakers": {"count": 14}}, "speakers.count = 14 is outside 0..13"),
        ({"speakers": {"tone_hz": 300, "file": "a.wav"}}, "speakers.tone_hz and speakers.file"),
        ({"target": {"url": "ftp://x"}}, "target.url must be an http:// or https:// URL"),
        ({"target": {"media_url": 7}}, "target.media_url must be a string"),
        ({"attack": {"interval_s": 0}}, "attack.interval_s = 0 is outside"),
        ({"audience": {"hls": 0, "progressive": 0, "interactive": 0}}, "all 0: no listener"),
        ({"audience": {"curve": [{"at_s": 0, "listeners": 5}]}}, "at least two"),
        (
            {"audience": {"curve": [{"at_s": 0, "listeners": 0}, {"at_s": 10}]}},
            "audience.curve[1].listeners is missing",
        ),
        (
            {"audience": {"curve": [{"at_s": 5, "listeners": 0}, {"at_s": 10, "listeners": 3}]}},
            "audience.curve[0].at_s must be 0",
        ),
        (
            {
                "audience": {
                    "curve": [
                        {"at_s": 0, "listeners": 0},
                        {"at_s": 10, "listeners": 3},
                        {"at_s": 5, "listeners": 3},
                    ]
                }
            },
            "audience.curve[2].at_s 5 is before",
        ),
        ({"run": {"processes": 0}}, "run.processes = 0 is outside"),
        ({"extra": {}}, "unknown key extra"),
        ({"target": "http://x"}, "[target] must be a table"),
    ],
)
def test_scenario_error_names_the_key_at_fault(data: dict[str, object], named: str) -> None:
    with pytest.raises(ScenarioInvalid) as caught:
        from_dict(data)
    assert named in caught.value.detail


def test_bad_flags_and_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioInvalid, match="--listeners must be at least 1"):
        from_dict({}).with_overrides(listeners=0)
    with pytest.raises(ScenarioInvalid, match="--target must be an http"):
        from_dict({}).with_overrides(target="127.0.0.1:8080")
    broken = tmp_path / "broken.toml"
    broken.write_text("[targets\n")
    with pytest.raises(ScenarioInvalid, match="is not TOML"):
        load(broken)
    with pytest.raises(ScenarioInvalid, match="cannot read scenario"):
        load(tmp_path / "missing.toml")


def rehearse_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rostra", "rehearse", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_rehearsal_that_cannot_run_exits_2_and_says_why(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[targets]\nstall_ratio_max = 3\n")
    done = rehearse_cli(str(bad))
    assert done.returncode == 2
    assert "targets.stall_ratio_max = 3 is outside 0..1" in done.stderr

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    done = rehearse_cli(
        str(EXAMPLE), "--target", f"http://127.0.0.1:{port}", "--report", str(tmp_path)
    )
    assert done.returncode == 2
    assert "could not run: target unreachable" in done.stdout
    assert not (tmp_path / "report.json").exists()
