"""Who may mute whom, and unmute themselves; which device and hand ids are accepted; blocks
fail open (logged once a second) when their store is away, and a worker's copy is bounded."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rostra.clock import ManualClock
from rostra.errors import (
    DeviceBlocked,
    DeviceInvalid,
    HandInvalid,
    InvalidFields,
    MuteLocked,
    RoleNotAllowed,
)
from rostra.stage.invites import check_hand
from rostra.stage.moderation import (
    BLOCKS_CACHE_S,
    BLOCKS_CACHE_SPACES,
    Action,
    ModerationService,
    check_device,
    decide_mute,
)
from rostra.stage.roles import Credential, Role
from rostra.store.moderation import MemoryModerationStore
from rostra.store.moderation_redis import RedisModerationStore
from tests.redis_server import running_redis

SPACE = "abcdefgh1234"
HOST = Credential(SPACE, Role.HOST, name="Host")
COHOST = Credential(SPACE, Role.COHOST, invite_id="cohost-a", name="Cora")
SPEAKER = Credential(SPACE, Role.SPEAKER, invite_id="inv-s", name="Sam")


def mute(
    actor: Credential,
    target: Role,
    invite_id: str | None,
    *,
    muted: bool = True,
    locked: bool | None = None,
    is_locked_now: bool = False,
) -> Action | None:
    return decide_mute(
        actor,
        session_id="sess",
        target_role=target,
        target_invite_id=invite_id,
        is_locked_now=is_locked_now,
        muted=muted,
        locked=locked,
    )


def test_host_and_cohost_mute_speakers_and_the_host_mutes_cohosts() -> None:
    assert mute(HOST, Role.SPEAKER, "inv-x") == Action.MUTE
    assert mute(HOST, Role.COHOST, "cohost-b", locked=True) == Action.LOCK
    assert mute(COHOST, Role.SPEAKER, "inv-x", muted=False) == Action.UNMUTE


@pytest.mark.parametrize(
    ("actor", "target", "invite_id"),
    [
        (COHOST, Role.HOST, None),
        (COHOST, Role.COHOST, "cohost-b"),
        (SPEAKER, Role.SPEAKER, "inv-other"),
        (SPEAKER, Role.HOST, None),
    ],
)
def test_nobody_mutes_above_their_role(actor: Credential, target: Role, invite_id: str) -> None:
    with pytest.raises(RoleNotAllowed):
        mute(actor, target, invite_id)


def test_a_speaker_unmutes_themselves_unless_the_mute_is_locked() -> None:
    assert mute(SPEAKER, Role.SPEAKER, "inv-s", muted=False) is None
    assert mute(SPEAKER, Role.SPEAKER, "inv-s") is None
    with pytest.raises(MuteLocked, match="locked"):
        mute(SPEAKER, Role.SPEAKER, "inv-s", muted=False, is_locked_now=True)
    with pytest.raises(RoleNotAllowed):  # nor lock anyone, themselves included
        mute(SPEAKER, Role.SPEAKER, "inv-s", locked=True)
    with pytest.raises(MuteLocked):  # a co-host locked by the host stays muted too
        mute(COHOST, Role.COHOST, "cohost-a", muted=False, is_locked_now=True)


def test_an_unmute_cannot_be_locked() -> None:
    with pytest.raises(InvalidFields, match="only a mute can be locked"):
        mute(HOST, Role.SPEAKER, "inv-x", muted=False, locked=True)


@pytest.mark.parametrize("device", ["short", "x" * 65, "has space in it 123", "ünïcode-0123456789"])
def test_malformed_device_ids_are_refused(device: str) -> None:
    with pytest.raises(DeviceInvalid):
        check_device(device)


def test_device_ids_are_accepted_or_absent() -> None:
    assert check_device("AbC-_0123456789xyz") == "AbC-_0123456789xyz"
    assert check_device(None) is None
    assert check_device("") is None


@pytest.mark.parametrize("hand", ["abc\x00def01234567", "0123456789ABCDEF", "0123", "g" * 16])
def test_malformed_hand_ids_are_refused_before_any_lookup(hand: str) -> None:
    with pytest.raises(HandInvalid) as raised:
        check_hand(hand)
    assert hand not in raised.value.detail  # never echoed: it may hold anything
    assert check_hand("0123456789abcdef") == "0123456789abcdef"


def test_blocks_fail_open_on_a_store_outage_keeping_what_was_read_and_logging_once_a_second(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    blocked, stranger = "blocked-device-0123456789", "stranger-device-0123456789"
    with running_redis(tmp_path / "redis") as redis:
        service = ModerationService(RedisModerationStore(redis.url), clock)
        service.block(SPACE, blocked)
        service.require_not_blocked(SPACE, stranger, "listener")  # reads the store: cached
        redis.stop(is_abrupt=True)
        clock.advance(BLOCKS_CACHE_S + 0.1)
        with caplog.at_level(logging.WARNING, logger="rostra.stage.moderation"):
            for _ in range(3):
                for _ in range(50):  # a burst of joins while the store is away
                    with pytest.raises(DeviceBlocked):
                        service.require_not_blocked(SPACE, blocked, "listener")
                    service.require_not_blocked(SPACE, stranger, "listener")
                clock.advance(BLOCKS_CACHE_S + 0.1)
        warnings = [r for r in caplog.records if r.getMessage() == "blocks not read"]
        assert len(warnings) == 3, len(warnings)  # once per second of outage, not per join


def test_a_workers_copy_of_blocks_is_bounded_in_spaces() -> None:
    service = ModerationService(MemoryModerationStore(), ManualClock())
    for n in range(BLOCKS_CACHE_SPACES + 50):
        service.require_not_blocked(f"space{n:07d}", "any-device-0123456789", "listener")
    assert len(service._blocked) == BLOCKS_CACHE_SPACES


def test_a_shared_links_holder_neither_mutes_nor_unmutes_another_holder() -> None:
    holder = Credential(SPACE, Role.SPEAKER, invite_id="inv-shared", seats=4)
    for muted in (True, False):
        with pytest.raises(RoleNotAllowed, match="personal invite"):
            mute(holder, Role.SPEAKER, "inv-shared", muted=muted)
