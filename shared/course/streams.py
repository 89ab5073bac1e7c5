"""The CLI's output streams when the environment is unkind: a closed pipe, an ASCII terminal,
and the last-resort log for a failure nobody foresaw (``shared.course.cli.main`` uses these)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

SPANISH_SAMPLE = "ñáéíóúü¿¡«»—"


def _can_encode(stream) -> bool:
    try:
        SPANISH_SAMPLE.encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def replace_unencodable() -> None:
    """Characters stdout/stderr cannot encode print as '?' (and we say how to fix it, once)."""
    warned = False
    for stream in (sys.stdout, sys.stderr):
        if _can_encode(stream) or not hasattr(stream, "reconfigure"):
            continue
        stream.reconfigure(errors="replace")
        if not warned:
            warned = True
            print(
                f"note: this terminal's encoding ({stream.encoding}) cannot show Spanish "
                "characters, so they print as '?'; set PYTHONIOENCODING=utf-8 to see them",
                file=sys.stderr,
            )


def silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the final flush at exit stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (tests, notebooks)
        pass


def out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or torch's own words for a failed allocation (CPU or GPU)."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError)
        and ("out of memory" in text or "can't allocate memory" in text)
    )


def write_traceback_log(command: str, exc: BaseException, argv=None) -> Path | str:
    """Save ``exc``'s full traceback in a log file; returns its path (or why it failed)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = "".join(c if c.isalnum() else "-" for c in command).strip("-")
    path = Path(tempfile.gettempdir()) / f"gpt-course-{name}-{stamp}-{os.getpid()}.log"
    argv = sys.argv[1:] if argv is None else argv
    try:
        with open(path, "w", encoding="utf-8") as log:
            log.write(f"python -m shared {' '.join(map(str, argv))}\n\n")
            log.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    except OSError as log_error:
        return f"(nowhere: the log file could not be written: {log_error.strerror})"
    return path
