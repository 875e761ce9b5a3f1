"""Runs a simulated audience in this process with Locust's LocalRunner for some seconds and
gives back what it observed. Locust patches the interpreter (gevent): run it in a process of its
own, e.g. `python -m rostra.rehearse.local_run HOST SPACE --users HlsListener=20 --seconds 12
--out observations.json`.

Rehearsal plane (a client).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape, User
from locust.env import Environment
from locust.runners import STATE_STOPPED

from rostra.rehearse.audience_run import AudienceRun, AudienceSettings
from rostra.rehearse.ll_users import LlHlsListener, LlInteractiveListener
from rostra.rehearse.locust_wiring import attach, run_of, start_live_sampler
from rostra.rehearse.observations import Observations
from rostra.rehearse.users import Attacker, HlsListener, InteractiveListener, ProgressiveListener

USER_CLASSES: dict[str, type[User]] = {
    cls.__name__: cls
    for cls in (
        HlsListener,
        InteractiveListener,
        LlHlsListener,
        LlInteractiveListener,
        ProgressiveListener,
        Attacker,
    )
}
# the mix names the legacy players; in `ll` mode (the listener page's) their low-latency kin play
LL_CLASSES = {
    HlsListener.__name__: LlHlsListener.__name__,
    InteractiveListener.__name__: LlInteractiveListener.__name__,
}
# users started per second when not given (Locust warns above 100)
DEFAULT_SPAWN_RATE = 100.0
# how much lower than the speakers' the load generators' CPU priority is
GENERATOR_NICE = 10


def counted(users: Mapping[type[User], int]) -> list[type[User]]:
    """Subclasses that make Locust start exactly `n` users of each class (`fixed_count`)."""
    return [
        type(cls.__name__, (cls,), {"fixed_count": n, "__module__": cls.__module__})
        for cls, n in users.items()
        if n > 0
    ]


def run_users(
    host: str,
    space_id: str,
    users: Mapping[type[User], int],
    seconds: float,
    *,
    settings: AudienceSettings | None = None,
    spawn_rate: float = DEFAULT_SPAWN_RATE,
) -> Observations:
    """Starts the users (at `spawn_rate` per second), lets them run `seconds` from the first
    start, stops them (each leaves) and returns what they observed."""
    settings = settings or AudienceSettings(space_id=space_id)
    # no stop timeout: a stopped user is ended at once (a progressive listener is always
    # mid-request), and still leaves in its on_stop
    environment = Environment(user_classes=counted(users), host=host)
    run = attach(environment, settings)
    runner = environment.create_local_runner()
    sampler = start_live_sampler(run)
    try:
        runner.start(sum(users.values()), spawn_rate=spawn_rate)
        gevent.sleep(seconds)
        runner.stop()
    finally:
        runner.quit()
        sampler.kill()
    run.observations.at(time.time()).live = run.live
    return run.observations


def _parse_users(specs: list[str]) -> dict[type[User], int]:
    users: dict[type[User], int] = {}
    for spec in specs:
        name, _, count = spec.partition("=")
        if name not in USER_CLASSES or not count.isdigit():
            raise SystemExit(f"--users takes CLASS=N with CLASS one of {sorted(USER_CLASSES)}")
        users[USER_CLASSES[name]] = int(count)
    return users


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--role"]:
        return shaped_main(argv)
    parser = argparse.ArgumentParser(prog="python -m rostra.rehearse.local_run")
    parser.add_argument("host", help="base URL of the deployment (edge or server)")
    parser.add_argument("space", help="the live space's id")
    parser.add_argument("--users", nargs="+", default=["HlsListener=10"], help="CLASS=N ...")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--spawn-rate", type=float, default=DEFAULT_SPAWN_RATE)
    parser.add_argument(
        "--idle-s", type=float, default=0.0, help="wait this long before starting users"
    )
    parser.add_argument("--settings", default="{}", help="AudienceSettings fields as JSON")
    parser.add_argument("--out", type=Path, required=True, help="observations JSON file")
    args = parser.parse_args(argv)
    settings = AudienceSettings(space_id=args.space, **json.loads(args.settings))
    gevent.sleep(args.idle_s)  # a benchmark reads this process's memory before any user
    observations = run_users(
        args.host,
        args.space,
        _parse_users(args.users),
        args.seconds,
        settings=settings,
        spawn_rate=args.spawn_rate,
    )
    args.out.write_text(json.dumps(observations.to_json()))
    return 0


# `rostra rehearse`'s load-generating processes: the scenario's arrival curve as a Locust
# LoadTestShape, one process (local), or a master and its workers (Locust's own distribution).
# The local process or the master writes what the audience saw as a JSON line a second on
# stdout for the orchestrator; a worker sends its share to the master.

ROLES = ("local", "master", "worker")
EMIT_INTERVAL_S = 1.0
SETTINGS_MESSAGE = "rostra_settings"
HELLO_MESSAGE = "rostra_hello"
WORKERS_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def player_class(base: type[User], within_s: float, weight: int) -> type[User]:
    """`base` weighted for the mix, noting in the second each listener started whether its
    ticket came within `within_s` (join success)."""

    def on_start(self: Any) -> None:
        self.rehearse_started_s = time.time()
        self.rehearse_noted = False
        run_of(self.environment).observations.at(self.rehearse_started_s).players["started"] += 1

    def wait_time(self: Any) -> float:
        if not self.rehearse_noted and self.ticket is not None:
            self.rehearse_noted = True
            if time.time() - self.rehearse_started_s <= within_s:
                observations = run_of(self.environment).observations
                observations.at(self.rehearse_started_s).players["admitted-in-time"] += 1
        return float(base.wait_time(self))

    return type(
        base.__name__,
        (base,),
        {
            "weight": weight,
            "on_start": on_start,
            "wait_time": wait_time,
            "__module__": base.__module__,
        },
    )


def shaped_classes(config: dict[str, Any]) -> list[type[User]]:
    """The scenario's user classes: listeners weighted by the mix, attackers a fixed count
    (left out at 0: Locust reads a fixed count of 0 as none)."""
    within_s = float(config.get("join_within_s", 30.0))
    listeners = [name for name in USER_CLASSES if name != "Attacker"]
    # a worker (no weights) knows every class: the master names those it spawns
    weights: dict[str, int] = config.get("weights", dict.fromkeys(listeners, 1))
    if "weights" in config and hls_mode(config) == "ll":
        weights = {LL_CLASSES.get(name, name): weight for name, weight in weights.items()}
    classes: list[type[User]] = []
    for name, weight in weights.items():
        base = USER_CLASSES[name]
        if name == "ProgressiveListener":
            classes.append(type(name, (base,), {"weight": weight, "__module__": base.__module__}))
        else:
            classes.append(player_class(base, within_s, weight))
    attackers = int(config.get("attackers", 1))
    if attackers > 0:
        fixed = {"fixed_count": attackers, "weight": 1, "__module__": Attacker.__module__}
        classes.append(type("Attacker", (Attacker,), fixed))
    return classes


def hls_mode(config: dict[str, Any]) -> str:
    """The run's HLS mode: the scenario's `[audience] hls_mode`, else the settings', else `ll`."""
    mode = config.get("audience", {}).get("hls_mode") or config.get("settings", {}).get("hls_mode")
    return str(mode or "ll")


def _emit(observations: Observations, **extra: Any) -> None:
    line = {"observations": observations.to_json(), **extra}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def _emit_forever(run: AudienceRun) -> None:
    while True:
        gevent.sleep(EMIT_INTERVAL_S)
        _emit(run.observations.take())


def _shape(config: dict[str, Any]) -> LoadTestShape:
    from rostra.rehearse.scenario import from_dict
    from rostra.rehearse.shape import ArrivalShape

    audience = from_dict({"audience": config["audience"]}).audience
    arrival = ArrivalShape(audience, attackers=int(config.get("attackers", 0)))

    class CurveShape(LoadTestShape):
        def tick(self) -> tuple[int, float] | None:
            return arrival.tick(self.get_run_time())  # type: ignore[no-untyped-call] # untyped in Locust

    return CurveShape()  # type: ignore[no-untyped-call] # Locust leaves it untyped


def _wait_stopped(runner: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while runner.state != STATE_STOPPED and time.monotonic() < deadline:
        gevent.sleep(0.2)


def shaped_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m rostra.rehearse.local_run --role ROLE")
    parser.add_argument("--role", choices=ROLES, required=True)
    parser.add_argument("--config", default="{}", help="the run as JSON (local and master)")
    parser.add_argument("--master-host", default="127.0.0.1")
    parser.add_argument("--master-port", type=int, default=5557)
    parser.add_argument("--expect-workers", type=int, default=1)
    args = parser.parse_args(argv)
    config: dict[str, Any] = json.loads(args.config)
    # the simulated audience yields the CPU to the speaker bots (and to a server on the same
    # machine): a user woken late is counted as the generator's fault, a starved speaker's gap
    # would be blamed on the server
    os.nice(GENERATOR_NICE)
    if args.role == "worker":
        return _run_worker(args.master_host, args.master_port)
    settings = AudienceSettings(**{**config["settings"], "hls_mode": hls_mode(config)})
    environment = Environment(
        user_classes=shaped_classes(config), host=config["host"], shape_class=_shape(config)
    )
    run = attach(environment, settings)
    if args.role == "local":
        runner: Any = environment.create_local_runner()
        sampler = start_live_sampler(run)
    else:
        runner = environment.create_master_runner(args.master_host, args.master_port)
        sampler = None
        if not _greet_workers(runner, config["settings"], args.expect_workers):
            runner.quit()
            return 2
    emitter = gevent.spawn(_emit_forever, run)
    try:
        sys.stdout.write(json.dumps({"started": time.time()}) + "\n")
        sys.stdout.flush()
        runner.start_shape()
        gevent.sleep(1.0)
        while runner.shape_greenlet is not None:
            gevent.sleep(0.2)
        _wait_stopped(runner, STOP_TIMEOUT_S)
        gevent.sleep(EMIT_INTERVAL_S if args.role == "local" else 4.0)  # the last reports
    finally:
        emitter.kill()
        if sampler is not None:
            sampler.kill()
        runner.quit()
    _emit(run.observations.take(), done=True)
    return 0


def _greet_workers(runner: Any, settings: dict[str, Any], expected: int) -> bool:
    """Answers each worker's hello with the audience's settings; True once `expected` workers
    have them (before any user is spawned), False after WORKERS_TIMEOUT_S."""
    greeted: set[str] = set()

    def hello(environment: Environment, msg: Any, **_: Any) -> None:
        runner.send_message(SETTINGS_MESSAGE, settings, client_id=msg.node_id)
        greeted.add(msg.node_id)

    runner.register_message(HELLO_MESSAGE, hello)
    deadline = time.monotonic() + WORKERS_TIMEOUT_S
    while len(greeted) < expected or len(runner.clients.ready) < expected:
        if time.monotonic() > deadline:
            sys.stderr.write(f"{len(greeted)} of {expected} workers came\n")
            return False
        gevent.sleep(0.2)
    gevent.sleep(0.5)  # the last settings on their way
    return True


def _run_worker(master_host: str, master_port: int) -> int:
    """A Locust worker joined to the master; it says hello, the master sends the settings."""
    environment = Environment(user_classes=shaped_classes({}))
    run = attach(environment, AudienceSettings(space_id=""))
    runner = environment.create_worker_runner(master_host, master_port)

    def settle(environment: Environment, msg: Any, **_: Any) -> None:
        run.settings = AudienceSettings(**msg.data)

    runner.register_message(SETTINGS_MESSAGE, settle)
    runner.send_message(HELLO_MESSAGE)
    sampler = start_live_sampler(run)
    try:
        runner.greenlet.join()
    finally:
        sampler.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
