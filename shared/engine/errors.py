"""The one exception type the CLI turns into a clean ``error: ...`` line (no traceback), and
``one_line``, which fits any message (an exception's text, a title) into such a line."""


class CourseError(Exception):
    """A problem the user can fix; the message says what to do."""


def one_line(text: object, limit: int = 200) -> str:
    """``text`` on one line (whitespace folded), cut to ``limit`` characters with "..."."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def python_command() -> str:
    """The Python the user ran, as they would type it: ``.venv/bin/python`` when it lives under
    the current folder (the README's setup), ``python`` when that name finds it, else its path."""
    import os
    import shutil
    import sys

    exe = os.path.abspath(sys.executable or "python")  # not resolved: a venv's python is a link
    try:
        inside = os.path.relpath(exe, os.getcwd())
    except ValueError:  # another drive on Windows
        inside = os.pardir
    if not inside.startswith(os.pardir):
        return inside if os.sep in inside else os.path.join(os.curdir, inside)  # ./python
    for name in ("python", "python3"):
        found = shutil.which(name)
        if found and os.path.abspath(found) == exe:
            return name
    return exe


def shared_command(arguments: str = "") -> str:
    """``python -m shared ARGUMENTS`` spelled with ``python_command()``: a suggested command that
    works when copied into the same shell."""
    return f"{python_command()} -m shared {arguments}".rstrip()
