"""Checks for lesson 05: the feed-forward network and the pre-norm transformer block."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn import functional as F

from shared.checks._calls import call, construct
from shared.checks._core import Exercise, close, fail, passed, require_callable

EXERCISES = [
    Exercise(
        name="feedforward",
        check="check_feedforward",
        target="FeedForward",
        description="FeedForward.__init__: Linear(C, 4C), activation, Linear(4C, C), Dropout",
    ),
    Exercise(
        name="block",
        check="check_block",
        target="Block",
        description="Block.forward: pre-norm residual attention and feed-forward",
    ),
]

_C, _B, _T = 16, 2, 6


def _input() -> torch.Tensor:
    # Shifted and scaled, so that a missing LayerNorm or residual shows clearly.
    g = torch.Generator().manual_seed(0)
    return torch.randn(_B, _T, _C, generator=g) * 3 + 1


def check_feedforward(FeedForward) -> None:
    """Check ``FeedForward``: expand to 4*n_embd, GELU (or ReLU), project back, dropout."""
    __tracebackhide__ = True
    name = "feedforward"
    require_callable(name, FeedForward, "the FeedForward class")
    torch.manual_seed(0)
    x = _input()
    for activation, act_fn in (("gelu", F.gelu), ("relu", F.relu)):
        ff = construct(name, FeedForward, _C, dropout=0.0, activation=activation).eval()
        linears = [m for m in ff.modules() if isinstance(m, nn.Linear)]
        if len(linears) != 2:
            fail(
                name,
                f"expected two nn.Linear layers (expand, then project back), found {len(linears)}.",
            )
        up, down = linears
        if (up.in_features, up.out_features) != (_C, 4 * _C):
            fail(
                name,
                f"the first Linear should map n_embd={_C} to 4 * n_embd = {4 * _C}, "
                f"it maps {up.in_features} -> {up.out_features}.",
            )
        if (down.in_features, down.out_features) != (4 * _C, _C):
            fail(
                name,
                f"the second Linear should map 4 * n_embd = {4 * _C} back to {_C}, "
                f"it maps {down.in_features} -> {down.out_features}.",
            )
        with torch.no_grad():
            out = call(name, ff, x, what=f"FeedForward({_C}, activation={activation!r})(x)")
            if not isinstance(out, torch.Tensor) or out.shape != x.shape:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                fail(
                    name, f"the output should keep the input's shape {tuple(x.shape)}, got {shape}."
                )
            if close(out, down(act_fn(up(x)))):
                continue  # correct for this activation
            if close(out, down(up(x))):
                fail(
                    name,
                    "missing non-linearity between the two Linears: without it they "
                    "collapse into a single linear map. Put nn.GELU() (or nn.ReLU()) between them.",
                )
            other = F.relu if act_fn is F.gelu else F.gelu
            if close(out, down(other(up(x)))):
                fail(
                    name,
                    f"activation={activation!r} should use nn.{'GELU' if activation == 'gelu' else 'ReLU'}(), "
                    "not the other one.",
                )
            if close(out, act_fn(down(act_fn(up(x))))) or close(out, act_fn(down(up(x)))):
                fail(name, "the activation goes between the Linears only, not after the last one.")
            fail(name, "the output differs from Linear(C, 4C) -> activation -> Linear(4C, C).")
    ff = construct(name, FeedForward, _C, dropout=0.5)
    ff.train()
    with torch.no_grad():
        torch.manual_seed(1)
        out_train = call(name, ff, x, what="FeedForward in training mode")
        ff.eval()
        if close(out_train, ff(x)):
            fail(name, "the dropout argument is unused: end the network with nn.Dropout(dropout).")
    passed(name, f"{_C} -> {4 * _C} -> {_C} with GELU/ReLU and dropout")


def check_block(Block) -> None:
    """Check ``Block.forward`` (the ``__init__`` with .ln1 .sa .ln2 .ffwd is the one given)."""
    __tracebackhide__ = True
    name = "block"
    require_callable(name, Block, "the Block class")
    torch.manual_seed(0)
    block = construct(name, Block, _C, 4, 8, dropout=0.0).eval()
    for part in ("ln1", "sa", "ln2", "ffwd"):
        if not isinstance(getattr(block, part, None), nn.Module):
            fail(name, f"keep the given __init__: self.{part} is missing.")
    with torch.no_grad():  # make the two LayerNorms differ from each other and from identity
        for ln in (block.ln1, block.ln2):
            ln.weight.uniform_(0.5, 1.5)
            ln.bias.uniform_(-0.5, 0.5)
    x = _input()
    ln1, sa, ln2, ffwd = block.ln1, block.sa, block.ln2, block.ffwd
    with torch.no_grad():
        out = call(name, block, x, what="block(x)")
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            fail(name, f"block(x) should keep the shape {tuple(x.shape)}, got {shape}.")
        h = x + sa(ln1(x))
        expected = h + ffwd(ln2(h))
        if close(out, expected):
            passed(name, "x = x + sa(ln1(x)); x = x + ffwd(ln2(x))")
            return
        post_h = ln1(x + sa(x))
        h_no_res = sa(ln1(x))
        mistakes = {
            "post-norm instead of pre-norm: normalise the input of each sub-layer, "
            "x = x + self.sa(self.ln1(x)), not the sum ln(x + sa(x))": [
                ln2(post_h + ffwd(post_h)),
                ln2(h + ffwd(h)),
                post_h + ffwd(ln2(post_h)),
            ],
            "missing residual connection around the attention: x = x + self.sa(self.ln1(x))": [
                h_no_res + ffwd(ln2(h_no_res)),
            ],
            "missing residual connection around the feed-forward: x = x + self.ffwd(self.ln2(x))": [
                ffwd(ln2(h)),
            ],
            "missing both residual connections: add each sub-layer's output to x": [
                ffwd(ln2(h_no_res)),
            ],
            "the residual carries the normalised x: add to the raw x, x = x + self.sa(self.ln1(x))": [
                (ln1(x) + sa(ln1(x))) + ffwd(ln2(ln1(x) + sa(ln1(x)))),
            ],
            "the feed-forward sees the block's input, not the attention's output: "
            "update x after the attention step, then x = x + self.ffwd(self.ln2(x))": [
                h + ffwd(ln2(x)),
                x + sa(ln1(x)) + ffwd(ln2(x)),
            ],
            "a LayerNorm is skipped: x = x + self.sa(self.ln1(x)); x = x + self.ffwd(self.ln2(x))": [
                (x + sa(x)) + ffwd(ln2(x + sa(x))),
                h + ffwd(h),
            ],
            "the LayerNorms are swapped or reused: ln1 before attention, ln2 before the "
            "feed-forward": [
                (x + sa(ln2(x))) + ffwd(ln1(x + sa(ln2(x)))),
                h + ffwd(ln1(h)),
            ],
        }
        for mistake, candidates in mistakes.items():
            if any(close(out, c) for c in candidates):
                fail(name, f"looks like {mistake}.")
        fail(name, "block(x) differs from x = x + sa(ln1(x)); x = x + ffwd(ln2(x)).")
