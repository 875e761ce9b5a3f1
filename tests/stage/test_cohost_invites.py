"""Co-host and hand invites on every space store: a co-host token verifies to the co-host role,
at most two are alive, only the host and co-hosts moderate, and a hand's invite is one per
listener, good for one connection, found again from the listener id alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rostra.clock import ManualClock
from rostra.errors import (
    CohostLimitReached,
    HandInviteRevoked,
    InvalidFields,
    InviteRevoked,
    RoleNotAllowed,
)
from rostra.stage.invites import InviteService, find_hand, hand_id
from rostra.stage.roles import MAX_COHOSTS, Role
from rostra.stage.tokens import TokenSigner
from rostra.store import SpaceStore
from rostra.store.reactions import RaisedHand
from tests.stage.conftest import SECRET, SPACE

LISTENER = "0123456789abcdef" + "f" * 16


def service(store: SpaceStore, clock: ManualClock) -> InviteService:
    return InviteService(store, TokenSigner(SECRET), clock, 3600)


def test_a_cohost_token_verifies_to_the_cohost_role_and_two_at_most_are_alive(
    store: SpaceStore,
) -> None:
    clock = ManualClock(datetime.now(UTC))
    invites = service(store, clock)
    ann = invites.mint(SPACE, name="Ann", role=Role.COHOST)
    bob = invites.mint(SPACE, role=Role.COHOST)
    assert (bob.record.name, bob.record.seats) == ("Co-host", None)  # personal, one seat
    for minted in (ann, bob):
        credential = invites.authorize(minted.token, SPACE, consume=False)
        assert credential.role == Role.COHOST
        assert invites.require_moderator(minted.token, SPACE).role == Role.COHOST
    speaker = invites.mint(SPACE, name="Sam")
    assert invites.authorize(speaker.token, SPACE, consume=False).role == Role.SPEAKER
    with pytest.raises(RoleNotAllowed, match="only the host or a co-host"):
        invites.require_moderator(speaker.token, SPACE)
    with pytest.raises(RoleNotAllowed, match="only the host"):
        invites.require_host(ann.token, SPACE)  # the host's own powers stay the host's
    with pytest.raises(CohostLimitReached, match=f"allows {MAX_COHOSTS} co-hosts"):
        invites.mint(SPACE, role=Role.COHOST)
    with pytest.raises(InvalidFields, match="personal and holds one seat"):
        invites.mint(SPACE, role=Role.COHOST, seats=2)
    # a revoked co-host moderates no more, and frees the place
    invites.revoke(SPACE, ann.record.id)
    with pytest.raises(InviteRevoked):
        invites.require_moderator(ann.token, SPACE)
    invites.mint(SPACE, role=Role.COHOST)
    # an expired one frees it too
    clock.advance(2 * 3600)
    assert invites.alive_cohost_invites(SPACE) == []


def test_a_hand_invite_is_one_per_listener_and_good_for_one_connection(
    store: SpaceStore,
) -> None:
    invites = service(store, ManualClock(datetime.now(UTC)))
    assert invites.hand_invite(SPACE, LISTENER) is None
    first, is_new = invites.invite_hand(SPACE, LISTENER, "Listener 0123")
    assert is_new
    again, is_new = invites.invite_hand(SPACE, LISTENER, "Someone else")
    assert not is_new  # idempotent while unused
    assert again.record.id == first.record.id
    found = invites.hand_invite(SPACE, LISTENER)
    assert found is not None
    credential = invites.authorize(found.token, SPACE, consume=True)  # the connection
    assert (credential.role, credential.name) == (Role.SPEAKER, "Listener 0123")
    assert invites.hand_invite(SPACE, LISTENER) is None  # spent
    assert invites.hand_invite(SPACE, "f" * 32) is None  # another listener finds nothing
    _, is_new = invites.invite_hand(SPACE, LISTENER, "Listener 0123")
    assert is_new  # one more connection
    assert invites.hand_invite(SPACE, LISTENER) is not None
    invites.revoke(SPACE, first.record.id)
    assert invites.hand_invite(SPACE, LISTENER) is None
    with pytest.raises(HandInviteRevoked, match="revoked"):
        invites.invite_hand(SPACE, LISTENER, "Listener 0123")


def test_a_hand_is_found_by_its_public_id_only() -> None:
    queue = [RaisedHand(listener_id=LISTENER, raised_at_s=1.0)]
    assert hand_id(LISTENER) == "0123456789abcdef"
    assert find_hand(queue, "0123456789abcdef") == queue[0]
    assert find_hand(queue, "01234567") is None  # a prefix is not enough
    assert find_hand(queue, LISTENER) is None
