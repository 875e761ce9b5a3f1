"""A rehearsal scenario: the deployment, the speakers, the audience's arrival curve and mix, the
attack and the targets that make the verdict, read from TOML with every key checked, and the
command line's flags laid over it.

Rehearsal plane (a client). Pure: no network, no Locust.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rostra.errors import ScenarioInvalid
from rostra.rehearse.audience_run import HLS_MODES

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TONE_HZ = 440.0
TONE_STEP_HZ = 220.0  # each speaker's tone a band of its own
# the count's visibility delay (DESIGN, "Count"), and the server's presence window: a listener
# who left stays counted until the window passes their last heartbeat
DEFAULT_VISIBILITY_S = 5.0
DEFAULT_COUNT_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Target:
    """`url` is the default of both: media (the edge) and gate (writes, /healthz)."""

    url: str = DEFAULT_URL
    media_url: str = ""
    gate_url: str = ""
    space: str = ""
    admin_token: str = ""

    @property
    def media(self) -> str:
        return (self.media_url or self.url).rstrip("/")

    @property
    def gate(self) -> str:
        return (self.gate_url or self.url).rstrip("/")


@dataclass(frozen=True, slots=True)
class SpeakersPlan:
    """`count` speakers; each says `file`, or a tone (`tone_hz`, the next TONE_STEP_HZ above)."""

    count: int = 2
    tone_hz: float = DEFAULT_TONE_HZ
    file: str = ""
    seconds: float = 0.0  # 0: the rehearsal's duration and a margin

    def tones_hz(self) -> list[float]:
        return [self.tone_hz + i * TONE_STEP_HZ for i in range(self.count)]


@dataclass(frozen=True, slots=True)
class CurvePoint:
    at_s: float
    listeners: int


@dataclass(frozen=True, slots=True)
class Audience:
    """The mix of listener kinds (weights) and the arrival curve, piecewise linear."""

    hls: float = 0.8
    progressive: float = 0.1
    interactive: float = 0.1
    hls_mode: str = "ll"  # how HLS listeners play: "ll" (parts, as the page) or "legacy"
    curve: tuple[CurvePoint, ...] = (
        CurvePoint(0, 0),
        CurvePoint(120, 1000),
        CurvePoint(290, 1000),
        CurvePoint(300, 700),
    )

    @property
    def duration_s(self) -> float:
        return self.curve[-1].at_s

    @property
    def peak(self) -> int:
        return max(point.listeners for point in self.curve)

    def listeners_at(self, t_s: float) -> float:
        """Listeners the curve asks for `t_s` seconds in (0 past its last point)."""
        points = self.curve
        if t_s < points[0].at_s or t_s > points[-1].at_s:
            return 0.0
        for before, after in itertools.pairwise(points):
            if before.at_s <= t_s <= after.at_s:
                span_s = after.at_s - before.at_s
                if span_s == 0:
                    return float(after.listeners)
                share = (t_s - before.at_s) / span_s
                return before.listeners + share * (after.listeners - before.listeners)
        return float(points[-1].listeners)


@dataclass(frozen=True, slots=True)
class Attack:
    attackers: int = 1
    interval_s: float = 0.5


@dataclass(frozen=True, slots=True)
class Targets:
    """What makes the verdict. `count_error_max` None: each second's bound is twice the error
    the server states plus 2 %. `count_visibility_s`: a listener shows in the count this long
    after its first heartbeat (which comes one heartbeat interval after the join)."""

    ttfa_p95_s: float = 5.0
    stall_ratio_max: float = 0.01
    join_success_min: float = 0.99
    join_within_s: float = 30.0
    count_error_max: float | None = None
    count_visibility_s: float = DEFAULT_VISIBILITY_S
    count_window_s: float = DEFAULT_COUNT_WINDOW_S
    speakers_continuity: bool = True
    server_errors_max: int = 0
    origin_health: bool = True


@dataclass(frozen=True, slots=True)
class Run:
    report_dir: str = "rehearsal"
    processes: int = 1


@dataclass(frozen=True, slots=True)
class Scenario:
    target: Target = field(default_factory=Target)
    speakers: SpeakersPlan = field(default_factory=SpeakersPlan)
    audience: Audience = field(default_factory=Audience)
    attack: Attack = field(default_factory=Attack)
    targets: Targets = field(default_factory=Targets)
    run: Run = field(default_factory=Run)

    @property
    def duration_s(self) -> float:
        return self.audience.duration_s

    def with_overrides(
        self,
        *,
        target: str | None = None,
        space: str | None = None,
        listeners: int | None = None,
        duration_s: float | None = None,
        report_dir: str | None = None,
        processes: int | None = None,
    ) -> Scenario:
        """The scenario with the command line's flags laid over it (each checked as in a file)."""
        scenario = self
        if target is not None:
            url = _url(target, "--target")
            scenario = dataclasses.replace(
                scenario,
                target=dataclasses.replace(scenario.target, url=url, media_url="", gate_url=""),
            )
        if space is not None:
            scenario = dataclasses.replace(
                scenario, target=dataclasses.replace(scenario.target, space=space)
            )
        if listeners is not None:
            if listeners < 1:
                raise ScenarioInvalid(f"--listeners must be at least 1, not {listeners}")
            scenario = _scaled(scenario, listeners=listeners)
        if duration_s is not None:
            if not duration_s > 0:
                raise ScenarioInvalid(f"--duration-s must be above 0, not {duration_s}")
            scenario = _scaled(scenario, duration_s=duration_s)
        run = scenario.run
        if report_dir is not None:
            run = dataclasses.replace(run, report_dir=report_dir)
        if processes is not None:
            if processes < 1:
                raise ScenarioInvalid(f"--processes must be at least 1, not {processes}")
            run = dataclasses.replace(run, processes=processes)
        return dataclasses.replace(scenario, run=run)

    def to_json(self) -> dict[str, Any]:
        """The scenario in the file's structure (the admin token left out)."""
        data = dataclasses.asdict(self)
        data["target"].pop("admin_token")
        data["audience"]["curve"] = [
            {"at_s": p.at_s, "listeners": p.listeners} for p in self.audience.curve
        ]
        return data


def _scaled(
    scenario: Scenario, *, listeners: int | None = None, duration_s: float | None = None
) -> Scenario:
    audience = scenario.audience
    peak, last_s = audience.peak, audience.duration_s
    curve = tuple(
        CurvePoint(
            at_s=round(p.at_s * duration_s / last_s, 3) if duration_s is not None else p.at_s,
            listeners=(
                round(p.listeners * listeners / peak) if listeners is not None else p.listeners
            ),
        )
        for p in audience.curve
    )
    return dataclasses.replace(scenario, audience=dataclasses.replace(audience, curve=curve))


def load(path: Path) -> Scenario:
    """The scenario in a TOML file; ScenarioInvalid names the key at fault."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise ScenarioInvalid(f"cannot read scenario {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise ScenarioInvalid(f"scenario {path} is not TOML: {error}") from error
    return from_dict(data)


def from_dict(data: dict[str, Any]) -> Scenario:
    _keys(data, "", {"target", "speakers", "audience", "attack", "targets", "run"})
    return Scenario(
        target=_target(_table(data, "target")),
        speakers=_speakers(_table(data, "speakers")),
        audience=_audience(_table(data, "audience")),
        attack=_attack(_table(data, "attack")),
        targets=_targets(_table(data, "targets")),
        run=_run(_table(data, "run")),
    )


def _target(section: dict[str, Any]) -> Target:
    _keys(section, "target", {"url", "media_url", "gate_url", "space", "admin_token"})
    default = Target()
    url = _url(_text(section, "target", "url", default.url), "target.url")
    return Target(
        url=url,
        media_url=_url(_text(section, "target", "media_url", ""), "target.media_url", empty=True),
        gate_url=_url(_text(section, "target", "gate_url", ""), "target.gate_url", empty=True),
        space=_text(section, "target", "space", ""),
        admin_token=_text(section, "target", "admin_token", ""),
    )


def _speakers(section: dict[str, Any]) -> SpeakersPlan:
    _keys(section, "speakers", {"count", "tone_hz", "file", "seconds"})
    if "tone_hz" in section and "file" in section:
        raise ScenarioInvalid("speakers.tone_hz and speakers.file: give one, not both")
    return SpeakersPlan(
        count=_int(section, "speakers", "count", 2, low=0, high=13),
        tone_hz=_number(section, "speakers", "tone_hz", DEFAULT_TONE_HZ, low=50, high=6000),
        file=_text(section, "speakers", "file", ""),
        seconds=_number(section, "speakers", "seconds", 0.0, low=0, high=86_400),
    )


def _audience(section: dict[str, Any]) -> Audience:
    _keys(section, "audience", {"hls", "progressive", "interactive", "hls_mode", "curve"})
    default = Audience()
    mix = {
        kind: _number(section, "audience", kind, getattr(default, kind), low=0, high=1e6)
        for kind in ("hls", "progressive", "interactive")
    }
    if sum(mix.values()) <= 0:
        raise ScenarioInvalid("audience.hls, .progressive and .interactive are all 0: no listener")
    curve = _curve(section["curve"]) if "curve" in section else default.curve
    hls_mode = _text(section, "audience", "hls_mode", default.hls_mode)
    if hls_mode not in HLS_MODES:
        raise ScenarioInvalid(f"audience.hls_mode is {hls_mode!r}; one of {', '.join(HLS_MODES)}")
    return Audience(curve=curve, hls_mode=hls_mode, **mix)


def _curve(points: Any) -> tuple[CurvePoint, ...]:
    if not isinstance(points, list) or len(points) < 2:
        raise ScenarioInvalid("audience.curve needs at least two [[audience.curve]] points")
    curve = []
    for index, point in enumerate(points):
        name = f"audience.curve[{index}]"
        if not isinstance(point, dict):
            raise ScenarioInvalid(f"{name} must be a table with at_s and listeners")
        _keys(point, name, {"at_s", "listeners"})
        for key in ("at_s", "listeners"):
            if key not in point:
                raise ScenarioInvalid(f"{name}.{key} is missing")
        curve.append(
            CurvePoint(
                at_s=_number(point, name, "at_s", 0.0, low=0, high=86_400),
                listeners=_int(point, name, "listeners", 0, low=0, high=100_000_000),
            )
        )
    if curve[0].at_s != 0:
        raise ScenarioInvalid(f"audience.curve[0].at_s must be 0, not {curve[0].at_s:g}")
    for index, (before, after) in enumerate(itertools.pairwise(curve), start=1):
        if after.at_s < before.at_s:
            raise ScenarioInvalid(
                f"audience.curve[{index}].at_s {after.at_s:g} is before the point ahead of it "
                f"({before.at_s:g}): points go in time order"
            )
    if curve[-1].at_s <= 0:
        raise ScenarioInvalid("audience.curve's last point must be after 0 s")
    if max(p.listeners for p in curve) == 0:
        raise ScenarioInvalid("audience.curve never rises above 0 listeners")
    return tuple(curve)


def _attack(section: dict[str, Any]) -> Attack:
    _keys(section, "attack", {"attackers", "interval_s"})
    return Attack(
        attackers=_int(section, "attack", "attackers", 1, low=0, high=100_000),
        interval_s=_number(section, "attack", "interval_s", 0.5, low=0.01, high=3600),
    )


def _targets(section: dict[str, Any]) -> Targets:
    names = {f.name for f in dataclasses.fields(Targets)}
    _keys(section, "targets", names)
    default = Targets()
    count_error = (
        _number(section, "targets", "count_error_max", 0.0, low=0, high=1)
        if "count_error_max" in section
        else None
    )
    return Targets(
        ttfa_p95_s=_number(section, "targets", "ttfa_p95_s", default.ttfa_p95_s, low=0, high=600),
        stall_ratio_max=_number(
            section, "targets", "stall_ratio_max", default.stall_ratio_max, low=0, high=1
        ),
        join_success_min=_number(
            section, "targets", "join_success_min", default.join_success_min, low=0, high=1
        ),
        join_within_s=_number(
            section, "targets", "join_within_s", default.join_within_s, low=0.1, high=3600
        ),
        count_error_max=count_error,
        count_visibility_s=_number(
            section, "targets", "count_visibility_s", DEFAULT_VISIBILITY_S, low=0, high=600
        ),
        count_window_s=_number(
            section, "targets", "count_window_s", DEFAULT_COUNT_WINDOW_S, low=0, high=3600
        ),
        speakers_continuity=_bool(section, "targets", "speakers_continuity", True),
        server_errors_max=_int(section, "targets", "server_errors_max", 0, low=0, high=10**9),
        origin_health=_bool(section, "targets", "origin_health", True),
    )


def _run(section: dict[str, Any]) -> Run:
    _keys(section, "run", {"report_dir", "processes"})
    return Run(
        report_dir=_text(section, "run", "report_dir", "rehearsal"),
        processes=_int(section, "run", "processes", 1, low=1, high=1024),
    )


# the checks, each naming the key at fault


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise ScenarioInvalid(f"[{name}] must be a table, not {type(section).__name__}")
    return section


def _keys(section: dict[str, Any], name: str, allowed: set[str]) -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        where = f"{name}." if name else ""
        raise ScenarioInvalid(
            f"unknown key {where}{unknown[0]} (known: {', '.join(sorted(allowed))})"
        )


def _number(
    section: dict[str, Any], name: str, key: str, default: float, *, low: float, high: float
) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioInvalid(f"{name}.{key} must be a number, not {value!r}")
    if not low <= value <= high:
        raise ScenarioInvalid(f"{name}.{key} = {value:g} is outside {low:g}..{high:g}")
    return float(value)


def _int(section: dict[str, Any], name: str, key: str, default: int, *, low: int, high: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioInvalid(f"{name}.{key} must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise ScenarioInvalid(f"{name}.{key} = {value} is outside {low}..{high}")
    return value


def _bool(section: dict[str, Any], name: str, key: str, default: bool) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ScenarioInvalid(f"{name}.{key} must be true or false, not {value!r}")
    return value


def _text(section: dict[str, Any], name: str, key: str, default: str) -> str:
    value = section.get(key, default)
    if not isinstance(value, str):
        raise ScenarioInvalid(f"{name}.{key} must be a string, not {value!r}")
    return value


def _url(value: str, name: str, *, empty: bool = False) -> str:
    if empty and value == "":
        return value
    if not value.startswith(("http://", "https://")):
        raise ScenarioInvalid(f"{name} must be an http:// or https:// URL, not {value!r}")
    return value.rstrip("/")
