"""The gate: what a listener may write — join, heartbeat, leave, react, raise a hand — checked
cheaply (ticket signature first, before any storage is touched) and batched to the stores.

Audience plane. Stateless across workers: any worker takes any request.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass

from rostra.audience.admission import AdmissionControl, Arrival
from rostra.audience.challenge import ProofOfWork
from rostra.audience.defense import (
    MAX_ADMISSION_BURST,
    MAX_ADMISSION_RATE,
    DefenseService,
    PowMode,
    SpaceDefense,
)
from rostra.audience.presence import PresenceService
from rostra.audience.tickets import IssuedTicket, Ticket, TicketSigner
from rostra.clock import Clock
from rostra.errors import (
    ReactionNotAllowed,
    ReactionRateLimited,
    RostraError,
    SpaceEnded,
    SpaceNotFound,
    TicketAlreadyReturned,
    TicketRevoked,
    Unavailable,
    WaitingRoom,
)
from rostra.ids import is_space_id
from rostra.store.challenge_spent import MemorySpentSolutions, SpentSolutions
from rostra.store.reactions import ReactionStore
from rostra.store.revocations import MemoryRevocationLog, Revocation, RevocationList
from rostra.store.status import SpaceStatusStore

REACTIONS = ("👏", "❤️", "😂", "🔥", "👍", "😮", "🙏", "🎉", "💯", "🤔")
REACTION_PERIOD_S = 10.0
HEARTBEAT_JITTER = 0.25
STATUS_CACHE_S = 1.0
# spaces whose status a worker remembers; past it the least recently asked is forgotten
STATUS_CACHE_ENTRIES = 10_000
RATE_LIMITED_LISTENERS = 100_000
# renew a ticket when less than this share of its life is left
RENEW_BELOW = 0.25
UNGUARDED = SpaceDefense(PowMode.OFF, MAX_ADMISSION_RATE, MAX_ADMISSION_BURST)
# keys of exchanged tickets in the spent store, apart from proof-of-work solutions
RETURNED_KEY_PREFIX = "returned-ticket:"


@dataclass(frozen=True, slots=True)
class Admission:
    issued: IssuedTicket
    heartbeat_interval_s: float


class ReactionLimiter:
    """At most N reactions per listener per 10 s, per worker; memory bounded (oldest forgotten)."""

    def __init__(self, per_period: int, period_s: float = REACTION_PERIOD_S) -> None:
        self._per_period = per_period
        self._period_s = period_s
        self._lock = threading.Lock()
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    @property
    def per_period(self) -> int:
        return self._per_period

    def allow(self, listener_id: str, now_s: float) -> float | None:
        """None if allowed; else seconds until the listener may react again."""
        with self._lock:
            start, used = self._windows.pop(listener_id, (now_s, 0))
            if now_s - start >= self._period_s:
                start, used = now_s, 0
            if used >= self._per_period:
                self._windows[listener_id] = (start, used)
                return start + self._period_s - now_s
            self._windows[listener_id] = (start, used + 1)
            while len(self._windows) > RATE_LIMITED_LISTENERS:
                self._windows.popitem(last=False)
            return None


class StatusCache:
    """Space statuses read from the store, each kept STATUS_CACHE_S, at most `max_entries` of
    them: any well-formed id may be asked for, so the least recently asked is forgotten first."""

    def __init__(self, max_entries: int = STATUS_CACHE_ENTRIES) -> None:
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, space_id: str) -> tuple[float, str | None] | None:
        """(read at, status) if cached, however old."""
        with self._lock:
            entry = self._entries.get(space_id)
            if entry is not None:
                self._entries.move_to_end(space_id)
            return entry

    def put(self, space_id: str, read_at_s: float, status: str | None) -> None:
        with self._lock:
            self._entries[space_id] = (read_at_s, status)
            self._entries.move_to_end(space_id)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)


class Gate:
    # the join's proof-of-work check (audience/challenge.py), set by the wiring; None: never asked
    challenge: ProofOfWork | None = None
    # the joins' token bucket and line (audience/admission.py) and each space's defence
    # (audience/defense.py), set by the wiring; None: every join admitted, no defence
    admission: AdmissionControl | None = None
    defenses: DefenseService | None = None

    def __init__(
        self,
        *,
        tickets: TicketSigner,
        presence: PresenceService,
        reactions: ReactionStore,
        statuses: SpaceStatusStore,
        clock: Clock,
        ticket_ttl_s: int,
        heartbeat_interval_s: float,
        reactions_per_10s: int,
        status_cache_entries: int = STATUS_CACHE_ENTRIES,
        revocations: RevocationList | None = None,
        returned: SpentSolutions | None = None,
    ) -> None:
        self.tickets = tickets
        self.presence = presence
        self.reactions = reactions
        self._statuses = statuses
        self._clock = clock
        self._ticket_ttl_s = ticket_ttl_s
        self._heartbeat_interval_s = heartbeat_interval_s
        self._limiter = ReactionLimiter(reactions_per_10s)
        self.status_cache = StatusCache(status_cache_entries)
        self._pending_reactions: dict[str, Counter[str]] = {}
        self._reactions_lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.revocations = (
            revocations if revocations is not None else RevocationList(MemoryRevocationLog())
        )
        # tickets exchanged once by returning listeners (shared by workers: the spent store)
        self.returned: SpentSolutions = returned if returned is not None else MemorySpentSolutions()

    def _now_s(self) -> float:
        return self._clock.now().timestamp()

    def status(self, space_id: str) -> str | None:
        """The space's status from the store, cached a second per worker."""
        if not is_space_id(space_id):
            return None
        cached = self.status_cache.get(space_id)
        now = self._clock.monotonic_s()
        if cached is not None and now - cached[0] < STATUS_CACHE_S:
            return cached[1]
        try:
            status = self._statuses.get_status(space_id)
        except Unavailable:
            if cached is None:
                raise
            return cached[1]  # the store is away: keep admitting to what we knew was open
        self.status_cache.put(space_id, now, status)
        return status

    def heartbeat_interval_s(self) -> float:
        """The interval a listener should wait, jittered so a surge does not beat in step."""
        spread = self._heartbeat_interval_s * HEARTBEAT_JITTER
        return round(self._heartbeat_interval_s + random.uniform(-spread, spread), 1)  # noqa: S311

    def defense(self, space_id: str) -> SpaceDefense:
        """The space's defence (cached about a second per worker)."""
        if self.defenses is None:
            return UNGUARDED
        return self.defenses.get(space_id)

    def check_admits(self, space_id: str) -> None:
        """404 unknown space, 409 ended; the status store is read at most once a second per
        space and worker (run it off the loop: an unknown id is a store read)."""
        status = self.status(space_id)
        if status is None:
            raise SpaceNotFound(f"no space has id '{space_id[:40]}'")
        if status == "ended":
            raise SpaceEnded(f"space '{space_id}' has ended; it admits no more listeners")

    def join(self, space_id: str, *, arrival: Arrival | None = None) -> Admission:
        """A ticket when the space's bucket allows; else WaitingRoom, a place in line (kept by
        `arrival`, the verified token of an earlier answer)."""
        self.check_admits(space_id)
        if self.admission is not None:
            try:
                self.admission.admit(space_id, self.defense(space_id), arrival)
            except WaitingRoom:
                self.counters["queued"] += 1
                raise
        issued = self.tickets.issue(space_id, now_s=self._now_s(), ttl_s=self._ticket_ttl_s)
        self.presence.record_admission(space_id, issued.ticket.listener_id)
        self.counters["joins"] += 1
        return Admission(issued=issued, heartbeat_interval_s=self.heartbeat_interval_s())

    def rejoin(self, token: str | None, space_id: str) -> Admission:
        """A returning listener (a reloaded page) exchanges the ticket it gave back on leave for
        a new one of the same listener id: no line, no proof-of-work (they were admitted once),
        not admitted twice, and counted once. Each ticket is exchanged once; signature, space
        and expiry are checked first, so a bad ticket touches no storage."""
        old = self.signed(token, space_id)
        self.check_admits(space_id)
        now_s = self._now_s()
        key = f"{RETURNED_KEY_PREFIX}{old.listener_id}:{old.issued_at_s}"
        if not self.returned.spend(key, float(old.expires_at_s), now_s):
            self.counters["rejected:ticket-already-returned"] += 1
            raise TicketAlreadyReturned(
                f"this ticket of space '{space_id}' was already exchanged once; join again"
            )
        # issued after the leave's second (and after the ticket it replaces), so the
        # revocation of the older tickets does not cover it
        issued_at_s = max(int(now_s) + 1, old.issued_at_s + 1)
        issued = self.tickets.issue(
            space_id, now_s=issued_at_s, ttl_s=self._ticket_ttl_s, listener_id=old.listener_id
        )
        self.presence.record_heartbeat(space_id, old.listener_id)
        self.counters["returns"] += 1
        return Admission(issued=issued, heartbeat_interval_s=self.heartbeat_interval_s())

    def signed(self, token: str | None, space_id: str) -> Ticket:
        """The ticket's signature, expiry and space: no storage is touched to say no."""
        try:
            return self.tickets.verify(token or "", space_id, now_s=self._now_s())
        except RostraError as error:
            self.counters[f"rejected:{error.type_slug}"] += 1
            raise

    def verify(self, token: str | None, space_id: str) -> Ticket:
        """A genuine ticket (signature first), not given back: the revocations are this
        worker's local list, so saying no still touches no storage."""
        ticket = self.signed(token, space_id)
        if self.revocations.is_revoked(ticket.listener_id, self._now_s(), ticket.issued_at_s):
            self.counters["rejected:ticket-revoked"] += 1
            raise TicketRevoked(
                f"this ticket was given back when its listener left space '{space_id}'; join again"
            )
        return ticket

    def _verify_open(self, token: str | None, space_id: str) -> Ticket:
        """A valid ticket of a space that has not ended (its status cached a second)."""
        ticket = self.verify(token, space_id)
        try:
            status = self.status(space_id)
        except Unavailable:
            status = None  # the store is away: the signed ticket is all there is to go by
        if status == "ended":
            self.counters["rejected:space-ended"] += 1
            raise SpaceEnded(f"space '{space_id}' has ended; it takes no more listener calls")
        return ticket

    def heartbeat(self, token: str | None, space_id: str) -> IssuedTicket | None:
        """Count the listener; a renewed ticket when theirs is near its end."""
        ticket = self._verify_open(token, space_id)
        self.presence.record_heartbeat(space_id, ticket.listener_id)
        self.counters["heartbeats"] += 1
        now_s = self._now_s()
        if ticket.remaining_s(now_s) < self._ticket_ttl_s * RENEW_BELOW:
            self.counters["renewals"] += 1
            return self.tickets.renew(ticket, now_s=now_s, ttl_s=self._ticket_ttl_s)
        return None

    def leave(self, token: str | None, space_id: str) -> None:
        """A listener leaving stops heartbeating (they drop out of the next window) and gives
        the ticket back: no ticket of theirs issued until now works again, even one renewed
        before (one issued later, by `rejoin`, does). A second leave with the same ticket is no
        error (a page may send its beacon twice)."""
        ticket = self.signed(token, space_id)
        now_s = self._now_s()
        if self.revocations.is_revoked(ticket.listener_id, now_s, ticket.issued_at_s):
            # given back already: a second beacon must not revoke a returning ticket issued since
            self.counters["leaves_repeated"] += 1
            return
        # a renewal issued just before leaving lives at most a ticket's lifetime from now
        until_s = max(float(ticket.expires_at_s), now_s + self._ticket_ttl_s)
        # a returning ticket is issued a little ahead of its clock: it is covered too
        revoked_at_s = max(now_s, float(ticket.issued_at_s))
        self.revocations.revoke(Revocation(ticket.listener_id, until_s, revoked_at_s), now_s)
        self.reactions.lower_hand(space_id, ticket.listener_id)
        self.counters["leaves"] += 1

    def react(self, token: str | None, space_id: str, emoji: str) -> None:
        ticket = self._verify_open(token, space_id)
        if emoji not in REACTIONS:
            raise ReactionNotAllowed(f"emoji '{emoji[:8]}' is not one of {' '.join(REACTIONS)}")
        wait_s = self._limiter.allow(ticket.listener_id, self._now_s())
        if wait_s is not None:
            raise ReactionRateLimited(
                f"a listener may react {self._limiter.per_period} times per 10 s",
                retry_after_s=wait_s,
            )
        with self._reactions_lock:
            self._pending_reactions.setdefault(space_id, Counter())[emoji] += 1
        self.counters["reactions"] += 1

    def raise_hand(self, token: str | None, space_id: str) -> None:
        ticket = self._verify_open(token, space_id)
        self.reactions.raise_hand(space_id, ticket.listener_id, self._now_s())
        self.counters["hands"] += 1

    def lower_hand(self, token: str | None, space_id: str) -> None:
        ticket = self._verify_open(token, space_id)
        self.reactions.lower_hand(space_id, ticket.listener_id)
        self.counters["hands_lowered"] += 1

    def flush(self) -> None:
        """Send batched writes to the stores (a timer calls this about every 100 ms)."""
        self.presence.flush()
        with self._reactions_lock:
            pending, self._pending_reactions = self._pending_reactions, {}
        now_s = self._now_s()
        for space_id, counts in pending.items():
            self.reactions.add_reactions(space_id, dict(counts), now_s)
        self.revocations.sync(now_s)
