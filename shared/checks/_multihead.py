"""The lesson 04 check: ``MultiHeadAttention.forward`` (its ``__init__`` and ``weights`` are given).

The heads' outputs come from the heads themselves (their dropout off), so the check judges only
how ``forward`` combines them: concatenated on the channel dim, projected, then dropout.
"""

from __future__ import annotations

import re

import torch
from torch.nn import functional as F

from shared.checks._calls import call, construct
from shared.checks._core import (
    ExerciseFailed,
    close,
    fail,
    matching_mistake,
    passed,
    require_callable,
    seeded,
    shape_of,
)
from shared.checks._dropout import check_dropout, fail_if_random_in_eval

_NAME = "multihead"
# (B, n_embd, n_head, block_size, T); head size 5 first (4 heads, then 3: no head count the
# notebook uses can be hard-coded), then the lesson's own sizes.
_CONFIGS = ((3, 20, 4, 9, 7), (2, 15, 3, 8, 5), (2, 16, 4, 8, 6))
_NOTEBOOK_N_HEAD = 4


def _head_outputs(mha, x) -> list[torch.Tensor]:
    return [head(x) for head in mha.heads]  # n_head x (B, T, hs)


def _reference(mha, x, drop):
    return drop(mha.proj(torch.cat(_head_outputs(mha, x), dim=-1)))  # (B, T, C)


_WRONG_PLACES = {
    "dropout is applied before the output projection; it belongs after it, on what the layer "
    "returns": lambda m, x, drop: m.proj(drop(torch.cat(_head_outputs(m, x), dim=-1))),
    "dropout is applied to each head's output before the projection; it belongs after the "
    "projection": lambda m, x, drop: m.proj(torch.cat([drop(o) for o in _head_outputs(m, x)], -1)),
}


def _proj_shape_hint(B: int, T: int, n_head: int, hs: int):
    def hint(exc: Exception) -> str | None:
        match = re.search(r"\((\d+)x(\d+) and (\d+)x(\d+)\)", str(exc))
        if not match:
            return None
        rows, cols = int(match[1]), int(match[2])
        if cols == hs and rows == B * T:
            why = (
                f"it had the size of one head ({hs}): the heads were summed, averaged or "
                "only one was used, instead of joined side by side"
            )
        elif cols == hs and rows == B * T * n_head:
            why = "the heads were joined along time or the batch, not side by side on channels"
        elif cols == hs:
            why = "each head's output went through self.proj on its own"
        else:
            why = f"its last dim was {cols}"
        return (f"mha(x) raised: {str(exc).splitlines()[0]}. self.proj expects inputs whose last "
                f"dim is n_embd = {n_head * hs}; {why}.")  # fmt: skip

    return hint


def _diagnose(mha, x, out, outs) -> None:
    __tracebackhide__ = True
    B, T, C = x.shape
    cat = torch.cat(outs, dim=-1)
    wrong_dims = "the heads are not joined side by side on the channel dim ({})"
    mistake = matching_mistake(out, {
        "missing output projection: the concatenated heads are returned as they are": cat,
        wrong_dims.format("stacked on a new last dim and reshaped, which interleaves their "
                          "channels"): lambda: mha.proj(torch.stack(outs, -1).reshape(B, T, C)),
        wrong_dims.format("joined along time, then reshaped"): (
            lambda: mha.proj(torch.cat(outs, dim=1).reshape(B, T, C))),
        wrong_dims.format("joined along the batch, then reshaped"): (
            lambda: mha.proj(torch.cat(outs, dim=0).reshape(B, T, C))),
        "the output projection is applied twice": lambda: mha.proj(mha.proj(cat)),
        "the heads see the projected input: the projection belongs after the heads": (
            lambda: torch.cat(_head_outputs(mha, mha.proj(x)), dim=-1)),
        "a ReLU/GELU follows the projection: the layer is linear after the heads": [
            lambda: F.relu(mha.proj(cat)), lambda: F.gelu(mha.proj(cat))],
    })  # fmt: skip
    if mistake:
        fail(_NAME, f"looks like {mistake}.")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (B, T, C):
        shape = shape_of(out)
        hs = outs[0].size(-1)
        if shape == (B, T, hs):
            why = "the size of one head: the heads were summed, averaged or only one was used"
        elif isinstance(shape, tuple) and len(shape) != 3:
            why = "the heads were stacked on a new dim instead of joined side by side"
        else:
            why = "the heads were joined along the wrong dim"
        fail(_NAME, f"mha(x) for x of shape {(B, T, C)} has shape {shape}, expected {(B, T, C)}: "
             f"{why}.")  # fmt: skip
    fail(_NAME, "mha(x) differs from the output projection of every head's output joined side "
         "by side on the channel dim (in order), in eval mode.")  # fmt: skip


def _check_eval(MultiHeadAttention, seed, config) -> None:
    """Eval mode: the output equals the projection of the joined heads, or a named mistake."""
    __tracebackhide__ = True
    B, n_embd, n_head, block_size, T = config
    with seeded(seed):
        mha = construct(_NAME, MultiHeadAttention, n_embd, n_head, block_size, dropout=0.0)
    mha.eval()
    x = torch.randn(B, T, n_embd, generator=torch.Generator().manual_seed(seed)) * 1.5
    with torch.no_grad():
        outs = _head_outputs(mha, x)
        hint = _proj_shape_hint(B, T, n_head, n_embd // n_head)
        out = call(_NAME, mha, x, what="mha(x)", hint=hint)
        if not close(out, _reference(mha, x, lambda t: t)):
            fail_if_random_in_eval(_NAME, mha, x, "mha(x)")
            _diagnose(mha, x, out, outs)


def _passes(MultiHeadAttention, config) -> bool:
    """Whether the learner's layer is right at ``config``'s sizes with the notebook's head count."""
    B, _, n_head, block_size, T = config
    head_size = config[1] // n_head
    try:
        _check_eval(MultiHeadAttention, 99, (B, head_size * _NOTEBOOK_N_HEAD, _NOTEBOOK_N_HEAD,
                                             block_size, T))  # fmt: skip
    except ExerciseFailed:
        return False
    return True


def check_multihead(MultiHeadAttention) -> None:
    """Check ``MultiHeadAttention.forward`` (the ``__init__`` with .heads/.proj is the one given)."""
    __tracebackhide__ = True
    require_callable(_NAME, MultiHeadAttention, "the MultiHeadAttention class")
    for seed, config in enumerate(_CONFIGS):
        try:
            _check_eval(MultiHeadAttention, seed, config)
        except ExerciseFailed as exc:
            n_head = config[2]
            if n_head == _NOTEBOOK_N_HEAD or not _passes(MultiHeadAttention, config):
                raise
            fail(_NAME, f"correct with the notebook's {_NOTEBOOK_N_HEAD} heads, wrong with "
                 f"n_head={n_head}: a head count is hard-coded. Use the heads the layer has "
                 f"(self.heads), whatever their number. (With {n_head} heads: "
                 f"{str(exc).removeprefix(f'[{_NAME}] ')})")  # fmt: skip

    B, n_embd, n_head, block_size, T = _CONFIGS[0]

    def build(p):
        with seeded(7):
            mha = construct(_NAME, MultiHeadAttention, n_embd, n_head, block_size, dropout=p)
        for head in mha.heads:  # only the layer's own dropout stays on
            head.dropout.p = 0.0
        return mha

    x = torch.randn(B, T, n_embd, generator=torch.Generator().manual_seed(9))
    check_dropout(_NAME, build, x, _reference, _WRONG_PLACES,
                  where="to the projected output", what="mha(x)")  # fmt: skip
    B, n_embd, n_head = _CONFIGS[-1][0], _CONFIGS[-1][1], _CONFIGS[-1][2]
    passed(_NAME, f"{n_head} heads concatenated to {(B, _CONFIGS[-1][4], n_embd)}, then projected")
