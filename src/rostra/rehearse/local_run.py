"""Runs a simulated audience in this process with Locust's LocalRunner for some seconds and
gives back what it observed. Locust patches the interpreter (gevent): run it in a process of its
own, e.g. `python -m rostra.rehearse.local_run HOST SPACE --users HlsListener=20 --seconds 12
--out observations.json`.

Rehearsal plane (a client).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import gevent
from locust import User
from locust.env import Environment

from rostra.rehearse.audience_run import AudienceSettings
from rostra.rehearse.locust_wiring import attach, start_live_sampler
from rostra.rehearse.observations import Observations
from rostra.rehearse.users import Attacker, HlsListener, InteractiveListener, ProgressiveListener

USER_CLASSES: dict[str, type[User]] = {
    cls.__name__: cls for cls in (HlsListener, InteractiveListener, ProgressiveListener, Attacker)
}
# users started per second when not given (Locust warns above 100)
DEFAULT_SPAWN_RATE = 100.0


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


if __name__ == "__main__":
    sys.exit(main())
