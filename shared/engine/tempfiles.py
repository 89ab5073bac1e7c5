"""Temporary files for atomic writes, and cleaning up the ones a hard kill left behind.

A file is written as ``.<name>.<pid>.<random><suffix>`` next to its target, then renamed over it.
A process killed hard (``kill -9``, power cut) never renames or deletes it, so the next start
removes temporary files whose writer is no longer running (or that are over an hour old).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

MAX_AGE_S = 3600  # a file this old is abandoned even if its pid was reused by another process


def temp_prefix(name: str) -> str:
    """``mkstemp(prefix=...)`` for a temporary copy of ``name`` made by this process."""
    return f".{name}.{os.getpid()}."


def _writer_alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) is not a harmless probe on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def remove_abandoned(folder: str | Path, name: str, suffix: str) -> list[Path]:
    """Delete ``.<name>.*<suffix>`` files in ``folder`` whose writer died; returns them."""
    removed = []
    for tmp in Path(folder).glob(f".{name}.*{suffix}"):
        pid_text = tmp.name[len(name) + 2 :].split(".", 1)[0]
        try:
            old = time.time() - tmp.stat().st_mtime > MAX_AGE_S
            mine = pid_text == str(os.getpid())
            dead = pid_text.isdigit() and not _writer_alive(int(pid_text))
            if old or (dead and not mine):
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            pass  # already gone, or not ours to delete
    return removed
