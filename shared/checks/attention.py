"""Checks for lessons 03 (attention weights, one head) and 04 (multi-head attention).

Each check computes what the learner's code *should* return from the learner's own parameters,
on inputs where the plausible wrong answers differ (head sizes whose square roots are no common
notebook constant, two configurations so no hard-coded size survives), checks dropout in both
modes (``_dropout``), and names a mistake only when the result equals that mistake's result.
"""

from __future__ import annotations

import torch

from shared.checks._attention_mistakes import (
    MASK_AFTER,
    check_weight_properties,
    correct_weights,
    diagnose_weights,
)
from shared.checks._calls import call, construct
from shared.checks._core import (
    Exercise,
    close,
    fail,
    matching_mistake,
    passed,
    require_callable,
    seeded,
    shape_of,
)
from shared.checks._dropout import check_dropout, fail_if_random_in_eval
from shared.checks._multihead import check_multihead

__all__ = ["check_attention_weights", "check_head", "check_multihead", "MASK_AFTER"]

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
            description="Head.weights and Head.forward: one causal self-attention head",
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


def _randn(*shape, seed=0, scale=1.5):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def _leading_dims_hint(what: str):
    def hint(exc: Exception) -> str:
        return (
            f"{what} raised {type(exc).__name__}: {' '.join(str(exc).split())[:120]}. It works "
            "for (B, T, d_k) but q and k may have more leading dims, e.g. (B, nh, T, d_k): count "
            "the dims from the end (negative dims)."
        )

    return hint


def check_attention_weights(attention_weights) -> None:
    """Check ``attention_weights(q, k)``: causal softmax(q k^T / sqrt(d_k)) over the last dim."""
    __tracebackhide__ = True
    name = "attention_weights"
    require_callable(name, attention_weights, "the attention_weights function")
    # d_k = 6 and 10: no leftover constant (8 = sqrt(64), 4 = sqrt(16)...) stands in for sqrt(d_k).
    for shape, seed in (((2, 7, 6), 0), ((2, 3, 5, 10), 1)):
        q, k = _randn(*shape, seed=seed), _randn(*shape, seed=seed + 10)
        what = f"attention_weights(q, k) with q, k of shape {shape}"
        # The spec says (..., T, d_k): any number of leading dims, e.g. (B, nh, T, d_k).
        crash_hint = _leading_dims_hint(what) if len(shape) == 4 else None
        wei = call(name, attention_weights, q, k, what=what, hint=crash_hint)
        T = shape[-2]
        expected_shape = shape[:-1] + (T,)
        if not isinstance(wei, torch.Tensor) or tuple(wei.shape) != expected_shape:
            fail(name, f"{what} should give weights of shape {expected_shape}, got "
                 f"{shape_of(wei)}.")  # fmt: skip
        if close(wei, correct_weights(q, k)):
            continue
        diagnose_weights(name, wei, q, k)
        check_weight_properties(name, wei, "the weights")
        fail(name, f"{what}: the weights are causal probabilities but not "
             "softmax(q k^T / sqrt(d_k)).")  # fmt: skip
    passed(name, "rows sum to 1, nothing above the diagonal, scaled by 1/sqrt(d_k)")


# ----------------------------------------------------------------------------- Head

# (B, n_embd, head_size, block_size, T), n_embd != head_size, T < block_size. Head size 10 comes
# first: with head size 8, a leftover constant 64 under a sqrt would pass for "divided by d_k".
_HEAD_CONFIGS = ((3, 20, 10, 9, 7), (2, 16, 8, 8, 6))


def _head_parts(head, x):
    return head.query(x), head.key(x), head.value(x)  # (B, T, hs) each


def _head_reference(head, x, drop):
    q, k, v = _head_parts(head, x)
    return drop(correct_weights(q, k)) @ v


_HEAD_WRONG_PLACES = {
    "dropout is applied to the head's output instead of the attention weights": (
        lambda h, x, drop: drop(_head_reference(h, x, lambda t: t))
    ),
    "dropout is applied to the values instead of the attention weights": (
        lambda h, x, drop: correct_weights(*_head_parts(h, x)[:2]) @ drop(h.value(x))
    ),
    "dropout is applied to the input x instead of the attention weights": (
        lambda h, x, drop: _head_reference(h, drop(x), lambda t: t)
    ),
}


def _check_head_weights(name, head, x, n_embd):
    __tracebackhide__ = True
    q, k, v = _head_parts(head, x)
    B, T, _ = x.shape
    wei = call(name, head.weights, x, what="head.weights(x)")
    if not isinstance(wei, torch.Tensor) or tuple(wei.shape) != (B, T, T):
        fail(name, f"head.weights(x) for x of shape {tuple(x.shape)} should have shape "
             f"{(B, T, T)}, got {shape_of(wei)}.")  # fmt: skip
    if close(wei, correct_weights(q, k)):
        return wei
    extra = {"scaled by 1/sqrt(n_embd) instead of 1/sqrt(head_size): d_k is the size of q "
             "and k": float(n_embd) ** 0.5}  # fmt: skip
    diagnose_weights(name, wei, q, k, extra_scales=extra)
    mistake = matching_mistake(wei, {
        "the weights use the values instead of the keys: scores compare queries with keys": (
            lambda: correct_weights(q, v)),
        "the weights use the values instead of the queries: scores compare queries with keys": (
            lambda: correct_weights(v, k)),
        "the queries serve as keys too: scores compare queries with keys": (
            lambda: correct_weights(q, q)),
        "the scores come from x itself, not from the query and key projections": (
            lambda: correct_weights(x, x)),
    })  # fmt: skip
    if mistake:
        fail(name, f"head.weights(x): {mistake}.")
    check_weight_properties(name, wei, "head.weights(x)")
    fail(name, "head.weights(x) are causal probabilities but not softmax(q k^T / sqrt(head_size)) "
         "of this head's queries and keys.")  # fmt: skip


def _check_head_forward(name, head, x, wei):
    __tracebackhide__ = True
    q, k, v = _head_parts(head, x)
    out = call(name, head, x, what="head(x)")
    expected = wei @ v
    if close(out, expected):
        return
    mistake = matching_mistake(out, {
        "the weights multiply x, not the values v = self.value(x)": lambda: wei @ x,
        "the weights multiply the keys, not the values": lambda: wei @ k,
        "the weights multiply the queries, not the values": lambda: wei @ q,
        "the weights are transposed before multiplying the values: row t must mix the values "
        "query t attends to": lambda: wei.transpose(-2, -1) @ v,
        "the output is the values themselves: no attention is applied": lambda: v,
        "the output is the weights, not the weighted values": lambda: wei,
    })  # fmt: skip
    if mistake:
        fail(name, f"head(x): {mistake}.")
    fail_if_random_in_eval(name, head, x, "head(x)")
    diagnose_weights(name, out, q, k, then=lambda w: w @ v)
    if not isinstance(out, torch.Tensor) or out.shape != expected.shape:
        fail(name, f"head(x) should have shape {tuple(expected.shape)} (B, T, head_size), got "
             f"{shape_of(out)}.")  # fmt: skip
    fail(name, "head(x) differs from the weights of head.weights(x) times the values.")


def check_head(Head) -> None:
    """Check ``Head.weights`` and ``Head.forward`` (the ``__init__`` is the one given)."""
    __tracebackhide__ = True
    name = "head"
    require_callable(name, Head, "the Head class")
    for seed, (B, n_embd, head_size, block_size, T) in enumerate(_HEAD_CONFIGS):
        with seeded(seed):
            head = construct(name, Head, n_embd, head_size, block_size, dropout=0.0).eval()
        for part in ("query", "key", "value", "dropout"):
            if not isinstance(getattr(head, part, None), torch.nn.Module):
                fail(name, f"keep the given __init__: self.{part} is missing.")
        x = _randn(B, T, n_embd, seed=seed + 20)
        with torch.no_grad():
            wei = _check_head_weights(name, head, x, n_embd)
            _check_head_forward(name, head, x, wei)

    _, n_embd, head_size, block_size, T = _HEAD_CONFIGS[0]
    x = _randn(3, T, n_embd, seed=30)

    def build(p):
        with seeded(5):
            return construct(name, Head, n_embd, head_size, block_size, dropout=p)

    with torch.no_grad():
        head = build(0.6).train()  # the weights are the ones before dropout, in every mode
        with seeded(3):
            wei = call(name, head.weights, x, what="head.weights(x) in training mode")
        if not close(wei, correct_weights(*_head_parts(head, x)[:2])):
            fail(name, "in training mode head.weights(x) differ from eval mode: weights() returns "
                 "the attention weights before dropout (dropout belongs in forward).")  # fmt: skip
    check_dropout(name, build, x, _head_reference, _HEAD_WRONG_PLACES,
                  where="to the attention weights", what="head(x)")  # fmt: skip
    B, T, head_size = _HEAD_CONFIGS[-1][0], _HEAD_CONFIGS[-1][4], _HEAD_CONFIGS[-1][2]
    passed(name, f"out {(B, T, head_size)}, causal, scaled by 1/sqrt(head_size)")
