"""The one exception type the CLI turns into a clean ``error: ...`` line (no traceback), and
``one_line``, which fits any message (an exception's text, a title) into such a line."""


class CourseError(Exception):
    """A problem the user can fix; the message says what to do."""


def one_line(text: object, limit: int = 200) -> str:
    """``text`` on one line (whitespace folded), cut to ``limit`` characters with "..."."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
