"""Plumbing for the exercise checks: run a learner's code safely and turn mistakes into hints.

Every ``check_*`` function follows the same contract:

- it takes the learner's object (a function or a class) as its only required argument;
- on success it prints one short line starting with ``PASSED`` and returns ``None``;
- otherwise it raises ``ExerciseFailed`` (an ``AssertionError``) whose message is a hint:
  ``not implemented yet`` for the untouched stub, a named classic mistake when it recognises
  one, and a plain description of the difference otherwise.

``__tracebackhide__`` keeps these frames out of the traceback in Jupyter and pytest, so the
learner sees the hint rather than our internals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NOT_IMPLEMENTED = "not implemented yet"


class ExerciseFailed(AssertionError):
    """A check failed; the message is the hint shown to the learner."""


@dataclass(frozen=True)
class Exercise:
    """One exercise of a lesson, as the grader sees it.

    ``check`` names the function in ``shared.checks``; ``target`` is the name the notebook
    defines for the learner's solution (the check is called as ``check(target)``).
    ``optional``: a stretch exercise, graded and reported like the others but not required.
    """

    name: str
    check: str
    target: str
    description: str = ""
    optional: bool = False


def fail(exercise: str, message: str) -> None:
    """Raise the hint for ``exercise``."""
    __tracebackhide__ = True
    raise ExerciseFailed(f"[{exercise}] {message}")


def passed(exercise: str, message: str = "") -> None:
    """Print the one-line success message."""
    print(f"PASSED {exercise}" + (f": {message}" if message else ""))


def attempt(
    exercise: str, fn: Callable[..., Any], *args: Any, what: str = "", **kwargs: Any
) -> Any:
    """Call the learner's ``fn``; turn the stub and crashes into hints instead of tracebacks.

    ``what`` describes the call in the message, e.g. ``"encode('hola')"``.
    """
    __tracebackhide__ = True
    label = what or getattr(fn, "__name__", "your code")
    try:
        return fn(*args, **kwargs)
    except ExerciseFailed:
        raise
    except NotImplementedError:
        message = f"{NOT_IMPLEMENTED}: replace the `raise NotImplementedError` line with your code."
    except Exception as exc:  # the learner's bug: report it, briefly
        message = f"calling {label} raised {type(exc).__name__}: {exc}"
    # Raised outside the except blocks: the learner sees one hint, not a chained traceback.
    fail(exercise, message)


def require_callable(exercise: str, candidate: Any, kind: str = "a function or class") -> None:
    """Friendly message when the learner passes the wrong thing (e.g. an instance, or None)."""
    __tracebackhide__ = True
    if candidate is None or not callable(candidate):
        fail(
            exercise, f"expected {kind}, got {type(candidate).__name__}; pass the name you defined."
        )


def close(a: Any, b: Any, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """True when two tensors have the same shape and values (within float tolerance)."""
    import torch

    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return False
    if a.shape != b.shape:
        return False
    return bool(
        torch.allclose(a.detach().float().cpu(), b.detach().float().cpu(), atol=atol, rtol=rtol)
    )
