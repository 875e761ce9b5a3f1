"""Memory dumps of a listener worker, on demand: SIGUSR2 writes where its memory went since the
previous SIGUSR2, into the run folder, as `memory-{pid}-{n}.txt`.

Web plane, diagnostics. Nothing is traced until asked: the first signal starts tracemalloc and
writes a baseline (resident memory, the C allocator's heap, SQLite's own allocations, live
objects by type); each later one writes the same figures with their change since the previous
dump, the top allocation sites of Python memory and the tracebacks of the largest growths.
Memory outside Python's allocator (SQLite's page caches, glibc arenas) shows only in the figures.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import signal
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

DUMP_SIGNAL = signal.SIGUSR2
TRACE_FRAMES = 6
TOP_SITES = 30
TOP_TRACEBACKS = 8
TOP_TYPES = 20
KIB = 1024
MIB = 1024 * 1024


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (glibc 2.33 and later): sizes in bytes."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _libc_heap() -> dict[str, int]:
    """The C heap (every arena): bytes obtained from the system, by mmap, in use and free
    inside the arenas; and how many arenas there are (threads that allocate get their own)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return {}
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return {
        "heap_arena_bytes": int(info.arena),
        "heap_mmap_bytes": int(info.hblkhd),
        "heap_in_use_bytes": int(info.uordblks),
        "heap_free_bytes": int(info.fordblks),
        "malloc_arenas": _malloc_arena_count(libc),
    }


def _malloc_arena_count(libc: ctypes.CDLL) -> int:
    """Counted in glibc's malloc_info() XML, written to a memory stream."""
    buffer, size = ctypes.c_char_p(), ctypes.c_size_t()
    libc.open_memstream.restype = ctypes.c_void_p
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.free.argtypes = [ctypes.c_void_p]
    stream = libc.open_memstream(ctypes.byref(buffer), ctypes.byref(size))
    if not stream:
        return 0
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    text = ctypes.string_at(buffer, size.value)
    libc.free(ctypes.cast(buffer, ctypes.c_void_p))
    return text.count(b"<heap nr=")


def _sqlite_memory() -> dict[str, int]:
    """Bytes SQLite holds now (page caches, schemas, statements) across every connection."""
    try:
        sqlite = ctypes.CDLL("libsqlite3.so.0")
        used = sqlite.sqlite3_memory_used
    except (OSError, AttributeError):
        return {}
    used.restype = ctypes.c_int64
    return {"sqlite_bytes": int(used())}


def _resident_bytes() -> dict[str, int]:
    try:
        status = Path(f"/proc/{os.getpid()}/status").read_text()
    except OSError:
        return {}
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return {"rss_bytes": int(line.split()[1]) * KIB}
    return {}


def process_figures() -> dict[str, int]:
    """Resident memory and where it sits, as far as each layer tells."""
    figures = {**_resident_bytes(), **_libc_heap(), **_sqlite_memory()}
    figures["threads"] = threading.active_count()
    if tracemalloc.is_tracing():
        figures["traced_python_bytes"] = tracemalloc.get_traced_memory()[0]
    return figures


def live_object_types() -> Counter[str]:
    return Counter(type(item).__name__ for item in gc.get_objects())


@dataclass(slots=True)
class MemoryDumps:
    """The dumps of one process; `dump()` is what the signal does."""

    folder: Path
    count: int = 0
    _snapshot: tracemalloc.Snapshot | None = None
    _figures: dict[str, int] = field(default_factory=dict)
    _types: Counter[str] = field(default_factory=Counter)
    _started_s: float = field(default_factory=time.monotonic)

    def dump(self) -> Path:
        """Write the next dump and return its path (the first starts tracing: a baseline)."""
        if not tracemalloc.is_tracing():
            tracemalloc.start(TRACE_FRAMES)
        snapshot = tracemalloc.take_snapshot().filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__),)
        )
        figures, types = process_figures(), live_object_types()
        age_s = time.monotonic() - self._started_s
        lines = [f"pid {os.getpid()} dump {self.count}, {age_s:.0f} s after install"]
        lines += _figure_lines(figures, self._figures)
        lines += _type_lines(types, self._types)
        if self._snapshot is not None:
            lines += _site_lines(snapshot, self._snapshot)
        else:
            lines.append("tracing started: the next dump shows what grew since this one")
        self._snapshot, self._figures, self._types = snapshot, figures, types
        path = self.folder / f"memory-{os.getpid()}-{self.count}.txt"
        self.count += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        return path


def _figure_lines(now: dict[str, int], before: dict[str, int]) -> list[str]:
    lines = ["", "figure                   now          change"]
    for name, value in now.items():
        change = value - before[name] if name in before else 0
        if name.endswith("_bytes"):
            lines.append(f"{name:24} {value / MIB:9.2f} MiB {change / MIB:+9.2f} MiB")
        else:
            lines.append(f"{name:24} {value:9d}     {change:+9d}")
    return lines


def _type_lines(now: Counter[str], before: Counter[str]) -> list[str]:
    changes = Counter({name: now[name] - before.get(name, 0) for name in now})
    lines = ["", f"live objects by type (top {TOP_TYPES} by growth): count, change"]
    for name, change in changes.most_common(TOP_TYPES):
        lines.append(f"  {name:32} {now[name]:9d} {change:+9d}")
    return lines


def _site_lines(now: tracemalloc.Snapshot, before: tracemalloc.Snapshot) -> list[str]:
    lines = ["", f"Python allocation sites (top {TOP_SITES} by growth since the previous dump)"]
    lines += [f"  {stat}" for stat in now.compare_to(before, "lineno")[:TOP_SITES]]
    lines += ["", f"tracebacks of the {TOP_TRACEBACKS} largest growths"]
    for stat in now.compare_to(before, "traceback")[:TOP_TRACEBACKS]:
        lines.append(f"  {stat.size_diff / KIB:+.1f} KiB in {stat.count_diff:+d} blocks:")
        lines += [f"    {line}" for line in stat.traceback.format(most_recent_first=True)]
    return lines


def install_memory_dumps(folder: Path) -> MemoryDumps:
    """SIGUSR2 writes a dump into `folder` (the run folder). Installed before the server loop."""
    dumps = MemoryDumps(folder)

    def on_signal(_signum: int, _frame: object) -> None:
        try:
            path = dumps.dump()
        except OSError as error:
            log.warning("memory dump not written", extra={"error": str(error)[:200]})
            return
        log.info("memory dump written", extra={"path": str(path)})

    signal.signal(DUMP_SIGNAL, on_signal)
    return dumps
