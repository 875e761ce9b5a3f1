"""`rostra rehearse`'s orchestrator: readies the space and its speakers, runs the simulated
audience in Locust processes of its own (one, a master and local workers, or a master for
workers elsewhere), watches `state.json` and `/healthz`, shows live progress once a second, then
writes the report and gives the verdict.

Rehearsal plane (a client). Never imports Locust or gevent: they run in the child processes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from rostra.errors import RehearsalNotStarted
from rostra.rehearse import report
from rostra.rehearse.generator import (
    DEFAULT_MASTER_PORT,
    Generator,
    generator_commands,
)
from rostra.rehearse.observations import Observations
from rostra.rehearse.scenario import Scenario
from rostra.rehearse.speakers import SpeakerPlan, Speakers
from rostra.rehearse.verdict import (
    EXIT_COULD_NOT_RUN,
    count_check,
    exit_code,
    judge,
    verdict_of,
)
from rostra.rehearse.watch import Watcher

HTTP_TIMEOUT_S = 10.0
PROGRAM_TIMEOUT_S = 30.0
# speakers talk until the audience is done (then stopped together), this long at most after
SPEAKERS_MARGIN_S = 8.0
SPEAKER_SKIP_S = 3.0
# the last voice on stage settles (its jitter buffer fills) before the audience comes
STAGE_SETTLE_S = 2.0
MIN_SPEAKERS_TO_CHECK = 2
# the load generator gets this long past the curve to stop its users and report
LOCUST_GRACE_S = 60.0
WORKER_REPORT_LAG_S = 4

Write = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Space:
    id: str
    is_created: bool


class Orchestrator:
    """One rehearsal from start to verdict."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        admin_token: str,
        write: Write,
        is_master: bool = False,
        expect_workers: int = 1,
        master_port: int = DEFAULT_MASTER_PORT,
    ) -> None:
        self.scenario = scenario
        self.admin_token = admin_token
        self.write = write
        self.is_master = is_master
        self.expect_workers = expect_workers
        self.master_port = master_port
        self.directory = Path(scenario.run.report_dir)
        self.client = httpx.Client(timeout=HTTP_TIMEOUT_S)
        self.spoke_s = time.time()  # when the speakers started

    # the set-up

    def _admin(self) -> dict[str, str]:
        if not self.admin_token:
            raise RehearsalNotStarted(
                "no admin token: set ROSTRA_ADMIN_TOKEN, [target] admin_token, or run where "
                "the data folder is (needed to make the space and invite its speakers)"
            )
        return {"Authorization": f"Bearer {self.admin_token}"}

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.scenario.target.gate + path
        try:
            response = self.client.request(method, url, json=body, headers=self._admin())
        except httpx.HTTPError as error:
            raise RehearsalNotStarted(f"cannot reach {url}: {error}") from error
        if response.status_code >= 400:
            raise RehearsalNotStarted(f"{method} {url}: {response.status_code} {response.text}")
        return response.json()

    def check_reachable(self) -> None:
        for url in (self.scenario.target.gate + "/healthz", self.scenario.target.media + "/"):
            try:
                self.client.get(url)
            except httpx.HTTPError as error:
                raise RehearsalNotStarted(f"target unreachable: {url}: {error}") from error

    def ready_space(self) -> Space:
        space_id = self.scenario.target.space
        if not space_id:
            created = self._call("POST", "/api/v1/spaces", {"title": "Rehearsal", "live": True})
            return Space(str(created["id"]), is_created=True)
        url = f"{self.scenario.target.media}/live/{space_id}/state.json"
        try:
            state = self.client.get(url)
        except httpx.HTTPError as error:
            raise RehearsalNotStarted(f"cannot read {url}: {error}") from error
        if state.status_code != 200 or state.json().get("status") != "live":
            raise RehearsalNotStarted(f"space {space_id!r} is not live at {url}")
        return Space(space_id, is_created=False)

    def ready_speakers(self, space_id: str) -> Speakers | None:
        plan = self.scenario.speakers
        if plan.count == 0:
            return None
        plans = []
        for index, tone_hz in enumerate(plan.tones_hz(), start=1):
            name = f"voice-{index}"
            invite = self._call("POST", f"/api/v1/spaces/{space_id}/invites", {"name": name})
            url = str(invite["speaker_invite_url"])
            plans.append(
                SpeakerPlan(name, url, file=Path(plan.file))
                if plan.file
                else SpeakerPlan(name, url, tone_hz=tone_hz)
            )
        seconds = plan.seconds or (
            PROGRAM_TIMEOUT_S + self.scenario.duration_s + LOCUST_GRACE_S + SPEAKERS_MARGIN_S
        )
        speakers = Speakers(plans, seconds=seconds, directory=self.directory / "speakers")
        speakers.start()
        self.spoke_s = time.time()
        return speakers

    def wait_for_program(self, space_id: str, voices: int) -> None:
        """Until the stage holds the speakers and the program has segments (or a timeout: the
        rehearsal then goes on, and its figures show what the audience got)."""
        url = f"{self.scenario.target.media}/live/{space_id}/state.json"
        playlist = f"{self.scenario.target.media}/live/{space_id}/index.m3u8"
        deadline = time.monotonic() + PROGRAM_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                stage = self.client.get(url).json().get("stage", [])
                if len(stage) >= voices and self.client.get(playlist).status_code == 200:
                    time.sleep(STAGE_SETTLE_S)
                    return
            time.sleep(0.5)
        self.write(f"the program did not start within {PROGRAM_TIMEOUT_S:g} s; going on")

    @property
    def _truth_lag_s(self) -> int:
        """How late the truth of a second arrives: at once from one process, with the next
        worker report (Locust's, every 3 s) through a master."""
        return WORKER_REPORT_LAG_S if self.is_master or self.scenario.run.processes > 1 else 1

    # the run

    def run(self) -> int:
        try:
            self.check_reachable()
            space = self.ready_space()
        except RehearsalNotStarted as error:
            self.write(f"could not run: {error.detail}")
            return EXIT_COULD_NOT_RUN
        speakers: Speakers | None = None
        try:
            speakers = self.ready_speakers(space.id)
            self.wait_for_program(space.id, self.scenario.speakers.count)
            return self._rehearse(space, speakers)
        except RehearsalNotStarted as error:
            self.write(f"could not run: {error.detail}")
            return EXIT_COULD_NOT_RUN
        finally:
            if speakers is not None:
                speakers.stop()
            if space.is_created:
                with contextlib.suppress(RehearsalNotStarted):
                    self._call("POST", f"/api/v1/spaces/{space.id}/end")
            self.client.close()

    def _rehearse(self, space: Space, speakers: Speakers | None) -> int:
        scenario = self.scenario
        watcher = Watcher(
            f"{scenario.target.media}/live/{space.id}/state.json",
            f"{scenario.target.gate}/healthz",
        )
        watcher.start()
        spawned_s = time.time()
        generator = Generator(
            generator_commands(
                scenario,
                space.id,
                is_master=self.is_master,
                expect_workers=self.expect_workers,
                master_port=self.master_port,
            ),
            self.directory,
            processes=self.expect_workers if self.is_master else scenario.run.processes,
        )
        try:
            self._follow(generator, watcher, spawned_s, speakers)
            codes = generator.wait(LOCUST_GRACE_S)
        finally:
            generator.stop()
            watcher.stop()
        ended_s = time.time()
        if codes[0] != 0 or not generator.is_done:
            self.write(
                f"could not run: the load generator failed (exit {codes[0]}); see "
                f"{self.directory}/locust-0.log"
            )
            return EXIT_COULD_NOT_RUN
        if speakers is not None:
            speakers.stop()  # all at once: the returns end together (their files stay whole)
        return self._report(space, speakers, generator, watcher, spawned_s, ended_s)

    def _follow(
        self, generator: Generator, watcher: Watcher, spawned_s: float, speakers: Speakers | None
    ) -> None:
        """The live progress line, once a second, until the load generator ends; the speakers
        stop together when the curve does (the users' stopping is no part of the rehearsal)."""
        deadline = time.monotonic() + self.scenario.duration_s + LOCUST_GRACE_S + 60
        while generator.is_running and time.monotonic() < deadline:
            time.sleep(1.0)
            generator.sample()
            started_s = generator.started_s or spawned_s
            self.write(progress_line(generator, watcher, started_s, lag_s=self._truth_lag_s))
            if speakers is not None and time.time() >= started_s + self.scenario.duration_s:
                speakers.stop()
                speakers = None

    def _report(
        self,
        space: Space,
        speakers: Speakers | None,
        generator: Generator,
        watcher: Watcher,
        spawned_s: float,
        ended_s: float,
    ) -> int:
        scenario, targets = self.scenario, self.scenario.targets
        started_s = generator.started_s or spawned_s
        # the curve's seconds: the users' stopping afterwards is no part of the rehearsal
        ended_s = min(ended_s, started_s + scenario.duration_s)
        start_key = int(started_s)
        end_key = max(start_key, int(ended_s) - 1)
        observations = Observations()
        observations.seconds = {
            key: second
            for key, second in generator.observations.seconds.items()
            if start_key <= key <= end_key
        }
        watched = report.Watched(states=dict(watcher.states), healths=dict(watcher.healths))
        rows = report.series(observations, watched, start_s=start_key, end_s=end_key)
        # a listener is counted from its first heartbeat, sent once audio plays (as the page
        # does): it may take the time to first audio more to be seen
        first_audio_s = observations.total().ttfa.quantile(0.95) or 0.0
        count = count_check(
            rows,
            visibility_s=round(targets.count_visibility_s + first_audio_s, 2),
            window_s=targets.count_window_s,
            error_max=targets.count_error_max,
            slack=scenario.attack.attackers + 1,
        )
        count["first_audio_p95_s"] = round(first_audio_s, 3)
        figures = report.summary(
            observations,
            rows,
            end_s=end_key,
            within_s=targets.join_within_s,
            count_error_max=count["worst_error"],
        )
        # a return is checked from the audience's start: both voices are on stage by then
        heard = speaker_results(speakers, skip_s=max(SPEAKER_SKIP_S, started_s - self.spoke_s))
        results = judge(targets, figures, rows, heard, count)
        built = report.build(
            scenario=scenario.to_json(),
            target_urls={
                "media": scenario.target.media,
                "gate": scenario.target.gate,
                "space_id": space.id,
            },
            started_s=started_s,
            ended_s=ended_s,
            rows=rows,
            summary_figures=figures,
            observations=observations,
            speakers=heard,
            count=count,
            results=results,
            generator=generator.figures(),
        )
        report.write(self.directory, built)
        verdict = verdict_of(results)
        self.write(f"{verdict}  (report: {self.directory / 'report.html'})")
        for result in results:
            self.write(f"  {'ok ' if result.ok else 'FAIL'} {result.text}")
        return exit_code(verdict)


def speaker_results(speakers: Speakers | None, *, skip_s: float) -> list[dict[str, Any]]:
    """Each speaker's continuity; none for a lone speaker (its mix-minus is silence)."""
    if speakers is None or len(speakers.plans) < MIN_SPEAKERS_TO_CHECK:
        return []
    return [
        {
            "name": check.name,
            "ok": check.is_ok,
            "problems": check.problems(),
            "gaps": [[round(start, 2), round(start + length, 2)] for start, length in check.gaps],
            "hears_itself": check.hears_itself,
        }
        for check in speakers.check(skip_s=skip_s)
    ]


def progress_line(
    generator: Generator, watcher: Watcher, started_s: float, *, lag_s: int = 1
) -> str:
    """One line: listeners (truth vs reported), joins, time to first audio, stalls, speakers,
    origin health."""
    total, observations = generator.snapshot()
    now = int(time.time())
    seconds = observations.seconds
    recent = range(now - lag_s, now - lag_s - 3, -1)
    truth = next((seconds[s].live for s in recent if s in seconds), None)
    state = watcher.states.get(now) or watcher.states.get(now - 1)
    health = watcher.healths.get(now) or watcher.healths.get(now - 1)
    reported = "?"
    if state is not None and state.listeners is not None:
        reported = f"{state.listeners} ±{(state.error or 0) * 100:.1f} %"
    joins = " ".join(f"{k} {v}" for k, v in sorted(total.joins.items())) or "none"
    ttfa = total.ttfa.quantile(0.95)
    return (
        f"t={max(0, now - int(started_s)):4d} s  listeners {truth if truth is not None else '?'}"
        f" (reported {reported})  joins: {joins}  ttfa p95 "
        f"{f'{ttfa:.2f} s' if ttfa is not None else '-'}  stalls {total.stalls}"
        f"  errors {sum(total.server_errors.values())}"
        f"  speakers {state.stage if state is not None else '?'}"
        f"  origin {health.health if health is not None else '?'}"
    )


def rehearse(
    scenario: Scenario,
    *,
    admin_token: str,
    write: Write,
    is_master: bool = False,
    expect_workers: int = 1,
    master_port: int = DEFAULT_MASTER_PORT,
) -> int:
    """Runs the rehearsal; the exit code: 0 GO, 1 NO-GO, 2 could not run."""
    return Orchestrator(
        scenario,
        admin_token=admin_token,
        write=write,
        is_master=is_master,
        expect_workers=expect_workers,
        master_port=master_port,
    ).run()
