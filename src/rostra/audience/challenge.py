"""Proof-of-work for joins (ALTCHA): challenges bound to one space, solutions that count once, and
the policy that asks for work always (`on`), never (`off`) or only under attack (`auto`).

Audience plane. The protocol is ALTCHA's v2, the one the `altcha` PyPI and npm packages speak:
the challenge's parameters (algorithm, nonce, salt, cost, keyPrefix, keySignature, data) are
HMAC-signed; the client searches the counter whose SHA-256(salt + nonce + counter) starts with
`keyPrefix`. The server picks that counter uniformly in [0, max_number] (ALTCHA's deterministic
mode), so a solver tries max_number / 2 counters on average, and verifies in two HMACs (the key
signature). `data` carries the space id and the expiry, signed with the rest: a solution for one
space is refused in another, and expiry is judged on the gate's clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import altcha

from rostra.audience.defense import PowMode
from rostra.clock import Clock
from rostra.errors import ChallengeFailed, ChallengeRequired, ChallengeSpent
from rostra.store.challenge_spent import SpentSolutions

ALGORITHM = "SHA-256"
COST = 1  # one SHA-256 per counter tried: the work is set by max_number alone
# the mean work of a step is max_number / 2 hashes; bench/pow.py measures each in Chromium
DIFFICULTY_STEPS: tuple[int, ...] = (50_000, 200_000, 1_000_000)
CHALLENGE_TTL_S = 120
# a payload is about 600 characters; anything much longer is not one
MAX_PAYLOAD_CHARS = 4_096
# keys derived from the signing secret, each under its own label (see tickets.py)
SIGNATURE_LABEL = b"rostra/audience/challenge/v1"
KEY_SIGNATURE_LABEL = b"rostra/audience/challenge-key/v1"

# `auto`: join attempts per second above this multiple of the admission rate, or bad tickets per
# second above BAD_TICKETS_PER_S, turn proof-of-work on for the space
TRIGGER_MULTIPLE = 3.0
BAD_TICKETS_PER_S = 50.0
# rates are measured over this many one-second buckets
RATE_WINDOW_S = 5
# it turns off (and difficulty steps down) after CALM_S below half the trigger
CALM_S = 60.0
CALM_RATIO = 0.5
# each step up needs this much more pressure (attack rate / trigger) than the last
STEP_PRESSURE = 4.0
# spaces whose `auto` state a worker remembers; past it the least recently seen is forgotten
MAX_TRACKED_SPACES = 10_000
# the admission rate `auto` compares join attempts with when the caller gives none
DEFAULT_ADMISSION_RATE_PER_S = 100.0


def derive_key(secret: str, label: bytes) -> bytes:
    return hmac.new(secret.encode(), label, hashlib.sha256).digest()


class RateMeter:
    """Events per second over the last RATE_WINDOW_S whole seconds, in one-second buckets."""

    def __init__(self, window_s: int = RATE_WINDOW_S) -> None:
        self._window_s = window_s
        self._buckets: deque[tuple[int, float]] = deque()

    def add(self, now_s: float, count: float = 1.0) -> None:
        second = int(now_s)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1] = (second, self._buckets[-1][1] + count)
        else:
            self._buckets.append((second, count))
        self._drop_old(second)

    def rate(self, now_s: float) -> float:
        self._drop_old(int(now_s))
        return sum(count for _, count in self._buckets) / self._window_s

    def _drop_old(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - self._window_s:
            self._buckets.popleft()


@dataclass(frozen=True, slots=True)
class PowDecision:
    is_required: bool
    step: int  # index into DIFFICULTY_STEPS (meaningful when is_required)
    pressure: float  # attack rate over the trigger: 1.0 is the trigger

    @property
    def max_number(self) -> int:
        return DIFFICULTY_STEPS[self.step]


NOT_REQUIRED = PowDecision(is_required=False, step=0, pressure=0.0)


@dataclass(slots=True)
class _SpaceState:
    joins: RateMeter
    is_on: bool = False
    step: int = 0
    # when a join last saw the pressure above the calm line of the current state
    hot_at_s: float = 0.0


class PowPolicy:
    """Decides, per join, whether proof-of-work is required and how hard.

    The counters are per worker: each worker sees its share of a deployment's joins (the kernel
    spreads connections over the workers of a machine; a load balancer over nodes), so its
    triggers are the deployment's divided by the number of workers (`worker_share` = 1 / workers).
    A flood that lands on one worker turns it on there sooner, never later. Bad tickets are this
    worker's 401s on heartbeat, leave, reactions and hand (Gate.counters `rejected:*`), for every
    space at once: a ticket forger is not tied to one space.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        worker_share: float = 1.0,
        bad_tickets: Callable[[], int] | None = None,
        bad_tickets_per_s: float = BAD_TICKETS_PER_S,
        trigger_multiple: float = TRIGGER_MULTIPLE,
    ) -> None:
        self._clock = clock
        self._share = worker_share
        self._bad_tickets = bad_tickets
        self._bad_tickets_seen = bad_tickets() if bad_tickets else 0
        self._bad_sampled_at_s = clock.monotonic_s()
        self._bad_meter = RateMeter()
        self._bad_threshold = bad_tickets_per_s * worker_share
        self._trigger_multiple = trigger_multiple
        self._spaces: dict[str, _SpaceState] = {}
        self._lock = threading.Lock()

    def pressure(self, space_id: str, admission_rate: float) -> float:
        """The higher of join attempts over their trigger and bad tickets over theirs."""
        now_s = self._clock.monotonic_s()
        state = self._spaces.get(space_id)
        join_rate = state.joins.rate(now_s) if state else 0.0
        join_threshold = max(self._trigger_multiple * admission_rate * self._share, 1e-9)
        bad_rate = self._bad_meter.rate(now_s)
        return max(join_rate / join_threshold, bad_rate / max(self._bad_threshold, 1e-9))

    def is_on(self, space_id: str) -> bool:
        """Whether `auto` has the space's proof-of-work on in this worker now (nothing counted)."""
        state = self._spaces.get(space_id)
        return state is not None and state.is_on

    def decide(self, space_id: str, mode: PowMode, admission_rate: float) -> PowDecision:
        """Count this join attempt, then decide (`off` counts nothing: the join stays cheap)."""
        if mode == PowMode.OFF:
            return NOT_REQUIRED
        with self._lock:
            return self._decide(space_id, mode, admission_rate)

    def _decide(self, space_id: str, mode: PowMode, admission_rate: float) -> PowDecision:
        now_s = self._clock.monotonic_s()
        self._sample_bad_tickets(now_s)
        state = self._state(space_id)
        state.joins.add(now_s)
        pressure = self.pressure(space_id, admission_rate)
        self._follow(state, pressure, now_s)
        is_required = mode == PowMode.ON or state.is_on
        return PowDecision(is_required=is_required, step=state.step, pressure=pressure)

    def _follow(self, state: _SpaceState, pressure: float, now_s: float) -> None:
        """Up at once; down one notch (a step, then off) per CALM_S below half its line, counted
        from the last join that saw the pressure above it (a quiet space sees few joins)."""
        wanted_step = step_for(pressure)
        if pressure >= 1.0 and (not state.is_on or wanted_step > state.step):
            state.is_on = True
            state.step = max(state.step, wanted_step)
            state.hot_at_s = now_s
            return
        while state.is_on:
            line = STEP_PRESSURE**state.step if state.step > 0 else 1.0
            if pressure >= line * CALM_RATIO:
                state.hot_at_s = now_s
                return
            if now_s - state.hot_at_s < CALM_S:
                return
            state.hot_at_s += CALM_S
            if state.step > 0:
                state.step -= 1
            else:
                state.is_on = False

    def _sample_bad_tickets(self, now_s: float) -> None:
        if self._bad_tickets is None:
            return
        total = self._bad_tickets()
        gap_s = now_s - self._bad_sampled_at_s
        if total > self._bad_tickets_seen and gap_s > 0:
            # sampled only at joins: the rejections since the last sample are spread over the
            # gap, and only the window's share of them counts (a long quiet gap is no burst)
            share = min(1.0, RATE_WINDOW_S / gap_s)
            self._bad_meter.add(now_s, (total - self._bad_tickets_seen) * share)
        self._bad_tickets_seen = total
        self._bad_sampled_at_s = now_s

    def _state(self, space_id: str) -> _SpaceState:
        state = self._spaces.pop(space_id, None)
        if state is None:
            state = _SpaceState(joins=RateMeter())
        self._spaces[space_id] = state  # most recently seen last
        while len(self._spaces) > MAX_TRACKED_SPACES:
            del self._spaces[next(iter(self._spaces))]
        return state


def step_for(pressure: float) -> int:
    """Step 0 from the trigger, then one more for each STEP_PRESSURE times as much."""
    step = 0
    while step + 1 < len(DIFFICULTY_STEPS) and pressure >= STEP_PRESSURE ** (step + 1):
        step += 1
    return step


class ChallengeBook:
    """Issues ALTCHA challenges for a space and checks their solutions, each counted once."""

    def __init__(
        self,
        secret: str,
        spent: SpentSolutions,
        clock: Clock,
        *,
        ttl_s: int = CHALLENGE_TTL_S,
    ) -> None:
        if not secret:
            raise ValueError("a challenge book needs the deployment's signing secret")
        self._key = derive_key(secret, SIGNATURE_LABEL)
        self._key_signature_key = derive_key(secret, KEY_SIGNATURE_LABEL)
        self._spent = spent
        self._clock = clock
        self._ttl_s = ttl_s

    def _now_s(self) -> float:
        return self._clock.now().timestamp()

    def issue(self, space_id: str, max_number: int) -> dict[str, object]:
        """A signed challenge whose answer is a counter in [0, max_number], as JSON."""
        expires = int(self._now_s()) + self._ttl_s
        challenge = altcha.create_challenge(
            ALGORITHM,
            COST,
            counter=secrets.randbelow(max_number + 1),
            data={"space": space_id, "expires": expires},
            hmac_secret=self._key,
            hmac_key_secret=self._key_signature_key,
        )
        issued: dict[str, object] = challenge.to_dict()
        return issued

    def redeem(self, space_id: str, payload: str, max_number: int) -> None:
        """Accept a solution once; ChallengeFailed, ChallengeSpent, or ChallengeRequired with a
        fresh challenge when the solved one has expired."""
        solved = _parse_payload(payload)
        result = altcha.verify_solution(solved, self._key, hmac_key_secret=self._key_signature_key)
        if result.invalid_signature or result.expired:
            raise ChallengeFailed(
                "the proof-of-work's challenge was not issued here or was altered"
            )
        data = solved.challenge.parameters.data or {}
        bound_space, expires = data.get("space"), data.get("expires")
        if not isinstance(expires, int) or not isinstance(bound_space, str):
            raise ChallengeFailed("the proof-of-work's challenge names no space or expiry")
        if bound_space != space_id:
            raise ChallengeFailed(
                f"the proof-of-work was solved for space '{bound_space[:40]}', not '{space_id}'"
            )
        now_s = self._now_s()
        if expires <= now_s:
            raise ChallengeRequired(
                f"the proof-of-work's challenge expired {int(now_s - expires)} s ago; "
                "solve this new one",
                challenge=self.issue(space_id, max_number),
            )
        if not result.verified:
            raise ChallengeFailed("the proof-of-work does not solve its challenge")
        signature = solved.challenge.signature or ""
        if not self._spent.spend(signature, float(expires), now_s):
            raise ChallengeSpent("this proof-of-work has already been used to join once")


def _parse_payload(payload: str) -> altcha.Payload:
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise ChallengeFailed(f"the proof-of-work is over {MAX_PAYLOAD_CHARS} characters")
    try:
        solved = altcha.Payload.from_dict(json.loads(base64.b64decode(payload, validate=True)))
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, RecursionError) as exc:
        raise ChallengeFailed(
            "the proof-of-work is not an ALTCHA payload (base64 JSON of challenge and solution)"
        ) from exc
    if not isinstance(solved.challenge.parameters.data, dict):
        raise ChallengeFailed("the proof-of-work's challenge names no space or expiry")
    return solved


class ProofOfWork:
    """The join's proof-of-work check: the policy says whether and how hard, the book does the
    rest. Called by every gate worker before admission; the mode and admission rate are the
    space's defence."""

    def __init__(
        self,
        book: ChallengeBook,
        policy: PowPolicy,
        *,
        mode: PowMode = PowMode.OFF,
        admission_rate: float = DEFAULT_ADMISSION_RATE_PER_S,
    ) -> None:
        self.book = book
        self.policy = policy
        self.default_mode = mode
        self.default_admission_rate = admission_rate
        self.last_max_number: dict[str, int] = {}

    def check(
        self,
        space_id: str,
        altcha_payload: str | None,
        *,
        mode: PowMode | None = None,
        admission_rate: float | None = None,
    ) -> PowDecision:
        """Return when no work is needed or the proof is good; else raise ChallengeRequired (with
        the challenge), ChallengeFailed or ChallengeSpent. The mode and admission rate are the
        space's defence (the deployment's defaults when not given)."""
        decision = self.policy.decide(
            space_id,
            self.default_mode if mode is None else mode,
            self.default_admission_rate if admission_rate is None else admission_rate,
        )
        if not decision.is_required:
            return decision
        self.last_max_number[space_id] = decision.max_number
        if len(self.last_max_number) > MAX_TRACKED_SPACES:
            del self.last_max_number[next(iter(self.last_max_number))]
        if not altcha_payload:
            raise ChallengeRequired(
                f"space '{space_id}' asks listeners for a proof-of-work before joining "
                f"(a counter up to {decision.max_number}); solve the challenge and join again "
                'with {"altcha": payload}',
                challenge=self.book.issue(space_id, decision.max_number),
            )
        self.book.redeem(space_id, altcha_payload, decision.max_number)
        return decision
