"""Checks for lessons 03 (attention weights, one head) and 04 (multi-head attention).

Each check rebuilds what the learner's code *should* compute from the learner's own parameters,
and, when the result differs, what every classic mistake (and pairs of them) would compute, then
names the mistake that matches.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch.nn import functional as F

from shared.checks._calls import call, construct
from shared.checks._core import Exercise, close, fail, passed, require_callable

LESSON_EXERCISES = {
    "03_self_attention": [
        Exercise(
            name="attention_weights",
            check="check_attention_weights",
            target="attention_weights",
            description="softmax(q k^T / sqrt(d_k)) with a causal mask",
        ),
        Exercise(
            name="head",
            check="check_head",
            target="Head",
            description="Head.forward: one causal self-attention head",
        ),
    ],
    "04_multihead": [
        Exercise(
            name="multihead",
            check="check_multihead",
            target="MultiHeadAttention",
            description="MultiHeadAttention.forward: heads in parallel, concatenated, projected",
        ),
    ],
}
EXERCISES = [ex for exercises in LESSON_EXERCISES.values() for ex in exercises]

_MASK_AFTER = (
    "mask applied after softmax: fill the future with -inf BEFORE the softmax, so each row "
    "still sums to 1"
)
# Each variant: (mistake, or "" for the correct choice) -> how it changes the computation.
_SCALE_MISTAKES = {
    "": "sqrt",
    "missing the 1/sqrt(d_k) scale: divide the scores q @ k^T by math.sqrt(d_k) "
    "(d_k = q.size(-1)) so softmax does not saturate": "none",
    "divided by d_k instead of sqrt(d_k): use q @ k^T / math.sqrt(d_k)": "d",
}
_MASK_MISTAKES = {
    "": "before",
    "missing causal mask: position t can see the future; masked_fill the positions above the "
    "diagonal (torch.tril(...) == 0) with float('-inf') before the softmax": "none",
    _MASK_AFTER: "after",
    "masked with 0 instead of -inf: exp(0) = 1, so the future still gets weight; use "
    "float('-inf') (exp(-inf) = 0)": "zero",
    "the mask hides the past and keeps the future: keep the lower triangle (torch.tril), "
    "where key position <= query position": "upper",
}
_DIM_MISTAKES = {
    "": -1,
    "softmax over the wrong dimension: normalise over the keys, the last dim (dim=-1), so "
    "every row sums to 1": -2,
}
_ORDER_MISTAKES = {
    "": "qk",
    "computed k @ q^T instead of q @ k^T: row t must hold query t's scores against every key "
    "(or the query and key roles are swapped)": "kq",
}


def _weights_variant(q, k, scale, mask_kind, dim, order, n_embd=None) -> torch.Tensor:
    T, d_k = q.size(-2), q.size(-1)
    scores = q @ k.transpose(-2, -1) if order == "qk" else k @ q.transpose(-2, -1)
    divisor = {"sqrt": math.sqrt(d_k), "none": 1.0, "d": float(d_k)}.get(scale)
    scores = scores / (divisor if divisor is not None else math.sqrt(n_embd))
    lower = torch.tril(torch.ones(T, T, dtype=torch.bool))
    if mask_kind == "before":
        scores = scores.masked_fill(~lower, float("-inf"))
    elif mask_kind == "zero":
        scores = scores.masked_fill(~lower, 0.0)
    elif mask_kind == "upper":
        scores = scores.masked_fill(lower & ~torch.eye(T, dtype=torch.bool), float("-inf"))
    wei = F.softmax(scores, dim=dim)
    if mask_kind == "after":
        wei = wei.masked_fill(~lower, 0.0)
    return wei


def _variants(q, k, n_embd=None):
    """Yield (mistakes, weights) for the correct formula, every single mistake and every pair."""
    scales = dict(_SCALE_MISTAKES)
    if n_embd is not None and n_embd != q.size(-1):
        scales[
            "scaled by 1/sqrt(n_embd) instead of 1/sqrt(head_size): d_k is the size of q and k"
        ] = "n_embd"
    for (s, sv), (m, mv), (d, dv), (o, ov) in itertools.product(
        scales.items(), _MASK_MISTAKES.items(), _DIM_MISTAKES.items(), _ORDER_MISTAKES.items()
    ):
        mistakes = [x for x in (m, s, d, o) if x]
        if len(mistakes) <= 2:
            yield mistakes, _weights_variant(q, k, sv, mv, dv, ov, n_embd)


def _describe(mistakes: list[str]) -> str:
    if len(mistakes) == 1:
        return f"looks like {mistakes[0]}."
    return "looks like two mistakes: (1) " + mistakes[0] + "; (2) " + mistakes[1] + "."


def _diagnose_weights(exercise, wei, q, k, n_embd=None, value=None, what="the weights"):
    """Fail with the name of the mistake whose result matches ``wei`` (or ``wei @ value``)."""
    __tracebackhide__ = True
    if torch.isinf(wei).any():
        fail(exercise, f"found -inf in {what}: looks like {_MASK_AFTER}.")
    if torch.isnan(wei).any():
        fail(
            exercise,
            f"found NaN in {what}: a whole row was masked, or the mask has the wrong shape.",
        )
    for mistakes, variant in _variants(q, k, n_embd):
        if mistakes and close(wei, variant if value is None else variant @ value):
            fail(exercise, _describe(mistakes))


def _check_weight_properties(exercise, wei, what) -> None:
    __tracebackhide__ = True
    T = wei.size(-1)
    if not close(wei.sum(-1), torch.ones(wei.shape[:-1])):
        fail(exercise, f"the rows of {what} should each sum to 1 (softmax over the last dim).")
    if wei[..., ~torch.tril(torch.ones(T, T, dtype=torch.bool))].abs().max() > 0:
        fail(exercise, f"{what} are not 0 above the diagonal: the future must get no weight.")


def check_attention_weights(attention_weights) -> None:
    """Check ``attention_weights(q, k)``: causal softmax(q k^T / sqrt(d_k)) over the last dim."""
    __tracebackhide__ = True
    name = "attention_weights"
    require_callable(name, attention_weights, "the attention_weights function")
    g = torch.Generator().manual_seed(0)
    B, T, d_k = 2, 6, 8
    q, k = torch.randn(B, T, d_k, generator=g), torch.randn(B, T, d_k, generator=g)
    wei = call(name, attention_weights, q, k, what="attention_weights(q, k)")
    if not isinstance(wei, torch.Tensor) or wei.shape != (B, T, T):
        shape = tuple(wei.shape) if isinstance(wei, torch.Tensor) else type(wei).__name__
        fail(name, f"q and k of shape {(B, T, d_k)} should give weights {(B, T, T)}, got {shape}.")
    expected = _weights_variant(q, k, "sqrt", "before", -1, "qk")
    if close(wei, expected):
        passed(name, "rows sum to 1, nothing above the diagonal, scaled by 1/sqrt(d_k)")
        return
    _diagnose_weights(name, wei, q, k)
    _check_weight_properties(name, wei, "the weights")
    fail(name, "the weights differ from softmax(q @ k^T / sqrt(d_k)) with a causal mask.")


def _check_uses_dropout(exercise, module, x, where) -> None:
    __tracebackhide__ = True
    module.train()
    torch.manual_seed(1)
    out_train = call(exercise, module, x, what="the module in training mode")
    module.eval()
    if close(out_train, call(exercise, module, x, what="the module in eval mode")):
        fail(
            exercise, f"self.dropout is never applied: apply it {where} (it only acts in training)."
        )


def check_head(Head) -> None:
    """Check ``Head.forward`` (the ``__init__`` with .key/.query/.value is the one given)."""
    __tracebackhide__ = True
    name = "head"
    require_callable(name, Head, "the Head class")
    n_embd, head_size, block_size, T = 16, 8, 8, 6
    torch.manual_seed(0)
    head = construct(name, Head, n_embd, head_size, block_size, dropout=0.0).eval()
    x = torch.randn(2, T, n_embd, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        q, k, v = head.query(x), head.key(x), head.value(x)  # (B, T, hs) each
        out = call(name, head, x, what="head(x)")
        expected_wei = _weights_variant(q, k, "sqrt", "before", -1, "qk")
        expected = expected_wei @ v
        if not isinstance(out, torch.Tensor):
            fail(name, f"head(x) should return a tensor, got {type(out).__name__}.")
        if out.shape == x.shape:
            fail(
                name,
                "head(x) has shape (B, T, n_embd): multiply the weights by the values "
                "v = self.value(x), not by x.",
            )
        if out.shape != expected.shape:
            fail(
                name, f"head(x) should have shape {tuple(expected.shape)}, got {tuple(out.shape)}."
            )
        if not close(out, expected):
            for label, wrong_v in (("the keys", k), ("the queries", q)):
                if close(out, expected_wei @ wrong_v):
                    fail(name, f"multiplied the weights by {label}: use v = self.value(x).")
            _diagnose_weights(name, out, q, k, n_embd=n_embd, value=v, what="the output")
            fail(name, "head(x) differs from softmax(q k^T / sqrt(head_size), causal) @ v.")
        wei = call(name, head.weights, x, what="head.weights(x)")
        if not close(wei, expected_wei):
            fail(name, "head.weights(x) should return the attention weights (B, T, T).")
    dropout_head = construct(name, Head, n_embd, head_size, block_size, dropout=0.5)
    with torch.no_grad():
        _check_uses_dropout(name, dropout_head, x, "to the weights, before multiplying by v")
    passed(name, f"out {tuple(out.shape)}, causal, scaled by 1/sqrt(head_size)")


def _head_outputs(mha, x) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each head's output and weights, computed from its parameters (not its forward)."""
    outs, weights = [], []
    for head in mha.heads:
        wei = _weights_variant(head.query(x), head.key(x), "sqrt", "before", -1, "qk")
        outs.append(wei @ head.value(x))  # (B, T, hs)
        weights.append(wei)  # (B, T, T)
    return outs, weights


def check_multihead(MultiHeadAttention) -> None:
    """Check ``MultiHeadAttention.forward`` (the ``__init__`` with .heads/.proj is the one given)."""
    __tracebackhide__ = True
    name = "multihead"
    require_callable(name, MultiHeadAttention, "the MultiHeadAttention class")
    n_embd, n_head, block_size, B, T = 16, 4, 8, 2, 6
    torch.manual_seed(0)
    mha = construct(name, MultiHeadAttention, n_embd, n_head, block_size, dropout=0.0).eval()
    x = torch.randn(B, T, n_embd, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outs, weights = _head_outputs(mha, x)
        out = call(name, mha, x, what="mha(x)", hint=_proj_shape_hint)
        cat = torch.cat(outs, dim=-1)  # (B, T, C)
        expected = mha.proj(cat)
        if not isinstance(out, torch.Tensor):
            fail(name, f"mha(x) should return a tensor, got {type(out).__name__}.")
        if out.shape != expected.shape:
            _fail_shape(name, out, expected, outs)
        if not close(out, expected):
            _diagnose_combination(name, mha, out, outs, cat)
        wei = call(name, mha.weights, x, what="mha.weights(x)")
        expected_wei = torch.stack(weights, dim=1)  # (B, nh, T, T)
        if not close(wei, expected_wei):
            hint = ""
            if isinstance(wei, torch.Tensor) and close(wei, torch.stack(weights, dim=0)):
                hint = " Stack the heads' weights on dim=1, not dim=0."
            fail(
                name,
                f"the weights should be every head's weights, shape {(B, n_head, T, T)}.{hint}",
            )
    mha_dropout = construct(name, MultiHeadAttention, n_embd, n_head, block_size, dropout=0.5)
    for head in mha_dropout.heads:  # only the module's own dropout stays on
        head.dropout.p = 0.0
    with torch.no_grad():
        _check_uses_dropout(name, mha_dropout, x, "after the output projection")
    passed(name, f"{n_head} heads concatenated to {tuple(out.shape)}, then projected")


def _proj_shape_hint(exc: Exception) -> str | None:
    text = str(exc)
    if isinstance(exc, RuntimeError) and "shape" in text and "multipl" in text:
        return (
            f"mha(x) raised: {text.splitlines()[0]}. self.proj expects (B, T, n_embd): "
            "concatenate the heads on the last dim first (not summed, stacked or joined along "
            "time), torch.cat(head_outputs, dim=-1)."
        )
    return None


def _fail_shape(name, out, expected, outs) -> None:
    __tracebackhide__ = True
    B, T, C = expected.shape
    hs = outs[0].size(-1)
    shape = tuple(out.shape)
    if shape == (B, T, hs):
        hint = "the heads were summed, averaged or only one was used: concatenate them"
    elif shape in {(B, len(outs) * T, hs), (len(outs) * B, T, hs), (B, T, hs, len(outs))}:
        hint = "the heads were stacked or concatenated on the wrong dim"
    else:
        hint = "check how the heads are combined"
    fail(
        name,
        f"mha(x) has shape {shape}, expected {(B, T, C)}: {hint}; use "
        "torch.cat([h(x) for h in self.heads], dim=-1), then self.proj.",
    )


def _diagnose_combination(name, mha, out, outs, cat) -> None:
    __tracebackhide__ = True
    B, T, C = cat.shape
    wrong_dims = (
        "the heads were not concatenated on the last dim ({}): use torch.cat(head_outputs, dim=-1)"
    )
    combos = {
        wrong_dims.format("torch.stack(..., dim=-1) then a reshape interleaves channels"): (
            torch.stack(outs, dim=-1).reshape(B, T, C)
        ),
        wrong_dims.format("concatenated along time, then reshaped"): (
            torch.cat(outs, dim=1).reshape(B, T, C)
        ),
        wrong_dims.format("concatenated along the batch, then reshaped"): (
            torch.cat(outs, dim=0).reshape(B, T, C)
        ),
    }
    if close(out, cat):
        fail(name, "missing output projection: pass the concatenated heads through self.proj.")
    for mistake, combined in combos.items():
        if close(out, mha.proj(combined)) or close(out, combined):
            fail(name, f"looks like {mistake}.")
    if close(out, mha.proj(mha.proj(cat))):
        fail(name, "self.proj is applied twice.")
    fail(name, "mha(x) differs from self.proj(torch.cat([h(x) for h in self.heads], dim=-1)).")
