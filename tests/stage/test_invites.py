"""Invites and host links on every space store: seats of personal and shared invites, uses spent
once and given back when no connection came up, host links that expire and rotate, and a data
folder from before these columns migrated on open."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from rostra.clock import ManualClock
from rostra.errors import (
    CredentialExpired,
    CredentialInvalid,
    HostLinkRotated,
    InvalidFields,
    InviteUsedUp,
    RoleNotAllowed,
    SessionNotOwned,
)
from rostra.stage.invites import DEFAULT_SEATS, InviteService
from rostra.stage.roles import Role
from rostra.stage.tokens import TokenSigner
from rostra.store import SpaceStore, SqliteSpaceStore
from tests.stage.conftest import SECRET, SPACE


def service(
    store: SpaceStore, *, clock: ManualClock | None = None, voices: int = 13
) -> InviteService:
    clock = clock or ManualClock(datetime.now(UTC))
    return InviteService(store, TokenSigner(SECRET), clock, 3600, max_voices=voices)


def test_a_named_invite_is_personal_and_a_shared_link_holds_its_seats(store: SpaceStore) -> None:
    invites = service(store, voices=6)
    named = invites.mint(SPACE, name="Ann")
    assert named.record.seats is None
    assert invites.authorize(named.token, SPACE, consume=False).seats is None
    shared = invites.mint(SPACE)
    assert shared.record.seats == DEFAULT_SEATS
    assert store.get_invite(shared.record.id) == shared.record  # the store keeps the seats
    assert invites.mint(SPACE, seats=5).record.seats == 5
    with pytest.raises(InvalidFields, match="seats is 6; it must be between 1 and 5"):
        invites.mint(SPACE, seats=6)
    with pytest.raises(InvalidFields, match="personal and holds one seat"):
        invites.mint(SPACE, name="Ann", seats=2)
    # a small stage: the default never takes the host's seat
    assert service(store, voices=3).mint(SPACE).record.seats == 2


def test_a_use_is_given_back_when_no_connection_came_up(store: SpaceStore) -> None:
    invites = service(store)
    minted = invites.mint(SPACE, uses=1)
    credential = invites.authorize(minted.token, SPACE, consume=True)
    with pytest.raises(InviteUsedUp, match="allows 1 uses; all are used"):
        invites.authorize(minted.token, SPACE, consume=True)
    invites.refund(credential)
    invites.refund(credential)  # never below zero
    record = store.get_invite(minted.record.id)
    assert record is not None
    assert record.uses_count == 0
    invites.authorize(minted.token, SPACE, consume=True)
    with pytest.raises(InviteUsedUp):
        invites.authorize(minted.token, SPACE, consume=True)


def test_concurrent_connections_never_spend_more_than_the_uses(store: SpaceStore) -> None:
    invites = service(store)
    minted = invites.mint(SPACE, uses=5)
    granted: list[int] = []
    refunded: list[int] = []
    barrier = threading.Barrier(20)

    def connect(number: int) -> None:
        barrier.wait()
        try:
            credential = invites.authorize(minted.token, SPACE, consume=True)
        except InviteUsedUp:
            return
        granted.append(number)
        if number % 2:  # these connections fail and give their use back
            invites.refund(credential)
            refunded.append(number)

    threads = [threading.Thread(target=connect, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    record = store.get_invite(minted.record.id)
    assert record is not None
    assert record.uses_count == len(granted) - len(refunded) <= 5
    assert len(granted) >= 5


def test_host_links_expire(store: SpaceStore) -> None:
    past = ManualClock(datetime.now(UTC) - timedelta(days=31))
    space = store.get_space(SPACE)
    assert space is not None
    old = service(store, clock=past).host_link(space)
    with pytest.raises(CredentialExpired):
        service(store).require_host(old.token, SPACE)
    fresh = service(store).host_link(space)
    assert fresh.expires_at > datetime.now(UTC) + timedelta(days=29)
    assert service(store).require_host(fresh.token, SPACE).role == Role.HOST


def test_a_rotated_host_link_ends_every_older_one(store: SpaceStore) -> None:
    invites = service(store)
    space = store.get_space(SPACE)
    assert space is not None
    before = invites.host_link(space)
    rotated = invites.rotate_host_link(SPACE)
    assert rotated.generation == before.generation + 1
    with pytest.raises(HostLinkRotated, match="generation 0; space 'abcdefgh1234' rotated"):
        invites.require_host(before.token, SPACE)
    with pytest.raises(HostLinkRotated):
        invites.authorize(before.token, SPACE, consume=False)  # WHIP too
    assert invites.require_host(rotated.token, SPACE).role == Role.HOST
    # a later update of the space (start, end) never brings the old generation back
    store.update_space(space)
    assert invites.require_host(rotated.token, SPACE).role == Role.HOST
    after = store.get_space(SPACE)
    assert after is not None
    assert after.host_generation == 1


def test_a_host_token_that_never_expires_is_refused(store: SpaceStore) -> None:
    """Host tokens of the older release carried no expiry and no generation."""
    legacy = jwt.encode({"typ": "host", "spc": SPACE}, SECRET, algorithm="HS256")
    with pytest.raises(CredentialInvalid, match="never expires"):
        service(store).require_host(legacy, SPACE)


def test_only_the_invite_that_made_a_session_or_the_host_may_end_it(store: SpaceStore) -> None:
    invites = service(store)
    mine = invites.authorize(invites.mint(SPACE).token, SPACE, consume=False)
    other = invites.authorize(invites.mint(SPACE, name="Bo").token, SPACE, consume=False)
    space = store.get_space(SPACE)
    assert space is not None
    host = invites.authorize(invites.host_link(space).token, SPACE, consume=False)
    invites.require_session_owner(mine, "sess1", mine.invite_id)
    invites.require_session_owner(host, "sess1", mine.invite_id)
    invites.require_session_owner(host, "sess2", None)
    with pytest.raises(SessionNotOwned, match="stage session 'sess1' was not made with this"):
        invites.require_session_owner(other, "sess1", mine.invite_id)
    with pytest.raises(SessionNotOwned):
        invites.require_session_owner(mine, "sess2", None)  # the host's own session
    with pytest.raises(RoleNotAllowed):
        invites.require_host(invites.mint(SPACE).token, SPACE)


def test_a_data_folder_from_before_seats_and_host_links_migrates(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE spaces (id TEXT PRIMARY KEY, title TEXT NOT NULL, status TEXT NOT NULL,
          created_at TEXT NOT NULL, scheduled_at TEXT, started_at TEXT, ended_at TEXT);
        CREATE TABLE invites (id TEXT PRIMARY KEY, space_id TEXT NOT NULL, name TEXT NOT NULL,
          uses_max INTEGER, uses_count INTEGER NOT NULL DEFAULT 0,
          is_revoked INTEGER NOT NULL DEFAULT 0, expires_at TEXT NOT NULL,
          created_at TEXT NOT NULL);
        INSERT INTO spaces VALUES ('oldspace0001', 'Old', 'live', '2026-01-01T00:00:00+00:00',
          NULL, NULL, NULL);
        INSERT INTO invites VALUES ('oldinvite', 'oldspace0001', '', NULL, 3, 0,
          '2099-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00');
        """
    )
    old.commit()
    old.close()
    store = SqliteSpaceStore(path)
    again = SqliteSpaceStore(path)  # a second process opening the migrated file
    try:
        space = store.get_space("oldspace0001")
        assert space is not None
        assert space.host_generation == 0
        invite = store.get_invite("oldinvite")
        assert invite is not None
        assert (invite.seats, invite.uses_count) == (None, 3)
        # a link made before seats existed is shared (no name): it holds the default seats
        invites = InviteService(store, TokenSigner(SECRET), ManualClock(datetime.now(UTC)), 60)
        token = TokenSigner(SECRET).invite_token(
            "oldspace0001", "oldinvite", datetime.now(UTC) + timedelta(hours=1)
        )
        assert invites.authorize(token, "oldspace0001", consume=True).seats == DEFAULT_SEATS
        rotated = again.rotate_host_generation("oldspace0001")
        assert rotated is not None
        assert rotated.host_generation == 1
    finally:
        store.close()
        again.close()
