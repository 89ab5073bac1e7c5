"""Snapshots of the inputs a check passes to learner code, to see whether the code changed them.

Tensors, numpy arrays, lists and dicts are copied before the call and compared after it; other
values (modules, numbers, strings) are not watched.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any


def snapshot(value: Any) -> Any:
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


def same(before: Any, after: Any) -> bool:
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
            return len(before) == len(after) and all(map(same, before, after))
        if isinstance(before, dict) and isinstance(after, dict):
            return before.keys() == after.keys() and all(same(before[k], after[k]) for k in before)
        return bool(before == after)
    except Exception:  # values that cannot be compared are not judged
        return True


def argument_names(fn: Callable[..., Any], args: tuple, kwargs: dict) -> list[str]:
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
    return [name for name, snap in before.items() if not same(snap, values[name])]
