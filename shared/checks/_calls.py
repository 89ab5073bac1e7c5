"""Call a learner's code and turn a crash into a one-line hint, without a chained traceback.

``call`` is how every check runs learner code. It

- turns the untouched stub into ``not implemented yet``;
- translates common crashes into their likely cause (``_core.explain_crash``), or uses the
  check's own ``hint(exc)`` when that returns a message;
- compares the tensors, arrays, lists and dicts it passes before and after the call, and names an
  in-place change of an input as the mistake (``inputs_may_change=True`` switches this off);
- raises the hint *after* the ``except`` block, so the learner sees one short message instead of
  their own traceback followed by "During handling of the above exception...".
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

from shared.checks._core import STUB_HINT, ExerciseFailed, explain_crash, fail


def _snapshot(value: Any) -> Any:
    """A copy of an input we can compare later, or None for things we do not watch."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (list, dict, bytearray)):
        try:
            return copy.deepcopy(value)
        except Exception:
            return None
    return None


def _same(before: Any, after: Any) -> bool:
    import numpy as np
    import torch

    if isinstance(before, torch.Tensor):
        if not isinstance(after, torch.Tensor) or before.shape != after.shape:
            return False
        if before.dtype != after.dtype:
            return False
        a, b = before, after.detach()
        both_nan = torch.isnan(a) & torch.isnan(b) if a.is_floating_point() else False
        return bool(((a == b) | both_nan).all())
    if isinstance(before, np.ndarray):
        return bool(np.array_equal(before, after, equal_nan=before.dtype.kind == "f"))
    try:
        if isinstance(before, (list, tuple)) and isinstance(after, (list, tuple)):
            return len(before) == len(after) and all(map(_same, before, after))
        if isinstance(before, dict) and isinstance(after, dict):
            return before.keys() == after.keys() and all(_same(before[k], after[k]) for k in before)
        return bool(before == after)
    except Exception:  # values that cannot be compared are not judged
        return True


def _argument_names(fn: Callable[..., Any], args: tuple, kwargs: dict) -> list[str]:
    try:
        target = fn.forward if hasattr(fn, "forward") and not inspect.isclass(fn) else fn
        signature = inspect.signature(target)
        if any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values()):
            raise TypeError("*args: no names to give")
        bound = signature.bind_partial(*args, **kwargs)
        by_position = list(bound.arguments)[: len(args)]
        return by_position + [f"argument {i + 1}" for i in range(len(by_position), len(args))]
    except (TypeError, ValueError):
        return [f"argument {i + 1}" for i in range(len(args))]


def changed_inputs(before: dict[str, Any], values: dict[str, Any]) -> list[str]:
    """Names of the watched inputs whose value differs from its snapshot."""
    return [name for name, snap in before.items() if not _same(snap, values[name])]


def call(
    exercise: str,
    fn: Callable[..., Any],
    *args: Any,
    what: str = "",
    hint: Callable[[Exception], str | None] | None = None,
    inputs_may_change: bool = False,
    **kwargs: Any,
) -> Any:
    """Return ``fn(*args, **kwargs)``; on the stub, a crash or a changed input fail with a hint."""
    __tracebackhide__ = True
    label = what or getattr(fn, "__name__", "your code")
    values: dict[str, Any] = {}
    if not inputs_may_change:
        names = _argument_names(fn, args, kwargs)
        values = {**dict(zip(names, args, strict=False)), **kwargs}
    before = {k: s for k, v in values.items() if (s := _snapshot(v)) is not None}
    try:
        result = fn(*args, **kwargs)
    except NotImplementedError as exc:
        text = str(exc)
        problem = STUB_HINT if "missing the required" not in text else explain_crash(exc, label)
    except ExerciseFailed:
        raise
    except Exception as exc:  # the learner's bug: report it briefly, with its likely cause
        problem = (hint(exc) if hint else None) or explain_crash(exc, label)
    else:
        changed = changed_inputs(before, values)
        if not changed:
            return result
        problem = (
            f"{label} changed its input `{changed[0]}` in place: the caller's value is different "
            "after the call, so whatever uses it next (the next cell, the next step) silently "
            "sees other data. Leave inputs as they are and build new tensors (out-of-place "
            "operations, or work on a copy)."
        )
    fail(exercise, problem)


def construct(exercise: str, cls: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``cls(*args, **kwargs)`` with the call spelled out in the hint if it crashes."""
    __tracebackhide__ = True
    signature = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    name = getattr(cls, "__name__", "the class")
    return call(exercise, cls, *args, what=f"{name}({signature})", **kwargs)
