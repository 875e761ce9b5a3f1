"""Proof-of-work for joins: real ALTCHA challenges issued, solved by the altcha package's own
solver, and redeemed once on every spent-solution store (memory, SQLite, real Redis); the `auto`
policy walked through an attack and its end on a manual clock."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import altcha
import pytest

from rostra.audience.challenge import (
    CALM_S,
    DIFFICULTY_STEPS,
    STEP_PRESSURE,
    TRIGGER_MULTIPLE,
    ChallengeBook,
    PowPolicy,
    ProofOfWork,
)
from rostra.audience.defense import PowMode
from rostra.clock import ManualClock
from rostra.errors import ChallengeFailed, ChallengeRequired, ChallengeSpent
from rostra.store.challenge_redis import RedisSpentSolutions
from rostra.store.challenge_spent import MemorySpentSolutions, SpentSolutions
from rostra.store.challenge_sqlite import SqliteSpentSolutions
from tests.conftest import StoreBackend

SECRET = "test-signing-secret"
SPACE = "spc0000000000001"
OTHER_SPACE = "spc0000000000002"
# small enough for the pure-Python solver to answer in milliseconds
TEST_MAX_NUMBER = 2_000


def solved(challenge: dict[str, object]) -> str:
    """The base64 payload a client sends, found by the altcha package's own solver."""
    parsed = altcha.Challenge.from_dict(challenge)
    solution = altcha.solve_challenge(parsed, timeout=10.0)
    assert solution is not None
    return altcha.Payload(parsed, solution).to_base64()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@pytest.fixture
def spent(store_backend: StoreBackend) -> SpentSolutions:
    return store_backend.open(MemorySpentSolutions, SqliteSpentSolutions, RedisSpentSolutions)


def test_solution_counts_once_for_its_space_until_it_expires(
    spent: SpentSolutions, clock: ManualClock
) -> None:
    book = ChallengeBook(SECRET, spent, clock, ttl_s=120)
    payload = solved(book.issue(SPACE, TEST_MAX_NUMBER))

    with pytest.raises(ChallengeFailed, match="solved for space"):
        book.redeem(OTHER_SPACE, payload, TEST_MAX_NUMBER)
    book.redeem(SPACE, payload, TEST_MAX_NUMBER)
    with pytest.raises(ChallengeSpent):
        book.redeem(SPACE, payload, TEST_MAX_NUMBER)

    late = solved(book.issue(SPACE, TEST_MAX_NUMBER))
    clock.advance(121)
    with pytest.raises(ChallengeRequired, match="expired") as expired:
        book.redeem(SPACE, late, TEST_MAX_NUMBER)
    fresh = expired.value.challenge
    assert isinstance(fresh, dict)
    book.redeem(SPACE, solved(fresh), TEST_MAX_NUMBER)


def test_spent_solution_is_refused_by_another_worker_sharing_the_store(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Two workers of one machine open the same SQLite file: a solution spent at one is spent
    at the other."""
    first = SqliteSpentSolutions(tmp_path / "audience.sqlite3")
    second = SqliteSpentSolutions(tmp_path / "audience.sqlite3")
    try:
        payload = solved(ChallengeBook(SECRET, first, clock).issue(SPACE, TEST_MAX_NUMBER))
        ChallengeBook(SECRET, first, clock).redeem(SPACE, payload, TEST_MAX_NUMBER)
        with pytest.raises(ChallengeSpent):
            ChallengeBook(SECRET, second, clock).redeem(SPACE, payload, TEST_MAX_NUMBER)
    finally:
        first.close()
        second.close()


def _tampered(payload: str, change: str) -> str:
    data = json.loads(base64.b64decode(payload))
    parameters = data["challenge"]["parameters"]
    if change == "space":
        parameters["data"]["space"] = OTHER_SPACE
    elif change == "expiry":
        parameters["data"]["expires"] += 3600
    elif change == "easier":
        parameters["keyPrefix"] = parameters["keyPrefix"][:2]
    elif change == "derived key":
        key = data["solution"]["derivedKey"]
        data["solution"]["derivedKey"] = ("0" if key[0] != "0" else "1") + key[1:]
    return base64.b64encode(json.dumps(data).encode()).decode()


@pytest.mark.parametrize("change", ["space", "expiry", "easier", "derived key"])
def test_tampered_solution_fails(change: str, clock: ManualClock) -> None:
    book = ChallengeBook(SECRET, MemorySpentSolutions(), clock)
    payload = solved(book.issue(SPACE, TEST_MAX_NUMBER))
    target = OTHER_SPACE if change == "space" else SPACE
    with pytest.raises(ChallengeFailed):
        book.redeem(target, _tampered(payload, change), TEST_MAX_NUMBER)
    book.redeem(SPACE, payload, TEST_MAX_NUMBER)  # the genuine one still counts


@pytest.mark.parametrize(
    "payload", ["", "not base64!", base64.b64encode(b"[1, 2]").decode(), "QQ==" * 2000]
)
def test_malformed_solution_fails(payload: str, clock: ManualClock) -> None:
    book = ChallengeBook(SECRET, MemorySpentSolutions(), clock)
    with pytest.raises(ChallengeFailed):
        book.redeem(SPACE, payload, TEST_MAX_NUMBER)


def test_challenge_of_another_deployment_fails(clock: ManualClock) -> None:
    theirs = ChallengeBook("another-secret", MemorySpentSolutions(), clock)
    ours = ChallengeBook(SECRET, MemorySpentSolutions(), clock)
    with pytest.raises(ChallengeFailed, match="not issued here"):
        ours.redeem(SPACE, solved(theirs.issue(SPACE, TEST_MAX_NUMBER)), TEST_MAX_NUMBER)


def test_work_is_a_counter_up_to_max_number(clock: ManualClock) -> None:
    """The answer is drawn in [0, max_number]: the mean work is max_number / 2 hashes."""
    book = ChallengeBook(SECRET, MemorySpentSolutions(), clock)
    counters = []
    for _ in range(40):
        solution = altcha.solve_challenge(
            altcha.Challenge.from_dict(book.issue(SPACE, TEST_MAX_NUMBER)), timeout=10.0
        )
        assert solution is not None
        counters.append(solution.counter)
    assert max(counters) <= TEST_MAX_NUMBER
    assert TEST_MAX_NUMBER * 0.3 < sum(counters) / len(counters) < TEST_MAX_NUMBER * 0.7


def test_join_without_proof_gets_the_challenge_only_when_required(clock: ManualClock) -> None:
    pow_check = ProofOfWork(
        ChallengeBook(SECRET, MemorySpentSolutions(), clock), PowPolicy(clock), mode=PowMode.ON
    )
    pow_check.check(SPACE, None, mode=PowMode.OFF)
    with pytest.raises(ChallengeRequired) as required:
        pow_check.check(SPACE, None)
    challenge = required.value.challenge
    assert set(challenge) == {"parameters", "signature"}
    parameters = challenge["parameters"]
    assert isinstance(parameters, dict)
    assert parameters["algorithm"] == "SHA-256"
    assert parameters["data"]["space"] == SPACE
    assert required.value.extra == {"challenge": challenge}


RATE = 10.0  # the space's admission rate in these tests: the join trigger is 3 x 10 = 30/s


def _joins(policy: PowPolicy, clock: ManualClock, per_s: float, seconds: int) -> bool:
    """`per_s` join attempts a second for `seconds`; whether the last one needed work."""
    is_required = False
    for _ in range(seconds):
        for _ in range(int(per_s)):
            is_required = policy.decide(SPACE, PowMode.AUTO, RATE).is_required
        clock.advance(1.0)
    return is_required


def test_auto_turns_on_above_the_trigger_and_off_after_a_calm_minute(clock: ManualClock) -> None:
    policy = PowPolicy(clock)
    trigger_per_s = TRIGGER_MULTIPLE * RATE
    assert not _joins(policy, clock, trigger_per_s * 0.8, 10)
    assert not policy.is_on(SPACE)
    assert _joins(policy, clock, trigger_per_s * 1.5, 6)
    assert policy.is_on(SPACE)  # what tightens the space's per-prefix join limit
    # below the trigger but above half of it: stays on (hysteresis)
    assert _joins(policy, clock, trigger_per_s * 0.7, int(CALM_S) + 10)
    # below half the trigger: on for another CALM_S, then off
    assert _joins(policy, clock, trigger_per_s * 0.2, int(CALM_S) - 10)
    assert not _joins(policy, clock, trigger_per_s * 0.2, 20)
    assert not policy.is_on(SPACE)


def test_auto_steps_difficulty_up_with_the_attack_and_down_when_it_ends(
    clock: ManualClock,
) -> None:
    policy = PowPolicy(clock)
    trigger_per_s = TRIGGER_MULTIPLE * RATE

    def step_after(per_s: float, seconds: int) -> int:
        _joins(policy, clock, per_s, seconds)
        return policy.decide(SPACE, PowMode.AUTO, RATE).step

    assert step_after(trigger_per_s * 1.5, 6) == 0
    assert step_after(trigger_per_s * STEP_PRESSURE * 1.5, 6) == 1
    assert step_after(trigger_per_s * STEP_PRESSURE**2 * 1.5, 6) == len(DIFFICULTY_STEPS) - 1
    # the attack ends: one step down per calm minute, then off
    assert step_after(0, int(CALM_S) + 6) == 1
    assert step_after(0, int(CALM_S)) == 0
    _joins(policy, clock, 0, int(CALM_S))
    assert not policy.decide(SPACE, PowMode.AUTO, RATE).is_required


def test_auto_turns_on_when_bad_tickets_pass_the_threshold(clock: ManualClock) -> None:
    rejected = [0]
    policy = PowPolicy(clock, bad_tickets=lambda: rejected[0], bad_tickets_per_s=50.0)
    for _ in range(6):
        rejected[0] += 30  # forged tickets, 30 a second: below the threshold
        clock.advance(1.0)
        assert not policy.decide(SPACE, PowMode.AUTO, RATE).is_required
    for _ in range(6):
        rejected[0] += 200
        clock.advance(1.0)
        decision = policy.decide(SPACE, PowMode.AUTO, RATE)
    assert decision.is_required


def test_worker_triggers_are_the_deployments_divided_among_its_workers(
    clock: ManualClock,
) -> None:
    """Each of 4 workers sees a quarter of the joins: at 1.5 x the deployment's trigger, each one
    turns proof-of-work on; at 0.8 x, none does."""
    trigger_per_s = TRIGGER_MULTIPLE * RATE
    calm = PowPolicy(clock, worker_share=0.25)
    assert not _joins(calm, clock, trigger_per_s * 0.8 / 4, 10)
    attacked = PowPolicy(clock, worker_share=0.25)
    assert _joins(attacked, clock, trigger_per_s * 1.5 / 4, 10)


def test_bad_tickets_from_before_auto_was_chosen_do_not_turn_it_on(clock: ManualClock) -> None:
    """The rejections of a long quiet hour are no burst: only the window's share counts."""
    rejected = [0]
    policy = PowPolicy(clock, bad_tickets=lambda: rejected[0], bad_tickets_per_s=50.0)
    rejected[0] += 36_000  # 10 a second for an hour, while nobody joined
    clock.advance(3600.0)
    assert not policy.decide(SPACE, PowMode.AUTO, RATE).is_required
