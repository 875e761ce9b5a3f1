"""The Redis join script and the bucket rule of admission_bucket.decide() decide alike: the same
joins, at the same times, rates and bursts, through both, get the same verdicts and leave the same
line behind."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rostra.store.admission_bucket import (
    QueueState,
    QueueVerdict,
    decide_join,
    new_state,
    snapshot_of,
    spent_verdict,
)
from rostra.store.admission_redis import RedisAdmissionStore
from tests.redis_server import RedisServer, running_redis

T0 = 1_800_000_000.0
SPENT_TTL_S = 300.0
_spaces = itertools.count()


@dataclass(frozen=True, slots=True)
class Join:
    after_s: float
    rate: float
    burst: int
    # None: a first arrival; else the number an arrival token carries (maybe one never handed out)
    number: int | None


joins = st.builds(
    Join,
    # times and rates that no double holds exactly: both sides must round alike
    after_s=st.sampled_from((0.0, 0.1, 1 / 3, 0.7)) | st.floats(0.0, 3.0),
    rate=st.sampled_from((0.7, 1.0, 3.0, 10.0)) | st.floats(0.05, 50.0),
    burst=st.integers(1, 4),
    number=st.none() | st.integers(1, 14),
)


class Reference:
    """decide() (through decide_join) and the spent numbers, as a store keeps them."""

    def __init__(self) -> None:
        self.state: QueueState | None = None
        self.spent: set[int] = set()

    def join(self, join: Join, now_s: float) -> QueueVerdict:
        if join.number is not None and join.number in self.spent:
            return spent_verdict(join.number)
        state = self.state or new_state(now_s, join.burst)
        verdict, spent = decide_join(state, join.number, now_s, join.rate, join.burst)
        self.state = state
        if spent is not None:
            self.spent.add(spent)
        return verdict


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server: RedisServer
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(scope="module")
def redis_store(redis_url: str) -> Iterator[RedisAdmissionStore]:
    store = RedisAdmissionStore(redis_url)
    yield store
    store.close()


@settings(max_examples=100, deadline=None, database=None)  # no example database in the tree
@given(st.lists(joins, min_size=1, max_size=40))
def test_redis_script_decides_every_join_as_the_bucket_rule_does(
    redis_store: RedisAdmissionStore, sequence: list[Join]
) -> None:
    space_id = f"agree{next(_spaces):07d}"
    reference = Reference()
    now_s = T0
    for step, join in enumerate(sequence):
        now_s += join.after_s
        expected = reference.join(join, now_s)
        got = redis_store.join(
            space_id,
            join.number,
            now_s=now_s,
            rate=join.rate,
            burst=join.burst,
            spent_ttl_s=SPENT_TTL_S,
        )
        assert got == expected, f"join {step} of {sequence[: step + 1]}"
        line = redis_store.snapshot(space_id, now_s=now_s, rate=join.rate, burst=join.burst)
        state = replace(reference.state) if reference.state is not None else None
        assert line == snapshot_of(state, now_s, join.rate, join.burst), f"after join {step}"
