"""Gate throughput: heartbeats/s and joins/s per core through the real HTTP stack, p50/p99
latency, invalid-ticket rejections, the in-process ticket check, and the server settings tried.

The server runs pinned to core 0 (`taskset`), the load generator (wrk) and Redis to core 1. One
`rostra serve` worker with its in-memory store, then `rostra gate` on Redis with 1 and 2 workers
(both on core 0), then the gate app under other server settings (uvicorn's pure-Python h11 and
asyncio loop, granian) and, as an experiment, the same Gate behind plain Starlette routes.
"Per core" divides by the CPU time the server's processes used, so time taken by other work on
the shared machine does not count against the server.

Run from the repository root:  .venv/bin/python bench/gate.py [--duration-s 8] [--no-variants]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import redis

import gate_servers
import profiling
import wrk_load
from gate_servers import RunningServer, ServerSpec
from gate_tickets import SECRET, ticket_check_us, write_tickets
from harness import ADMIN_TOKEN, prioritize_clients, write_results
from rostra.config import Settings
from rostra.ids import new_space_id
from rostra.store.presence import SlidingWindow
from rostra.store.presence_redis import RedisPresenceStore
from rostra.store.reactions_redis import RedisSpaceStatus

if TYPE_CHECKING:
    from tests.redis_server import RedisServer

NAME = "gate"
SERVER_CORE = 0
CLIENT_CORE = 1
TARGET_HEARTBEATS_PER_CORE = 10_000
LISTENERS = 1_300_000
CONNECTIONS = 64
PACED_CONNECTIONS = 32
PACED_SHARE = 0.5  # the paced run offers this share of the measured saturation rate
WARM_UP_S = 1.0
SETTLE_S = 1.5  # flush (0.1 s) + the count's 1 s cache
JOIN_SURGE_S = 300.0
REDIS_BUSY_SHARE = 0.5
SOFTWARE = ("uvicorn", "uvloop", "httptools", "granian", "starlette", "fastapi", "redis")
DEFAULTS = Settings()

Figures = dict[str, Any]


class Bench:
    """One run: the Redis, the tickets, the scripts, and the load windows."""

    def __init__(self, args: argparse.Namespace, folder: Path, redis_server: RedisServer) -> None:
        self.args = args
        self.folder = folder
        self.redis_server = redis_server
        self.redis = redis.Redis.from_url(redis_server.url)
        self.script = wrk_load.write_script(folder)
        self.closing_script = wrk_load.write_script(folder, is_closing=True)
        self.gate_space = new_space_id()
        self.gate_tickets = write_tickets(folder, self.gate_space, args.tickets)

    def redis_cpu_s(self) -> float:
        assert self.redis_server.process is not None
        return gate_servers.tree_cpu_s(self.redis_server.process.pid)

    def window(
        self, server: RunningServer, path: str, tickets: Path | None, **options: Any
    ) -> Figures:
        """One wrk run with the server's and Redis' CPU over it."""
        load_1m = round(os.getloadavg()[0], 2)
        cpu_start, redis_start, wall_start = server.cpu_s(), self.redis_cpu_s(), time.monotonic()
        load = wrk_load.post_load(
            server.url,
            path,
            script=options.pop("script", self.script),
            tickets=tickets,
            connections=options.pop("connections", self.args.connections),
            duration_s=options.pop("duration_s", self.args.duration_s),
            core=CLIENT_CORE,
            **options,
        )
        wall_s = time.monotonic() - wall_start
        server_cores = (server.cpu_s() - cpu_start) / wall_s
        figures = load.as_json()
        figures["server_cpu_cores"] = round(server_cores, 3)
        figures["per_server_core_per_s"] = round(load.rate_per_s / max(server_cores, 1e-3), 1)
        figures["server_cpu_us_per_request"] = round(
            1e6 * server_cores / max(load.rate_per_s, 1e-3), 1
        )
        figures["redis_cpu_cores"] = round((self.redis_cpu_s() - redis_start) / wall_s, 4)
        figures["load_average_1m_at_start"] = load_1m
        return figures

    def prepare(self, server: RunningServer) -> tuple[str, Path, Path]:
        """The space the load goes to, and its valid and forged tickets."""
        if not server.spec.is_embedded:
            self.redis.flushall()
            RedisSpaceStatus(self.redis_server.url).set_status(self.gate_space, "live")
            return self.gate_space, *self.gate_tickets
        response = httpx.post(
            server.url + "/api/v1/spaces",
            json={"title": "Gate bench", "live": False},  # scheduled: admits, no program to encode
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=15,
        )
        response.raise_for_status()
        space_id = str(response.json()["id"])
        return space_id, *write_tickets(self.folder, space_id, self.args.tickets)

    def counted(self, server: RunningServer, space_id: str) -> int:
        """The count the server's store gives once the last batch was flushed."""
        time.sleep(SETTLE_S)
        if server.spec.is_embedded:
            state = httpx.get(f"{server.url}/live/{space_id}/state.json", timeout=15).json()
            return int(state["listeners"])
        window = SlidingWindow(DEFAULTS.presence_window, DEFAULTS.presence_slices)
        store = RedisPresenceStore(self.redis_server.url, window)
        try:
            return store.count(space_id, time.time()).listeners
        finally:
            store.close()

    def redis_commands(self) -> dict[str, int]:
        stats = self.redis.info("commandstats")
        return {name: int(entry["calls"]) for name, entry in stats.items()}

    def heartbeats(self, server: RunningServer, space_id: str, tickets: Path) -> Figures:
        path = f"/api/v1/spaces/{space_id}/heartbeat"
        warm = self.window(server, path, tickets, duration_s=WARM_UP_S)
        figures = self.window(server, path, tickets)
        sent = min(max(warm["requests"], figures["requests"]), self.args.tickets)
        counted = self.counted(server, space_id)
        figures["distinct_tickets_sent"] = sent
        figures["counted"] = counted
        figures["count_error_pct"] = round(100 * (counted - sent) / sent, 2)
        return figures

    def rejections(self, server: RunningServer, space_id: str, forged: Path) -> Figures:
        """Forged tickets at saturation; on Redis, the commands they caused (should be none)."""
        time.sleep(0.5)  # the joins' last batch leaves
        before = self.redis_commands()
        path = f"/api/v1/spaces/{space_id}/heartbeat"
        figures = self.window(server, path, forged, duration_s=self.args.short_s)
        after = self.redis_commands()
        figures["answered_401_or_other_4xx"] = figures["not_2xx"]
        if not server.spec.is_embedded:
            figures["redis_commands_during_run"] = {
                name: after[name] - before.get(name, 0)
                for name in after
                if after[name] != before.get(name, 0) and name != "cmdstat_info"
            }
        return figures

    def paced(self, server: RunningServer, space_id: str, tickets: Path, rate: float) -> Figures:
        """Requests at about PACED_SHARE of the saturation rate: latency without queueing."""
        pause_ms = max(1, round(PACED_CONNECTIONS * 1000 / (rate * PACED_SHARE)))
        script = wrk_load.write_script(self.folder, pause_ms=pause_ms)
        return self.window(
            server,
            f"/api/v1/spaces/{space_id}/heartbeat",
            tickets,
            script=script,
            connections=PACED_CONNECTIONS,
            duration_s=self.args.paced_s,
            pause_ms=pause_ms,
        )

    def measure(self, spec: ServerSpec, *, is_full: bool, is_profiled: bool = False) -> Figures:
        print(f"  {spec.name}: {spec.description}")
        figures: Figures = {"name": spec.name, "description": spec.description}
        with gate_servers.running(spec, secret=SECRET, core=SERVER_CORE) as server:
            figures["command"] = " ".join(server.command)
            space_id, tickets, forged = self.prepare(server)
            figures["heartbeats"] = self.heartbeats(server, space_id, tickets)
            _print_window("heartbeats", figures["heartbeats"])
            if is_full:
                rate = figures["heartbeats"]["rate_per_s"]
                join_path = f"/api/v1/spaces/{space_id}/join"
                figures["joins"] = self.window(
                    server, join_path, None, duration_s=self.args.short_s
                )
                _print_window("joins", figures["joins"])
                figures["invalid_tickets"] = self.rejections(server, space_id, forged)
                _print_window("invalid tickets (401)", figures["invalid_tickets"])
                figures["paced_heartbeats"] = self.paced(server, space_id, tickets, rate)
                _print_window("paced heartbeats", figures["paced_heartbeats"])
                figures["paced_invalid_tickets"] = self.paced(server, space_id, forged, rate)
                _print_window("paced invalid tickets", figures["paced_invalid_tickets"])
                figures["heartbeats_new_connection_each"] = self.window(
                    server,
                    f"/api/v1/spaces/{space_id}/heartbeat",
                    tickets,
                    script=self.closing_script,
                    duration_s=self.args.short_s,
                )
                _print_window("heartbeats, no reuse", figures["heartbeats_new_connection_each"])
            if is_profiled:
                figures["profile"] = self.profile(server, space_id, tickets)
        return figures

    def profile(self, server: RunningServer, space_id: str, tickets: Path) -> Figures:
        """py-spy on the worker while heartbeats run at saturation."""
        profile_s = self.args.profile_s
        path = f"/api/v1/spaces/{space_id}/heartbeat"
        with ThreadPoolExecutor(max_workers=1) as pool:
            load = pool.submit(self.window, server, path, tickets, duration_s=profile_s + 2)
            time.sleep(1.0)
            summary = profiling.record(server.process.pid, duration_s=profile_s, core=CLIENT_CORE)
            summary["heartbeats_per_s_while_sampled"] = load.result()["rate_per_s"]
        return summary


def _print_window(what: str, figures: Figures) -> None:
    latency = figures["latency_ms"]
    print(
        f"    {what:22s} {figures['rate_per_s']:9,.0f}/s  "
        f"{figures['per_server_core_per_s']:9,.0f}/server core-s  "
        f"(server {figures['server_cpu_cores']:.2f} cores)  "
        f"p50 {latency['p50']:.2f} ms  p99 {latency['p99']:.2f} ms  "
        f"non-2xx {figures['not_2xx']}  socket errors {figures['socket_errors']}"
    )


def sizing(servers: list[Figures]) -> Figures:
    """Gate cores and Redis nodes for LISTENERS at the default heartbeat interval."""
    by_name = {server["name"]: server for server in servers}
    rate = LISTENERS / DEFAULTS.heartbeat_interval_s
    figures: Figures = {
        "listeners": LISTENERS,
        "heartbeat_interval_s": DEFAULTS.heartbeat_interval_s,
        "heartbeats_per_s": round(rate),
    }
    for name in ("gate-1w", "gate-2w", "fastapi-plain-routes", "plain-starlette"):
        if name not in by_name:
            continue
        per_core = by_name[name]["heartbeats"]["per_server_core_per_s"]
        figures[f"gate_cores_at_100pct_with_{name}"] = round(rate / per_core, 1)
        figures[f"gate_cores_at_70pct_with_{name}"] = math.ceil(rate / (0.7 * per_core))
    redis_core_s_per_heartbeat = [
        server["heartbeats"]["redis_cpu_cores"] / server["heartbeats"]["rate_per_s"]
        for server in servers
        if not server["name"].startswith("serve")
    ]
    if redis_core_s_per_heartbeat:
        worst = max(redis_core_s_per_heartbeat)
        figures["redis_cpu_us_per_heartbeat_worst"] = round(worst * 1e6, 3)
        figures["redis_cores_at_rate"] = round(worst * rate, 3)
        figures["redis_nodes"] = max(1, math.ceil(worst * rate / REDIS_BUSY_SHARE))
    if "gate-1w" in by_name:
        join_rate = LISTENERS / JOIN_SURGE_S
        per_core = by_name["gate-1w"]["joins"]["per_server_core_per_s"]
        figures[f"joins_per_s_if_all_join_within_{JOIN_SURGE_S:.0f}_s"] = round(join_rate)
        figures["gate_cores_at_100pct_for_that_join_surge"] = round(join_rate / per_core, 1)
    figures["rules"] = (
        "cores = heartbeats/s over heartbeats per server core-second; 70 %: the same with cores "
        f"kept 70 % busy; Redis nodes: Redis' one core kept at most {REDIS_BUSY_SHARE:.0%} busy "
        "(capacity only: a replica for availability comes on top)"
    )
    return figures


def software() -> dict[str, str]:
    versions = {}
    for package in SOFTWARE:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    versions["wrk"] = wrk_load.wrk_version()
    versions["redis-server"] = gate_servers.redis_version()
    return versions


def variants(redis_url: str) -> list[ServerSpec]:
    specs = [
        gate_servers.uvicorn_gate(redis_url, loop="asyncio", http="h11"),
        gate_servers.uvicorn_gate(redis_url, loop="asyncio", http="httptools"),
    ]
    if gate_servers.is_granian_installed():
        specs += [
            gate_servers.granian_gate(redis_url, task_impl="asyncio"),
            gate_servers.granian_gate(redis_url, task_impl="rust"),
        ]
    specs += [
        gate_servers.plain_gate(redis_url, is_mounted=True),
        gate_servers.plain_gate(redis_url),
    ]
    return specs


def measure(args: argparse.Namespace) -> Figures:
    os.sched_setaffinity(0, {CLIENT_CORE})
    result: Figures = {"software": software(), "ticket_check_us": ticket_check_us()}
    print(f"ticket check (µs): {result['ticket_check_us']}")
    with (
        tempfile.TemporaryDirectory(prefix="rostra-bench-gate-") as folder,
        gate_servers.pinned_redis(CLIENT_CORE) as redis_server,
    ):
        bench = Bench(args, Path(folder), redis_server)
        servers = [
            bench.measure(gate_servers.embedded(), is_full=True),
            bench.measure(
                gate_servers.gate(redis_server.url, 1), is_full=True, is_profiled=args.profile
            ),
            bench.measure(gate_servers.gate(redis_server.url, 2), is_full=True),
        ]
        if args.variants:
            servers += [bench.measure(spec, is_full=False) for spec in variants(redis_server.url)]
    result["servers"] = servers
    result["granian"] = "tried" if gate_servers.is_granian_installed() else "not installed"
    result["sizing"] = sizing(servers)
    return result


def print_summary(result: Figures) -> None:
    print("\nheartbeats per server core-second (target ≥ 10,000):")
    for server in result["servers"]:
        beats = server["heartbeats"]
        print(
            f"  {server['name']:22s} {beats['per_server_core_per_s']:9,.0f}  "
            f"({beats['rate_per_s']:,.0f}/s on {beats['server_cpu_cores']:.2f} cores; "
            f"p50 {beats['latency_ms']['p50']} ms, p99 {beats['latency_ms']['p99']} ms; "
            f"counted {beats['counted']:,} of {beats['distinct_tickets_sent']:,})"
        )
    print(f"sizing: {result['sizing']}")
    if "profile" in result["servers"][1]:
        print(f"profile of gate-1w: {result['servers'][1]['profile']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=8.0, help="heartbeat window")
    parser.add_argument("--short-s", type=float, default=4.0, help="join and invalid windows")
    parser.add_argument("--paced-s", type=float, default=3.0, help="paced latency windows")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument("--tickets", type=int, default=200_000, help="distinct tickets")
    parser.add_argument("--profile-s", type=float, default=5.0, help="py-spy sampling window")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--no-variants", dest="variants", action="store_false")
    parser.add_argument(
        "--same-priority", action="store_true", help="do not run the clients ahead of the server"
    )
    args = parser.parse_args()
    niceness = prioritize_clients(not args.same_priority)
    started_at = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    print(f"gate bench: server on core {SERVER_CORE}, wrk and Redis on core {CLIENT_CORE}")
    result = measure(args)
    result["load_average_at_start"] = load_at_start
    result["niceness"] = niceness
    result["pinning"] = {"server": SERVER_CORE, "wrk": CLIENT_CORE, "redis": CLIENT_CORE}
    result["target_heartbeats_per_core"] = TARGET_HEARTBEATS_PER_CORE
    print_summary(result)
    path = write_results(NAME, result, started_at=started_at)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
