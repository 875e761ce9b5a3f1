"""An `AudienceRun` tied to a Locust environment: the users find it there, a greenlet samples
the live simulated listeners once a wall-clock second, and a worker sends its observations to
the master (`report_to_master`), which adds them up (`worker_report`).

Rehearsal plane (a client); imports gevent: only the rehearsal's processes load it.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import gevent
from locust.env import Environment

from rostra.rehearse.audience_run import AudienceRun, AudienceSettings
from rostra.rehearse.observations import Observations

REPORT_KEY = "rostra_observations"
# sampled in the middle of each second, away from the edges where users' steps bunch
SAMPLE_OFFSET_S = 0.5

_RUNS: weakref.WeakKeyDictionary[Environment, AudienceRun] = weakref.WeakKeyDictionary()


def attach(environment: Environment, settings: AudienceSettings) -> AudienceRun:
    """Ties a new `AudienceRun` to `environment` (before its users start) and wires the
    worker → master reports. The live sampler runs while a local or worker runner does."""
    run = AudienceRun(settings)
    _RUNS[environment] = run
    events = environment.events

    def report(client_id: str, data: dict[str, Any]) -> None:
        data[REPORT_KEY] = run.observations.take().to_json()

    def receive(client_id: str, data: dict[str, Any]) -> None:
        if REPORT_KEY in data:
            run.observations.merge(Observations.from_json(data[REPORT_KEY]))

    def user_error(user_instance: object, exception: BaseException, tb: object) -> None:
        run.observations.at(time.time()).generator_errors[type(exception).__name__] += 1

    # Locust's EventHook.add_listener is untyped
    events.user_error.add_listener(user_error)  # type: ignore[no-untyped-call]
    events.report_to_master.add_listener(report)  # type: ignore[no-untyped-call]
    events.worker_report.add_listener(receive)  # type: ignore[no-untyped-call]
    return run


def run_of(environment: Environment) -> AudienceRun:
    """The run `attach` tied to this environment (a user made without one is a mistake)."""
    try:
        return _RUNS[environment]
    except KeyError:
        raise RuntimeError("no AudienceRun attached to this Locust environment") from None


def sample_live_forever(run: AudienceRun) -> None:
    """Writes the live count into each wall-clock second, once per second (spawn it)."""
    while True:
        now_s = time.time()
        gevent.sleep(max(0.0, int(now_s) + 1 + SAMPLE_OFFSET_S - now_s))
        run.observations.at(time.time()).live = run.live


def start_live_sampler(run: AudienceRun) -> gevent.Greenlet[Any, Any]:
    """The sampler greenlet of a process that runs users (kill it when they are stopped)."""
    return gevent.spawn(sample_live_forever, run)
