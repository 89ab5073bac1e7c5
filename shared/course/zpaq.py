"""zpaq -m5 next to lesson 10's compressors: context mixing (the PAQ family), when installed.

``shared/compress.py`` holds the compressors Python ships (and PPMd); it is reference code, which
may not start programs (the import-linter contract in pyproject.toml). zpaq is a program, so
its call lives here. The cost is measured the way ``shared.compress.compressor_bits_per_char``
measures the others: ``size(context + text) - size(context)``, in bits per character of text.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

ZPAQ_NAME = "zpaq -m5"
ZPAQ_INSTALL = (
    "zpaq is not installed: `sudo apt install zpaq` (Debian/Ubuntu), `brew install zpaq` (macOS), "
    "or the Windows build from https://mattmahoney.net/dc/zpaq.html"
)


def zpaq_path() -> str | None:
    """The zpaq program on the PATH, or None when it is not installed."""
    return shutil.which("zpaq")


def zpaq_size(data: bytes, method: int = 5) -> int:
    """Bytes of a zpaq archive (``-m{method}``) holding ``data`` as one file."""
    exe = zpaq_path()
    if exe is None:
        raise FileNotFoundError(ZPAQ_INSTALL)
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "text").write_bytes(data)
        # A relative file name: the archive then records "text", not the temporary folder.
        subprocess.run(
            [exe, "add", "archive.zpaq", "text", f"-m{method}"],
            cwd=folder, check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        return Path(folder, "archive.zpaq").stat().st_size


def zpaq_bits_per_char(context: str, text: str, method: int = 5) -> float | None:
    """Bits per character of ``text`` for zpaq once it has seen ``context``; None without zpaq."""
    if zpaq_path() is None:
        return None
    before = zpaq_size(context.encode("utf-8"), method)
    after = zpaq_size((context + text).encode("utf-8"), method)
    return 8 * (after - before) / len(text)
