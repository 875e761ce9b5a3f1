"""Files written whole: a reader sees the old file or the new one, never half of one. Shared by
the recording, the clips and the origin's status files.

Foundation.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_durable(path: Path, data: bytes, *, is_durable: bool = True) -> None:
    """Write to a temporary name, fsync, rename over: readers see the old or the new file whole."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            if is_durable:
                handle.flush()
                os.fsync(handle.fileno())
        temporary.replace(path)
    except OSError:
        # a full disk must not also leave half a file behind to fill it further; the first
        # error is the one to report, so a failing clean-up stays quiet
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise
    if is_durable:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
