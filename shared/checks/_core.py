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
  ``_calls.call`` names any in-place change of the inputs it passes.

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


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# (fragment of the exception text, cause) -- the first match wins. Causes say what went wrong
# and why, naming at most the concept or API involved.
_CRASH_CAUSES: list[tuple[str, str]] = [
    (
        'is missing the required "forward" function',
        "PyTorch found no `forward` method on your class: calling a module runs its `forward`, so "
        "check the method's name and that it is indented inside the class",
    ),
    (
        "is not a module subclass",
        "nn.Sequential (like nn.ModuleList's layers) takes modules one by one as arguments; a Python "
        "list is not a module",
    ),
    (
        "tensors used as indices must be",
        "a tensor of floats was used as an index or a mask; masks must be boolean (the result of a "
        "comparison) and indices integers",
    ),
    (
        "can be converted to an index",
        "a float, or a tensor of several values, was used as an index or slice bound; indices must "
        "be integers",
    ),
    (
        "only supports boolean masks",
        "masked_fill needs a boolean mask (the result of a comparison), not 0/1 numbers",
    ),
    (
        "mat1 and mat2 shapes cannot be multiplied",
        "a Linear layer (or a matrix product) got an input whose last dimension is not the size it "
        "expects; check which size each layer is built for and what reaches it",
    ),
    (
        "must match the size of tensor",
        "two tensors of incompatible shapes were combined; a buffer sized for block_size must be cut "
        "to the current length T, and the sizes must come from the arguments, not notebook globals",
    ),
    (
        "view size is not compatible",
        ".view needs the tensor's memory to be contiguous, which a transpose or slice breaks; "
        ".reshape copies when it has to",
    ),
    (
        "is invalid for input of size",
        "a view/reshape asked for a shape with a different number of elements than the tensor has",
    ),
    (
        "dimension out of range",
        "a `dim` was used that the tensor does not have: it has fewer dimensions than assumed",
    ),
    (
        "expected all tensors to be on the same device",
        "tensors on different devices were combined; everything must live on the same device",
    ),
    (
        "expected scalar type",
        "an operation got the wrong dtype (e.g. float ids or long values); check the dtypes",
    ),
    (
        "probability tensor contains either",
        "torch.multinomial got values that are not probabilities (negative, inf or NaN): it needs "
        "non-negative weights, such as the output of a softmax",
    ),
    (
        "selected index k out of range",
        "torch.topk was asked for more values than the dimension holds",
    ),
    (
        "boolean value of tensor with more than one value is ambiguous",
        "a tensor with several values was used where Python needs one True/False (`if`, `and`, "
        "`or`, `max(...)`); use tensor operations instead",
    ),
    (
        "only one element tensors can be converted",
        "a tensor with several values was turned into one Python number (.item(), float(), int())",
    ),
    (
        "does not require grad",
        "backward() was called on a value that is not connected to the parameters (computed under "
        "no_grad, or detached / turned into a float first)",
    ),
    (
        "backward through the graph a second time",
        "backward() ran twice over the same graph (e.g. on a loss kept from an earlier step)",
    ),
    (
        "'nonetype' object",
        "something was None where a value was expected: a function without `return` returns None",
    ),
    (
        "positional argument",
        "the function or class was called with the arguments the exercise specifies, and its "
        "signature does not accept them: keep the given signature",
    ),
    (
        "unexpected keyword argument",
        "the function or class was called with the arguments the exercise specifies, and its "
        "signature does not accept them: keep the given signature",
    ),
]


def explain_crash(exc: BaseException, what: str = "your code") -> str:
    """One line for a crash in the learner's code: the exception, then its likely cause."""
    head = f"{what} raised {type(exc).__name__}: {_short(exc)}"
    if isinstance(exc, UnboundLocalError):
        return (f"{head}. A variable was read before the function assigned it: a name assigned "
                "anywhere in a function is local in all of it, even where the notebook has a "
                "global of that name.")  # fmt: skip
    if isinstance(exc, NameError):
        return (f"{head}. A name used in your code is not defined where it runs: a function or "
                "class must use its arguments (and names it defines), not variables from "
                "elsewhere in the notebook.")  # fmt: skip
    text = str(exc).lower()
    for fragment, cause in _CRASH_CAUSES:
        if fragment in text:
            return f"{head}. Likely cause: {cause}."
    return f"{head}."


def attempt(
    exercise: str, fn: Callable[..., Any], *args: Any, what: str = "", **kwargs: Any
) -> Any:
    """Call the learner's ``fn``: the stub, crashes and in-place changes of the inputs become
    hints instead of tracebacks. ``what`` describes the call, e.g. ``"encode('hola')"``."""
    __tracebackhide__ = True
    from shared.checks._calls import call

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
