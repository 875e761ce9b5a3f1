"""What moderation keeps per space: the blocked devices, the device each raised hand came from,
and the moderation log (who did what to whom, when).

Storage plane. The port (`ModerationStore`) has three adapters side by side: memory (tests, one
process), SQLite in the data folder (every worker of one machine) and Redis (every gate node).
Every structure is bounded per space, and everything expires: a block lives as long as a space
can (BLOCK_TTL_S), a hand's device as long as its ticket could.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass
from typing import Any, Protocol

# devices blocked per space at most (past it the oldest block goes first)
MAX_BLOCKS_PER_SPACE = 10_000
# raised hands whose device a space remembers at most
MAX_HAND_DEVICES_PER_SPACE = 10_000
# the moderation log keeps the last entries of each space
MAX_LOG_ENTRIES = 500
# spaces the memory store keeps (least recently touched forgotten first)
MAX_SPACES = 10_000
# a block holds for the rest of the space: no space is live longer than this
BLOCK_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One moderation act: `at` ISO 8601 UTC; `actor` the host's or co-host's name and role;
    `action` mute, unmute, lock, remove, block or invite; `target` whom (a session, a hand)."""

    at: str
    actor: str
    actor_role: str
    action: str
    target: str
    target_name: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def encode(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def decode(cls, text: str) -> LogEntry:
        data = json.loads(text)
        return cls(**{key: str(data.get(key, "")) for key in cls.__dataclass_fields__})


class ModerationStore(Protocol):
    def block(self, space_id: str, device_id: str, until_s: float, now_s: float) -> None:
        """Refuse the device in the space until `until_s`."""

    def is_blocked(self, space_id: str, device_id: str, now_s: float) -> bool: ...

    def blocked_devices(self, space_id: str, now_s: float) -> frozenset[str]:
        """Every device blocked in the space now (at most MAX_BLOCKS_PER_SPACE)."""

    def remember_hand_device(
        self, space_id: str, listener_id: str, device_id: str, until_s: float
    ) -> None:
        """The device a listener raised a hand from (a block by hand refuses it)."""

    def hand_device(self, space_id: str, listener_id: str, now_s: float) -> str | None: ...

    def append(self, space_id: str, entry: LogEntry) -> None:
        """Add to the space's log; past MAX_LOG_ENTRIES the oldest go."""

    def entries(self, space_id: str) -> list[LogEntry]:
        """The space's log, oldest first."""

    def close(self) -> None: ...


@dataclass(slots=True)
class _SpaceState:
    blocks: OrderedDict[str, float]
    hand_devices: OrderedDict[str, tuple[str, float]]
    log: deque[LogEntry]


class MemoryModerationStore:
    """The moderation of one process (tests, a single worker)."""

    def __init__(self, max_spaces: int = MAX_SPACES) -> None:
        self._max_spaces = max_spaces
        self._lock = threading.Lock()
        self._spaces: OrderedDict[str, _SpaceState] = OrderedDict()

    def _space(self, space_id: str) -> _SpaceState:
        state = self._spaces.pop(space_id, None)
        if state is None:
            state = _SpaceState(OrderedDict(), OrderedDict(), deque(maxlen=MAX_LOG_ENTRIES))
        self._spaces[space_id] = state
        while len(self._spaces) > self._max_spaces:
            self._spaces.popitem(last=False)
        return state

    def block(self, space_id: str, device_id: str, until_s: float, now_s: float) -> None:
        with self._lock:
            blocks = self._space(space_id).blocks
            blocks.pop(device_id, None)
            blocks[device_id] = until_s
            for device, until in list(blocks.items()):
                if until <= now_s:
                    del blocks[device]
            while len(blocks) > MAX_BLOCKS_PER_SPACE:
                blocks.popitem(last=False)

    def is_blocked(self, space_id: str, device_id: str, now_s: float) -> bool:
        with self._lock:
            state = self._spaces.get(space_id)
            until = state.blocks.get(device_id) if state is not None else None
        return until is not None and until > now_s

    def blocked_devices(self, space_id: str, now_s: float) -> frozenset[str]:
        with self._lock:
            state = self._spaces.get(space_id)
            blocks = dict(state.blocks) if state is not None else {}
        return frozenset(device for device, until in blocks.items() if until > now_s)

    def remember_hand_device(
        self, space_id: str, listener_id: str, device_id: str, until_s: float
    ) -> None:
        with self._lock:
            devices = self._space(space_id).hand_devices
            devices.pop(listener_id, None)
            devices[listener_id] = (device_id, until_s)
            while len(devices) > MAX_HAND_DEVICES_PER_SPACE:
                devices.popitem(last=False)

    def hand_device(self, space_id: str, listener_id: str, now_s: float) -> str | None:
        with self._lock:
            state = self._spaces.get(space_id)
            found = state.hand_devices.get(listener_id) if state is not None else None
        return found[0] if found is not None and found[1] > now_s else None

    def append(self, space_id: str, entry: LogEntry) -> None:
        with self._lock:
            self._space(space_id).log.append(entry)

    def entries(self, space_id: str) -> list[LogEntry]:
        with self._lock:
            state = self._spaces.get(space_id)
            return list(state.log) if state is not None else []

    def close(self) -> None:
        return None
