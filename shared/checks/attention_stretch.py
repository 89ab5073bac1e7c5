"""Stretch checks for lesson 04: the fused multi-head reshape, ``split_heads`` and ``merge_heads``.

Each check feeds a tensor whose every entry says where it came from, compares the learner's
result with the right rearrangement, and names the classic mistake whose result matches.
"""

from __future__ import annotations

import torch

from shared.checks._calls import call
from shared.checks._core import Exercise, close, fail, passed, require_callable

EXERCISES = [
    Exercise(
        name="split_heads",
        check="check_split_heads",
        target="split_heads",
        description="split_heads(x, n_head): (B, T, C) -> (B, nh, T, hs)",
        optional=True,
    ),
    Exercise(
        name="merge_heads",
        check="check_merge_heads",
        target="merge_heads",
        description="merge_heads(y): (B, nh, T, hs) -> (B, T, C)",
        optional=True,
    ),
]

# Sizes that are all different, so every wrong order of the axes has its own shape.
B, T, NH, HS = 2, 5, 3, 4
C = NH * HS


def _numbered(*shape: int) -> torch.Tensor:
    """0, 1, 2, ... laid out in ``shape``: every entry is different and says where it sits."""
    n = 1
    for size in shape:
        n *= size
    return torch.arange(n, dtype=torch.float32).view(*shape)


def _split_mistakes(x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "viewed (B, T, C) straight as (B, nh, T, hs): that cuts the sequence into pieces instead "
        "of the channels. Split the last dim first, view(B, T, nh, hs), then swap T and nh with "
        ".transpose(1, 2)": x.reshape(B, NH, T, HS),
        "split the channels in the order (hs, nh): head h must get the contiguous slice of "
        "channels h*hs .. (h+1)*hs - 1, so view(B, T, nh, hs), not view(B, T, hs, nh)": (
            x.view(B, T, HS, NH).permute(0, 3, 1, 2)
        ),
        "transposed T and C before splitting: the heads must be cut out of the channels of each "
        "position, so view(B, T, nh, hs) first, then .transpose(1, 2)": (
            x.transpose(1, 2).reshape(B, NH, T, HS)
        ),
    }


def _split_shape_hint(shape: tuple) -> str:
    if shape == (B, T, NH, HS):
        return "the heads are split but not moved in front of T: add .transpose(1, 2)"
    if shape == (B, T, C):
        return "x comes back unchanged in shape: split C into (nh, hs) and move nh before T"
    if sorted(shape) == sorted((B, NH, T, HS)):
        return "the right sizes in the wrong order: transpose dims 1 and 2 (T and nh), not others"
    return "split C into (nh, hs) with .view, then .transpose(1, 2)"


def check_split_heads(split_heads) -> None:
    """Check ``split_heads(x, n_head)``: (B, T, C) -> (B, nh, T, hs), head h = channel slice h."""
    __tracebackhide__ = True
    name = "split_heads"
    require_callable(name, split_heads, "the split_heads function")
    x = _numbered(B, T, C)
    before = x.clone()
    out = call(name, split_heads, x, NH, what=f"split_heads(x of shape {(B, T, C)}, n_head={NH})")
    if not torch.equal(x, before):
        fail(name, "split_heads changed its input in place: return a new view, leave x alone.")
    if not isinstance(out, torch.Tensor):
        fail(name, f"split_heads should return a tensor, got {type(out).__name__}.")
    shape = tuple(out.shape)
    if shape != (B, NH, T, HS):
        fail(name, f"expected shape {(B, NH, T, HS)} (B, nh, T, hs), got {shape}: "
                   f"{_split_shape_hint(shape)}.")  # fmt: skip
    expected = x.view(B, T, NH, HS).transpose(1, 2)
    if close(out, expected):
        passed(name, f"{(B, T, C)} -> {shape}, head h holds channels h*hs..(h+1)*hs-1")
        return
    for mistake, wrong in _split_mistakes(x).items():
        if close(out, wrong):
            fail(name, f"looks like you {mistake}.")
    fail(name, "out[b, h, t] should be x[b, t, h*hs:(h+1)*hs] (head h's slice of position t).")


def _merge_mistakes(y: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "reshaped (B, nh, T, hs) straight to (B, T, C) without moving the heads back behind T: "
        "that glues different positions together. .transpose(1, 2) first": y.reshape(B, T, C),
        "merged in the order (hs, nh): a position's channels must be head 0's hs channels, then "
        "head 1's, ...: transpose(1, 2) (giving (B, T, nh, hs)), not permute(0, 2, 3, 1)": (
            y.permute(0, 2, 3, 1).reshape(B, T, C)
        ),
        "flattened the heads into time: the result must be (B, T, nh * hs), one row per "
        "position": y.reshape(B, NH * T, HS),
    }


def _merge_error_hint(exc: Exception) -> str | None:
    text = str(exc)
    if isinstance(exc, RuntimeError) and "view" in text and "stride" in text:
        return (
            f"merge_heads raised: {text.splitlines()[0][:120]}... After .transpose the tensor "
            "is no longer laid out in (B, T, C) order, so .view cannot reinterpret it: call "
            ".contiguous() before .view, or use .reshape."
        )
    return None


def check_merge_heads(merge_heads) -> None:
    """Check ``merge_heads(y)``: (B, nh, T, hs) -> (B, T, nh * hs), the inverse of split_heads."""
    __tracebackhide__ = True
    name = "merge_heads"
    require_callable(name, merge_heads, "the merge_heads function")
    y = _numbered(B, NH, T, HS)  # laid out like the output of the attention: contiguous
    before = y.clone()
    out = call(name, merge_heads, y, what=f"merge_heads(y of shape {(B, NH, T, HS)})",
               hint=_merge_error_hint)  # fmt: skip
    if not torch.equal(y, before):
        fail(name, "merge_heads changed its input in place: leave y alone.")
    if not isinstance(out, torch.Tensor):
        fail(name, f"merge_heads should return a tensor, got {type(out).__name__}.")
    shape = tuple(out.shape)
    expected = y.transpose(1, 2).reshape(B, T, C)
    if shape != (B, T, C):
        wrong = _merge_mistakes(y)
        hint = next((m for m, w in wrong.items() if tuple(w.shape) == shape and close(out, w)), "")
        if shape == (B, T, NH, HS):
            hint = "moved the heads back behind T but did not flatten (nh, hs) into C"
        fail(name, f"expected shape {(B, T, C)} (B, T, nh * hs), got {shape}"
                   + (f": looks like you {hint}." if hint else "."))  # fmt: skip
    if close(out, expected):
        passed(name, f"{(B, NH, T, HS)} -> {shape}, heads side by side in order")
        return
    for mistake, wrong in _merge_mistakes(y).items():
        if tuple(wrong.shape) == shape and close(out, wrong):
            fail(name, f"looks like you {mistake}.")
    fail(name, "out[b, t, h*hs:(h+1)*hs] should be y[b, h, t] (head h's output at position t).")
