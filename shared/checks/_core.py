"""Plumbing for the exercise checks: run a learner's code safely and turn mistakes into hints.

Every ``check_*`` function follows the same contract:

- it takes the learner's object (a function or a class) as its only required argument;
- on success it prints one short line starting with ``PASSED`` and returns ``None``;
- otherwise it raises ``ExerciseFailed`` (an ``AssertionError``) whose message is a hint:
  ``not implemented yet`` for the untouched stub, a named mistake only when the learner's result
  matches what that mistake computes, and otherwise the property that failed (shape, rows not
  summing to 1, future not masked, ...);
- it leaves the learner's state alone: ``guard`` (applied to every check by ``shared.checks``)
  restores the global RNGs of torch, numpy and ``random``, the thread count and grad mode, and
  ``call`` names any in-place change of the inputs it passes.

The toolkit for writing a check (stretch checks use the same):

- ``call(exercise, fn, *args, what=..., hint=...)`` (alias ``attempt``; ``_calls.construct`` for
  classes) runs learner code: stub, crash causes (``_crash``), in-place changes of inputs;
- ``seeded(seed)`` seeds torch/numpy/random for a call and restores them afterwards;
- ``close`` compares tensors; ``matching_mistake(got, {mistake: result or lambda})`` names a
  mistake only when ``got`` equals what it computes; ``shape_of`` for messages;
- ``_dropout.check_dropout`` checks a module's dropout in both modes and at several rates.

``__tracebackhide__`` keeps these frames out of the traceback in Jupyter and pytest, so the
learner sees the hint rather than our internals.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from shared.checks._crash import explain_crash
from shared.checks._inputs import argument_names, changed_inputs, snapshot

NOT_IMPLEMENTED = "not implemented yet"
STUB_HINT = f"{NOT_IMPLEMENTED}: replace the `raise NotImplementedError` line with your code."


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


# ----------------------------------------------------------------------------- global state


@contextmanager
def preserved_state() -> Iterator[None]:
    """Restore every global RNG (torch CPU/CUDA, numpy, ``random``), the torch thread count and
    grad mode on exit, so a check never changes what the learner's next cell does."""
    import numpy as np
    import torch

    py_state, np_state = random.getstate(), np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    threads, grad = torch.get_num_threads(), torch.is_grad_enabled()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        torch.set_grad_enabled(grad)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed every global RNG a learner might use (torch, numpy, random); restore them after."""
    import numpy as np
    import torch

    with preserved_state():
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        yield


def guard(check: Callable[..., None]) -> Callable[..., None]:
    """Wrap a ``check_*`` so it runs inside ``preserved_state`` (idempotent)."""
    if getattr(check, "_guarded", False):
        return check

    import torch

    @functools.wraps(check)
    def guarded(*args: Any, **kwargs: Any) -> None:
        __tracebackhide__ = True
        with preserved_state():
            torch.set_grad_enabled(True)  # a check cell may run inside a no_grad block
            return check(*args, **kwargs)

    guarded._guarded = True  # type: ignore[attr-defined]
    return guarded


# ----------------------------------------------------------------------------- calling


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
        names = argument_names(fn, args, kwargs)
        values = {**dict(zip(names, args, strict=False)), **kwargs}
    before = {k: s for k, v in values.items() if (s := snapshot(v)) is not None}
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
            f"{label} changed its input in place: it changed the {changed[0]} passed in, so "
            "whatever uses it next (the next cell, the next step) silently sees other data. "
            "Leave inputs as they are and build new tensors (out-of-place operations, or work "
            "on a copy)."
        )
    fail(exercise, problem)


def attempt(
    exercise: str, fn: Callable[..., Any], *args: Any, what: str = "", **kwargs: Any
) -> Any:
    """``call`` under its older name: the stub, crashes and in-place changes of the inputs become
    hints instead of tracebacks. ``what`` describes the call, e.g. ``"encode('hola')"``."""
    __tracebackhide__ = True
    return call(exercise, fn, *args, what=what, **kwargs)


def require_callable(exercise: str, candidate: Any, kind: str = "a function or class") -> None:
    """Friendly message when the learner passes the wrong thing (e.g. an instance, or None)."""
    __tracebackhide__ = True
    if candidate is None or not callable(candidate):
        fail(
            exercise, f"expected {kind}, got {type(candidate).__name__}; pass the name you defined."
        )


# ----------------------------------------------------------------------------- comparing


def close(a: Any, b: Any, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """True when two tensors have the same shape and values (within float tolerance; NaN
    matches NaN, so a mistake that produces NaN can still be recognised)."""
    import torch

    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return False
    if a.shape != b.shape:
        return False
    return bool(
        torch.allclose(
            a.detach().float().cpu(), b.detach().float().cpu(), atol=atol, rtol=rtol, equal_nan=True
        )
    )


def matching_mistake(
    got: Any, mistakes: Mapping[str, Any], atol: float = 1e-5, rtol: float = 1e-4
) -> str | None:
    """The first mistake whose result matches ``got`` within tolerance, else None.

    Each value is a tensor, a list of tensors (any one may match) or a zero-argument callable
    returning either (computed only when reached; a crash there means "no match"). A mistake is
    named only on this evidence; when nothing matches, say which property failed instead.
    """
    for mistake, result in mistakes.items():
        for candidate in result if isinstance(result, (list, tuple)) else [result]:
            if callable(candidate):
                try:
                    candidate = candidate()
                except Exception:  # the mistake's formula does not apply to these shapes
                    continue
            if candidate is not None and close(got, candidate, atol=atol, rtol=rtol):
                return mistake
    return None


def shape_of(value: Any) -> Any:
    """``tuple(value.shape)`` for a tensor/array, else the type's name (for messages)."""
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else type(value).__name__
