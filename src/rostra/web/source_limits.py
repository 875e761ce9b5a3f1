"""Per-source limits: every write to the API (join, the listener's ticket calls, the host's and
admin's calls) counts against its client address and that address's prefix (/24 IPv4, /48 IPv6);
past either limit the answer is 429 with `Retry-After`, before any routing or storage.

Web plane. A pure ASGI middleware on the `limits` package. Joins and host/admin writes are
counted in Redis when the deployment has it (every gate worker shares the counts), else in
memory; a listener's ticket calls always in memory, per worker process (no round trip on the hot
path). Reads (GET, HEAD) pass untouched, and so does every request when the storage fails (a
limiter must not take the gate down). The client address is uvicorn's: it comes from
`X-Forwarded-For` only when the peer is in `trusted_proxies`.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Receive, Scope, Send

from rostra.config import Settings
from rostra.errors import RostraError, SourceRateLimited
from rostra.ids import is_space_id
from rostra.web import problems

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
IPV4_PREFIX_BITS = 24
IPV6_PREFIX_BITS = 48
UNKNOWN_SOURCE = "unknown"
# addresses whose parse (source, prefix, exemption) is remembered
SOURCE_CACHE = 65_536
# a hung Redis costs a request this much, then the request passes unlimited
REDIS_TIMEOUT_S = 0.5
LISTENER_WRITES = frozenset({"heartbeat", "leave", "reactions", "hand"})
# counters an in-memory storage keeps (two per source and limit: this window and the last), about
# 375 bytes each (24 MB at the cap); past it the oldest are forgotten (see BoundedMemoryStorage)
MAX_MEMORY_COUNTERS = 65_536


class BoundedMemoryStorage(MemoryStorage):
    """`limits`' memory storage with its expiry made incremental and its size capped.

    The package's own expiry scans every counter on the event loop after each hit: with 100,000
    sources in the last two windows (a flood of new addresses, or a large event's heartbeats) a
    hit cost 21 ms. Here each hit drops the expired counters at the front of a creation-ordered
    index (amortized O(1)), and past `max_counters` the oldest counter is forgotten: a flood of
    new sources can make a limit lenient for an old one, never refuse a source it should not.
    Single event loop: no await between reading and writing a counter, so no lock is needed.
    """

    def __init__(self, max_counters: int = MAX_MEMORY_COUNTERS) -> None:
        super().__init__()
        self.max_counters = max_counters
        self._created: OrderedDict[str, float] = OrderedDict()  # key: its expiry, oldest first

    @property
    def counters(self) -> int:
        """Counters held (expired ones not yet dropped included): at most `max_counters`."""
        return len(self._created)

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        if self.expirations.get(key, 0.0) <= now:
            self.storage.pop(key, None)
            self.expirations[key] = self._created[key] = now + expiry
            self._created.move_to_end(key)
        self.storage[key] += amount
        count = self.storage[key]
        self._forget(now)
        return count

    async def decr(self, key: str, amount: int = 1) -> int:
        if self.expirations.get(key, 0.0) <= time.time():
            return 0
        self.storage[key] = max(self.storage[key] - amount, 0)
        return self.storage[key]

    def _forget(self, now: float) -> None:
        created = self._created
        while created:
            key, expires_at = next(iter(created.items()))
            if expires_at > now and len(created) <= self.max_counters:
                return
            created.popitem(last=False)
            if self.expirations.get(key) == expires_at:  # not made anew since
                self.storage.pop(key, None)
                self.expirations.pop(key, None)
                self.locks.pop(key, None)


@dataclass(frozen=True, slots=True)
class Source:
    address: str
    prefix: str


def source_of(scope: Scope) -> Source:
    """The client's address and prefix; an address that is no IP (a Unix socket) is one source."""
    client = scope.get("client")
    return _source(str(client[0])) if client else Source(UNKNOWN_SOURCE, UNKNOWN_SOURCE)


@functools.lru_cache(maxsize=SOURCE_CACHE)
def _source(host: str) -> Source:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return Source(UNKNOWN_SOURCE, UNKNOWN_SOURCE)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = IPV4_PREFIX_BITS if ip.version == 4 else IPV6_PREFIX_BITS
    network = ipaddress.ip_network(f"{ip}/{bits}", strict=False)
    return Source(str(ip), str(network))


@dataclass(frozen=True, slots=True)
class LimitPair:
    name: str
    per_address: RateLimitItem
    per_prefix: RateLimitItem


def kind_of(path: str) -> str:
    """`join`, `write` (a listener's ticket call) or `admin` (any other API write)."""
    parts = path.split("/")
    name = parts[5] if len(parts) > 5 and parts[1:4] == ["api", "v1", "spaces"] else ""
    if name == "join":
        return "join"
    return "write" if name in LISTENER_WRITES else "admin"


class SourceLimits:
    """The ASGI middleware. Cheap for what it does not limit: no body read, no storage call."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self._defended_join = LimitPair(
            "join", parse(settings.limit_join_ip), parse(settings.limit_join_prefix_defended)
        )
        self._limits = {
            "join": LimitPair(
                "join", parse(settings.limit_join_ip), parse(settings.limit_join_prefix)
            ),
            "write": LimitPair(
                "write", parse(settings.limit_write_ip), parse(settings.limit_write_prefix)
            ),
            "admin": LimitPair(
                "admin", parse(settings.limit_admin_ip), parse(settings.limit_admin_prefix)
            ),
        }
        self._exempt = tuple(ipaddress.ip_network(n, strict=False) for n in settings.limits_exempt)
        self._exempt_address = functools.lru_cache(maxsize=SOURCE_CACHE)(self._address_is_exempt)
        # joins and host/admin writes are counted where every worker sees them (Redis when the
        # deployment has it); a listener's ticket calls only in this process, so a heartbeat,
        # and a forged one above all, never waits on a storage round trip
        self._shared = SlidingWindowCounterRateLimiter(_storage(settings))
        self._local = SlidingWindowCounterRateLimiter(BoundedMemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in READ_METHODS
            or not scope["path"].startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return
        source = source_of(scope)
        if self._is_exempt(source):
            await self.app(scope, receive, send)
            return
        kind = kind_of(scope["path"])
        pair = self._defended_join if kind == "join" and _is_defended(scope) else self._limits[kind]
        refusal = await self._check(pair, source)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await problems.from_error(refusal)(scope, receive, send)

    def _is_exempt(self, source: Source) -> bool:
        if source.address == UNKNOWN_SOURCE or not self._exempt:
            return False
        return self._exempt_address(source.address)

    def _address_is_exempt(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in network for network in self._exempt)

    async def _check(self, pair: LimitPair, source: Source) -> SourceRateLimited | None:
        limiter = self._local if pair.name == "write" else self._shared
        checks = (
            ("address", source.address, pair.per_address),
            ("prefix", source.prefix, pair.per_prefix),
        )
        try:
            for scope_name, key, item in checks:
                if not await limiter.hit(item, pair.name, scope_name, key):
                    stats = await limiter.get_window_stats(item, pair.name, scope_name, key)
                    wait_s = max(1.0, math.ceil(stats.reset_time - time.time()))
                    what = f"address {key}" if scope_name == "address" else f"prefix {key}"
                    return SourceRateLimited(
                        f"{pair.name} requests from {what} are over {item} "
                        f"(the per-{scope_name} limit); retry in {wait_s:.0f} s",
                        retry_after_s=wait_s,
                    )
        except (StorageError, ConnectionError, TimeoutError, OSError) as exc:
            log.warning("source limits unavailable", extra={"error": type(exc).__name__})
        return None


def _is_defended(scope: Scope) -> bool:
    """The space's proof-of-work is on, set so or turned on by `auto` under attack: its
    per-prefix join limit tightens (the defence is cached about a second by the gate)."""
    gate = getattr(getattr(scope.get("app"), "state", None), "gate", None)
    defense = getattr(gate, "defense", None)
    space_id = scope["path"].split("/")[4]
    if not callable(defense) or not is_space_id(space_id):
        return False
    try:
        mode = str(defense(space_id).pow)
    except (RostraError, OSError, RuntimeError):
        return False
    if mode == "on":
        return True
    policy = getattr(getattr(gate, "challenge", None), "policy", None)
    return mode == "auto" and policy is not None and bool(policy.is_on(space_id))


def _storage(settings: Settings) -> Storage:
    if settings.redis:
        storage = storage_from_string(
            "async+" + settings.redis,
            implementation="redispy",
            key_prefix="rostra-limits",
            wrap_exceptions=True,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        assert isinstance(storage, Storage)
        return storage
    return BoundedMemoryStorage()
