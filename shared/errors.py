"""The one exception type the CLI turns into a clean ``error: ...`` line (no traceback)."""


class CourseError(Exception):
    """A problem the user can fix; the message says what to do."""
