"""What attention weights look like under each classic mistake, and the properties they break.

Used by the lesson 03 checks: a mistake is named only when the learner's result equals what that
mistake (or a pair of them) computes on the same inputs; otherwise the failed property is named.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch.nn import functional as F

from shared.checks._core import close, fail

MASK_AFTER = (
    "the mask is applied after the softmax: the future must be filled with -inf *before* the "
    "softmax, so that each row's remaining weights still sum to 1"
)
# Each variant: (mistake, or "" for the correct choice) -> how it changes the computation.
_SCALE = {
    "": "sqrt",
    "missing the 1/sqrt(d_k) scale: unscaled scores grow with d_k and push the softmax "
    "towards one-hot rows": "none",
    "divided by d_k instead of sqrt(d_k): the scores end up too small and the rows too flat": "d",
}
_MASK = {
    "": "before",
    "missing causal mask: position t can see the tokens after it (the future it must predict)": (
        "none"
    ),
    MASK_AFTER: "after",
    "the future is masked with 0 instead of -inf: exp(0) = 1, so the future still gets "
    "weight": "zero",
    "the mask hides the past and keeps the future: a query may look at keys at or before its "
    "own position (the lower triangle)": "upper",
}
_DIM = {
    "": -1,
    "softmax over the wrong dimension: each query's weights over the keys (the last dim) must "
    "sum to 1": -2,
    "softmax over the batch dimension: each query's weights over the keys (the last dim) must "
    "sum to 1, independently of the other sequences": 0,
}
_ORDER = {
    "": "qk",
    "k @ q^T instead of q @ k^T: row t must hold query t's scores against every key (or the "
    "query and key roles are swapped)": "kq",
}


def weights_variant(q, k, scale="sqrt", mask="before", dim=-1, order="qk", divisor=None):
    """softmax(q k^T / sqrt(d_k)) with a causal mask, changed as the arguments say."""
    T, d_k = q.size(-2), q.size(-1)
    scores = q @ k.transpose(-2, -1) if order == "qk" else k @ q.transpose(-2, -1)
    if divisor is None:
        divisor = {"sqrt": math.sqrt(d_k), "none": 1.0, "d": float(d_k)}[scale]
    scores = scores / divisor
    lower = torch.tril(torch.ones(T, T, dtype=torch.bool))
    if mask == "before":
        scores = scores.masked_fill(~lower, float("-inf"))
    elif mask == "zero":
        scores = scores.masked_fill(~lower, 0.0)
    elif mask == "upper":
        scores = scores.masked_fill(lower & ~torch.eye(T, dtype=torch.bool), float("-inf"))
    wei = F.softmax(scores, dim=dim)
    if mask == "after":
        wei = wei.masked_fill(~lower, 0.0)
    return wei


def correct_weights(q, k):
    return weights_variant(q, k)


def _variants(q, k, extra_scales):
    """Yield (mistakes, weights) for every single mistake and every pair of them."""
    scales = {**_SCALE, **extra_scales}
    for (s, sv), (m, mv), (d, dv), (o, ov) in itertools.product(
        scales.items(), _MASK.items(), _DIM.items(), _ORDER.items()
    ):
        mistakes = [x for x in (m, s, d, o) if x]
        if 1 <= len(mistakes) <= 2:
            divisor = sv if isinstance(sv, float) else None
            yield (
                mistakes,
                lambda sv=sv, mv=mv, dv=dv, ov=ov, divisor=divisor: weights_variant(
                    q, k, "sqrt" if divisor else sv, mv, dv, ov, divisor
                ),
            )


def describe(mistakes: list[str]) -> str:
    if len(mistakes) == 1:
        return f"looks like {mistakes[0]}."
    return "looks like two mistakes: (1) " + mistakes[0] + "; (2) " + mistakes[1] + "."


def diagnose_weights(exercise, got, q, k, extra_scales=None, then=None) -> None:
    """Fail naming the mistake (or pair) whose result equals ``got``; ``then`` maps weights to
    what the learner returned (e.g. ``wei @ v``). Returns quietly when none matches."""
    __tracebackhide__ = True
    for mistakes, variant in _variants(q, k, extra_scales or {}):
        wei = variant()
        if close(got, then(wei) if then else wei):
            fail(exercise, describe(mistakes))


def check_weight_properties(exercise, wei, what) -> None:
    """Fail on the first broken property of attention weights (..., T, T)."""
    __tracebackhide__ = True
    T = wei.size(-1)
    future = ~torch.tril(torch.ones(T, T, dtype=torch.bool))
    if torch.isnan(wei).any():
        fail(exercise, f"{what} contain NaN: a softmax ran over values that were all -inf "
             "(everything it normalises was masked).")  # fmt: skip
    if torch.isinf(wei).any():
        fail(exercise, f"{what} contain -inf: looks like {MASK_AFTER}.")
    if (wei < 0).any():
        fail(exercise, f"{what} have negative entries: weights are probabilities (a softmax).")
    if not close(wei.sum(-1), torch.ones(wei.shape[:-1]), atol=1e-4):
        fail(exercise, f"the rows of {what} do not each sum to 1: every query's weights over "
             "the keys (the last dim) form a probability distribution.")  # fmt: skip
    if wei[..., future].abs().max() > 1e-6:
        fail(exercise, f"{what} are not 0 above the diagonal: the future must get no weight.")
