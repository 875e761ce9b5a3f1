"""One suite for the moderation store (blocked devices, hands' devices, the moderation log), on
every backend: two handles are two workers sharing one SQLite file or one Redis."""

from __future__ import annotations

import pytest

from rostra.store import moderation, moderation_redis, moderation_sqlite
from rostra.store.moderation import (
    MAX_LOG_ENTRIES,
    LogEntry,
    MemoryModerationStore,
    ModerationStore,
)
from rostra.store.moderation_redis import RedisModerationStore
from rostra.store.moderation_sqlite import SqliteModerationStore
from tests.conftest import StoreBackend

SPACE = "abcdefgh1234"
OTHER = "zyxwvuts9876"
DEVICE = "d3vice-Id_0123456789abcdef"
T0 = 1_800_000_000.0


def open_store(backend: StoreBackend) -> ModerationStore:
    return backend.open(MemoryModerationStore, SqliteModerationStore, RedisModerationStore)


def entry(n: int) -> LogEntry:
    return LogEntry(
        at=f"2027-01-15T08:00:{n % 60:02d}.000Z",
        actor="Host",
        actor_role="host",
        action="mute",
        target=f"session s{n}",
        target_name=f"Speaker {n}",
    )


def test_a_block_holds_in_its_space_for_every_worker_until_it_expires(
    store_backend: StoreBackend,
) -> None:
    blocking = open_store(store_backend)
    other_worker = blocking if store_backend.name == "memory" else open_store(store_backend)
    blocking.block(SPACE, DEVICE, T0 + 60, T0)
    assert other_worker.is_blocked(SPACE, DEVICE, T0 + 1)
    assert other_worker.blocked_devices(SPACE, T0 + 1) == frozenset({DEVICE})
    assert not other_worker.is_blocked(OTHER, DEVICE, T0 + 1)
    assert not other_worker.is_blocked(SPACE, "another-device-0123456", T0 + 1)
    assert not other_worker.is_blocked(SPACE, DEVICE, T0 + 61)
    assert other_worker.blocked_devices(SPACE, T0 + 61) == frozenset()


def test_a_hands_device_is_remembered_until_its_ticket_expires(
    store_backend: StoreBackend,
) -> None:
    store = open_store(store_backend)
    store.remember_hand_device(SPACE, "listener-a", DEVICE, T0 + 3600)
    assert store.hand_device(SPACE, "listener-a", T0) == DEVICE
    assert store.hand_device(SPACE, "listener-b", T0) is None
    assert store.hand_device(OTHER, "listener-a", T0) is None
    if store_backend.name != "redis":  # Redis expires the key on its own clock
        assert store.hand_device(SPACE, "listener-a", T0 + 3601) is None


def test_the_log_keeps_the_last_entries_of_each_space_in_order(
    store_backend: StoreBackend,
) -> None:
    store = open_store(store_backend)
    for n in range(MAX_LOG_ENTRIES + 5):
        store.append(SPACE, entry(n))
    store.append(OTHER, entry(999))
    kept = store.entries(SPACE)
    assert len(kept) == MAX_LOG_ENTRIES
    assert kept[0] == entry(5)
    assert kept[-1] == entry(MAX_LOG_ENTRIES + 4)
    assert store.entries(OTHER) == [entry(999)]
    assert store.entries("nosuchspace1") == []


@pytest.mark.parametrize("text", ['{"at": "x"}', '{"at": "x", "unknown": 1, "action": "mute"}'])
def test_a_log_entry_decodes_with_missing_or_extra_fields(text: str) -> None:
    decoded = LogEntry.decode(text)
    assert decoded.at == "x"
    assert decoded.target == ""


def test_blocks_of_a_space_are_bounded_and_the_oldest_go_first(
    store_backend: StoreBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host blocking device after device (or a script doing it with a leaked host token)
    never grows a space's blocks past MAX_BLOCKS_PER_SPACE (lowered here to 20)."""
    bound = 20
    for module in (moderation, moderation_sqlite, moderation_redis):
        monkeypatch.setattr(module, "MAX_BLOCKS_PER_SPACE", bound)
    store = open_store(store_backend)
    devices = [f"device-{n:05d}-0123456789" for n in range(bound + 10)]
    for n, device in enumerate(devices):
        store.block(SPACE, device, T0 + 3600 + n, T0 + n)
    kept = store.blocked_devices(SPACE, T0 + len(devices))
    assert kept == frozenset(devices[10:])
    assert not store.is_blocked(SPACE, devices[0], T0 + len(devices))
