"""Who may mute whom, and unmute themselves; which device ids are accepted."""

from __future__ import annotations

import pytest

from rostra.errors import DeviceInvalid, InvalidFields, MuteLocked, RoleNotAllowed
from rostra.stage.moderation import Action, check_device, decide_mute
from rostra.stage.roles import Credential, Role

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
