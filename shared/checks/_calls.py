"""Call a learner's code and turn a crash into a one-line hint, without a chained traceback.

``call`` (defined in ``_core``, re-exported here) is how every check runs learner code: the stub
becomes ``not implemented yet``, common crashes get their likely cause, and an in-place change of
an input is named as the mistake. ``construct`` spells the constructor call out in its hints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.checks._core import call

__all__ = ["call", "construct"]


def construct(exercise: str, cls: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``cls(*args, **kwargs)`` with the call spelled out in the hint if it crashes."""
    __tracebackhide__ = True
    signature = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    name = getattr(cls, "__name__", "the class")
    return call(exercise, cls, *args, what=f"{name}({signature})", **kwargs)
