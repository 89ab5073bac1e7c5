"""Check output paths *before* the slow work starts, so a bad ``--out`` fails in a second.

    out = writable_file(args.out, "--out", suffix=".gif")   # the folder is made, a write is tried
    folder = writable_dir(args.outputs_dir, "--outputs-dir")

Both raise ``CourseError`` with one line that names the flag and says what to do: the path is a
folder (or a file where a folder is needed), lies below a file, cannot be created, is read-only,
or its disk has less free space than the caller says the result needs (``need_bytes``).
Used by train/run/viz; ``grade --out`` can use them the same way.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from shared.engine.errors import CourseError


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOTDIR:
        return "part of the path is a file, not a folder"
    return exc.strerror or type(exc).__name__


def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e3:,.0f} kB"


def writable_dir(folder: str | Path, flag: str, need_bytes: int = 0) -> Path:
    """Create ``folder`` if needed and prove we can write into it (a temporary file)."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise CourseError(
            f"cannot create the folder {folder} for {flag} (a file has that name); "
            f"choose another {flag}"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CourseError(
            f"cannot create the folder {folder} for {flag} ({_reason(exc)}); choose another {flag}"
        ) from None
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".write-test-") as probe:
            probe.write(b"x")
            probe.flush()
    except OSError as exc:
        raise CourseError(
            f"cannot write into {folder} for {flag} ({_reason(exc)}); choose another {flag} "
            "or fix the folder's permissions"
        ) from None
    if need_bytes:
        free = shutil.disk_usage(folder).free
        if free < need_bytes:
            raise CourseError(
                f"not enough disk space for {flag} in {folder}: {_megabytes(free)} free, about "
                f"{_megabytes(need_bytes)} needed; free some space or choose another {flag}"
            )
    return folder


def writable_file(
    path: str | Path, flag: str, suffix: str | None = None, need_bytes: int = 0
) -> Path:
    """``path`` as a ``Path`` once its folder exists and is writable; ``suffix`` e.g. ``.gif``."""
    path = Path(path).expanduser()
    example = f"a file name like out{suffix or '.txt'}"
    if path.is_dir() or str(path).endswith(("/", os.sep)):
        raise CourseError(f"{flag} {path} is a folder; give {example}")
    if suffix and path.suffix.lower() != suffix:
        raise CourseError(f"{flag} {path} should end in {suffix}; give {example}")
    writable_dir(path.parent, flag, need_bytes)
    if path.exists() and not os.access(path, os.W_OK):
        raise CourseError(f"{flag} {path} is read-only; choose another {flag}")
    return path
