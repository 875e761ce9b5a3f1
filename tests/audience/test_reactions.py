"""Reactions: allowed emoji only, a per-ticket limit, and a tally over the last ten seconds."""

from __future__ import annotations

import pytest

from rostra.audience.reactions import ReactionTally
from rostra.clock import ManualClock
from rostra.errors import InvalidFields, ReactionNotAllowed, ReactionRateLimited, TooManyRequests

SPACE = "abcdefgh1234"
ALICE, BOB = "a" * 32, "b" * 32


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def test_reactions_are_tallied_by_emoji(clock: ManualClock) -> None:
    tally = ReactionTally(clock)
    for listener, emoji in ((ALICE, "👏"), (BOB, "👏"), (BOB, "🔥")):
        tally.react(SPACE, listener, emoji)
    assert tally.counts(SPACE) == {"👏": 2, "🔥": 1}
    assert tally.counts("other0000000") == {}


def test_reactions_older_than_ten_seconds_leave_the_tally(clock: ManualClock) -> None:
    tally = ReactionTally(clock, window_s=10)
    tally.react(SPACE, ALICE, "👏")
    clock.advance(9.5)
    tally.react(SPACE, BOB, "👏")
    assert tally.counts(SPACE) == {"👏": 2}
    clock.advance(1)
    assert tally.counts(SPACE) == {"👏": 1}
    clock.advance(10)
    assert tally.counts(SPACE) == {}


def test_unknown_emoji_is_rejected_as_invalid(clock: ManualClock) -> None:
    tally = ReactionTally(clock)
    with pytest.raises(ReactionNotAllowed) as caught:
        tally.react(SPACE, ALICE, "💩")
    assert isinstance(caught.value, InvalidFields)
    assert tally.counts(SPACE) == {}


def test_heart_with_or_without_variation_selector_is_one_reaction(clock: ManualClock) -> None:
    tally = ReactionTally(clock)
    tally.react(SPACE, ALICE, "❤️")
    tally.react(SPACE, BOB, "❤")
    assert tally.counts(SPACE) == {"❤️": 2}


def test_one_ticket_over_its_rate_is_limited_with_retry_after(clock: ManualClock) -> None:
    tally = ReactionTally(clock, rate_per_s=1.0, burst=5)
    for _ in range(5):
        tally.react(SPACE, ALICE, "👏")
    with pytest.raises(ReactionRateLimited) as caught:
        tally.react(SPACE, ALICE, "👏")
    assert isinstance(caught.value, TooManyRequests)
    assert caught.value.retry_after_s == pytest.approx(1.0)
    tally.react(SPACE, BOB, "👏")  # other tickets are not limited by Alice
    clock.advance(1.0)
    tally.react(SPACE, ALICE, "👏")
    assert tally.counts(SPACE) == {"👏": 7}


def test_idle_tickets_are_forgotten(clock: ManualClock) -> None:
    tally = ReactionTally(clock, rate_per_s=1.0, burst=5)
    for number in range(100):
        tally.react(SPACE, f"{number:032x}", "👏")
    clock.advance(6)
    tally.react(SPACE, ALICE, "👏")
    assert tally.tracked_tickets() == 1
