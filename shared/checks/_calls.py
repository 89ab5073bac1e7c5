"""Call a learner's code and turn a crash into a one-line hint, without a chained traceback.

Like ``_core.attempt``, but the hint is raised *after* the ``except`` block, so a learner sees one
short message instead of their own traceback followed by "During handling of the above exception,
another exception occurred". ``hint(exc)`` may return a more specific message for a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.checks._core import NOT_IMPLEMENTED, ExerciseFailed, fail


def call(
    exercise: str,
    fn: Callable[..., Any],
    *args: Any,
    what: str = "",
    hint: Callable[[Exception], str | None] | None = None,
    **kwargs: Any,
) -> Any:
    """Return ``fn(*args, **kwargs)``; on the stub or a crash fail with a hint."""
    __tracebackhide__ = True
    label = what or getattr(fn, "__name__", "your code")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        problem = f"{NOT_IMPLEMENTED}: replace the `raise NotImplementedError` line with your code."
    except ExerciseFailed:
        raise
    except Exception as exc:  # the learner's bug: report it briefly, with a hint when we have one
        problem = (hint(exc) if hint else None) or (
            f"calling {label} raised {type(exc).__name__}: {exc}"
        )
    fail(exercise, problem)


def construct(exercise: str, cls: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``cls(*args, **kwargs)`` with the call spelled out in the hint if it crashes."""
    __tracebackhide__ = True
    signature = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    name = getattr(cls, "__name__", "the class")
    return call(exercise, cls, *args, what=f"{name}({signature})", **kwargs)
