"""Checks for lesson 05: the feed-forward network and the pre-norm transformer block."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn import functional as F

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
from shared.checks.layer_norm import check_layer_norm

__all__ = ["EXERCISES", "check_block", "check_feedforward", "check_layer_norm"]

EXERCISES = [
    Exercise(
        name="feedforward",
        check="check_feedforward",
        target="FeedForward",
        description="FeedForward.__init__: Linear(C, 4C), activation, Linear(4C, C), Dropout",
    ),
    Exercise(
        name="layer_norm",
        check="check_layer_norm",
        target="LayerNorm",
        description="LayerNorm from scratch: biased variance, eps inside the root, gain and bias",
    ),
    Exercise(
        name="block",
        check="check_block",
        target="Block",
        description="Block.forward: pre-norm residual attention and feed-forward",
    ),
]

_C, _B, _T = 16, 2, 6
_FF_SIZES = (10, _C)  # n_embd 10 first (no common notebook size), then the lesson's 16


def _input(C: int = _C) -> torch.Tensor:
    # Shifted and scaled, so that a missing LayerNorm or residual shows clearly.
    g = torch.Generator().manual_seed(C)
    return torch.randn(_B, _T, C, generator=g) * 3 + 1


_ACTIVATIONS = {  # name -> every accepted form (GELU's tanh approximation is a GELU too)
    "gelu": (F.gelu, lambda t: F.gelu(t, approximate="tanh")),
    "relu": (F.relu,),
}


def _linears(name, ff, C):
    """The expanding and the projecting Linear, found by their sizes."""
    __tracebackhide__ = True
    linears = [m for m in ff.modules() if isinstance(m, nn.Linear)]
    if len(linears) != 2:
        fail(name, f"expected two nn.Linear layers (expand, then project back), found "
             f"{len(linears)}.")  # fmt: skip
    sizes = [(m.in_features, m.out_features) for m in linears]
    ups = [m for m in linears if (m.in_features, m.out_features) == (C, 4 * C)]
    downs = [m for m in linears if (m.in_features, m.out_features) == (4 * C, C)]
    if not ups or not downs:
        fail(name, f"with n_embd={C} the two Linears should map {C} -> {4 * C} and {4 * C} -> "
             f"{C} (expand 4x, then back); they map {sizes}. The sizes must come from the "
             "n_embd argument.")  # fmt: skip
    if any(m.bias is None for m in (ups[0], downs[0])):
        fail(name, "the spec asks for Linear layers with a bias (nn.Linear's default): "
             "bias=False removes the offset each hidden unit can learn.")  # fmt: skip
    return ups[0], downs[0]


def _ff_reference(activations):
    def reference(ff, x, drop):
        up, down = _linears("feedforward", ff, x.size(-1))
        return drop(down(activations[0](up(x))))

    return reference


def _check_ff_output(name, ff, x, activation):
    __tracebackhide__ = True
    up, down = _linears(name, ff, x.size(-1))
    what = f"FeedForward({x.size(-1)}, activation={activation!r})(x)"
    out = call(name, ff, x, what=what)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        fail(name, f"{what} should keep the input's shape {tuple(x.shape)}, got {shape_of(out)}.")
    if any(close(out, down(act(up(x)))) for act in _ACTIVATIONS[activation]):
        return
    other = "relu" if activation == "gelu" else "gelu"
    act = _ACTIVATIONS[activation][0]
    mistake = matching_mistake(out, {
        "missing non-linearity between the two Linears: without it they collapse into a "
        "single linear map": lambda: down(up(x)),
        f"with activation={activation!r} the network uses {other.upper()}: the `activation` "
        "argument must choose the non-linearity": [
            lambda f=f: down(f(up(x))) for f in _ACTIVATIONS[other]],
        "the activation also follows the last Linear: it belongs between the Linears only": [
            lambda: act(down(act(up(x)))), lambda: act(down(up(x)))],
        "the Linears are applied in the wrong order or the activation comes first": (
            lambda: down(up(act(x)))),
    })  # fmt: skip
    if mistake:
        fail(name, f"looks like {mistake}.")
    fail_if_random_in_eval(name, ff, x, what)
    fail(name, f"{what} differs from expand -> {activation} -> project back (in eval mode).")


def _ff_crash(exc: Exception) -> str | None:
    text = str(exc)
    if "is not a Module subclass" in text and not text.startswith("list"):
        return (f"FeedForward(...) raised {type(exc).__name__}: {text}. A layer class was put in "
                "nn.Sequential without calling it: the Sequential holds module instances, "
                "made by calling the class (with its arguments, if any).")  # fmt: skip
    return None


_FF_CRASHES = _ff_crash


def check_feedforward(FeedForward) -> None:
    """Check ``FeedForward``: expand to 4*n_embd, GELU (or ReLU), project back, dropout."""
    __tracebackhide__ = True
    name = "feedforward"
    require_callable(name, FeedForward, "the FeedForward class")
    for C in _FF_SIZES:
        x = _input(C)
        for activation in ("gelu", "relu"):
            with seeded(C):
                ff = construct(name, FeedForward, C, dropout=0.0, activation=activation,
                               hint=_FF_CRASHES)  # fmt: skip
            with torch.no_grad():
                _check_ff_output(name, ff.eval(), x, activation)

    def build(p):
        with seeded(3):
            return construct(name, FeedForward, _C, dropout=p, activation="relu")

    def at(where):  # dropout somewhere else, for the named mistakes
        def wrong(ff, x, drop):
            up, down = _linears(name, ff, x.size(-1))
            return {"hidden": lambda: down(drop(F.relu(up(x)))),
                    "input": lambda: down(F.relu(up(drop(x))))}[where]()  # fmt: skip

        return wrong

    wrong_places = {
        "dropout is applied to the hidden layer; it belongs at the end, on the output": at(
            "hidden"
        ),
        "dropout is applied to the input; it belongs at the end, on the output": at("input"),
    }
    check_dropout(name, build, _input(), _ff_reference(_ACTIVATIONS["relu"]), wrong_places,
                  where="at the end, to the output", what="FeedForward(x)")  # fmt: skip
    passed(name, f"{_C} -> {4 * _C} -> {_C} with GELU/ReLU and dropout")


def _block_mistakes(x, ln1, sa, ln2, ffwd) -> dict:
    """What each classic mistake computes, lazily (most are never needed)."""

    def pre(a, b):  # x + sa(a(x)), then + ffwd(b(.)): pre-norm with the given LayerNorms
        h = x + sa(a(x))
        return h + ffwd(b(h))

    def pre_ff(a, b):  # the feed-forward in both steps
        g = x + ffwd(a(x))
        return g + ffwd(b(g))

    h = x + sa(ln1(x))
    return {
        "post-norm instead of pre-norm: the LayerNorms must normalise each sub-layer's input, "
        "not the sum after the residual": [
            lambda: ln2(ln1(x + sa(x)) + ffwd(ln1(x + sa(x)))),
            lambda: ln2(h + ffwd(h)),
            lambda: ln1(x + sa(x)) + ffwd(ln2(ln1(x + sa(x)))),
        ],
        "missing residual connection around the attention: its output must be added to x": (
            lambda: sa(ln1(x)) + ffwd(ln2(sa(ln1(x))))
        ),
        "missing residual connection around the feed-forward: its output must be added to x": (
            lambda: ffwd(ln2(h))
        ),
        "missing both residual connections: each sub-layer's output must be added to x": (
            lambda: ffwd(ln2(sa(ln1(x))))
        ),
        "the residual carries the normalised x: the sum must start from the raw x": (
            lambda: (ln1(x) + sa(ln1(x))) + ffwd(ln2(ln1(x) + sa(ln1(x))))
        ),
        "the feed-forward sees the block's input, not the attention's output: the second "
        "step must use x as updated by the first": [
            lambda: h + ffwd(ln2(x)),
        ],
        "a LayerNorm is skipped: each sub-layer gets a normalised input": [
            lambda: pre(lambda t: t, ln2),
            lambda: h + ffwd(h),
        ],
        "the LayerNorms are swapped or reused: ln1 belongs to the attention, ln2 to the "
        "feed-forward": [lambda: pre(ln2, ln1), lambda: pre(ln1, ln1), lambda: pre(ln2, ln2)],
        "the feed-forward runs before the attention": (
            lambda: (x + ffwd(ln2(x))) + sa(ln1(x + ffwd(ln2(x))))
        ),
        "the attention is used twice and the feed-forward never: the second step is the "
        "feed-forward's": [lambda: h + sa(ln2(h)), lambda: h + sa(ln1(h))],
        "the feed-forward is used twice and the attention never: the first step is the "
        "attention's": [lambda: pre_ff(ln1, ln2)],
        "the attention step is missing: x + sa(ln1(x)) comes first": lambda: x + ffwd(ln2(x)),
        "the feed-forward step is missing: after the attention step, add ffwd(ln2(x))": (lambda: h),
        "a sub-layer's output is subtracted from the stream or multiplies it: the residual "
        "connection adds it": [
            lambda: (x - sa(ln1(x))) + ffwd(ln2(x - sa(ln1(x)))),
            lambda: h - ffwd(ln2(h)),
            lambda: (x * sa(ln1(x))) + ffwd(ln2(x * sa(ln1(x)))),
            lambda: h * ffwd(ln2(h)),
        ],
        "the residual is added twice (x + x + sub-layer): the stream is added once, x + "
        "sub-layer(LayerNorm(x))": [
            lambda: (2 * x + sa(ln1(x))) * 2 + ffwd(ln2(2 * x + sa(ln1(x)))),
            lambda: (2 * x + sa(ln1(x))) + ffwd(ln2(2 * x + sa(ln1(x)))),
            lambda: 2 * h + ffwd(ln2(h)),
        ],
    }


def _block(name, Block, C, n_head, dropout, seed):
    __tracebackhide__ = True
    with seeded(seed):
        block = construct(name, Block, C, n_head, 8, dropout=dropout)
    for part in ("ln1", "sa", "ln2", "ffwd"):
        if not isinstance(getattr(block, part, None), nn.Module):
            fail(name, f"keep the given __init__: self.{part} is missing.")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # make the two LayerNorms differ from each other and from identity
        for ln in (block.ln1, block.ln2):
            ln.weight.copy_(torch.rand(ln.weight.shape, generator=g) + 0.5)
            ln.bias.copy_(torch.rand(ln.bias.shape, generator=g) - 0.5)
    return block


def _reference(block, x):
    h = x + block.sa(block.ln1(x))
    return h + block.ffwd(block.ln2(h))


def check_block(Block) -> None:
    """Check ``Block.forward`` (the ``__init__`` with .ln1 .sa .ln2 .ffwd is the one given)."""
    __tracebackhide__ = True
    name = "block"
    require_callable(name, Block, "the Block class")
    for C, n_head in ((12, 3), (_C, 4)):
        block = _block(name, Block, C, n_head, 0.0, seed=C).eval()
        x = _input(C)
        with torch.no_grad():
            out = call(name, block, x, what="block(x)")
            if not isinstance(out, torch.Tensor) or out.shape != x.shape:
                fail(name, f"block(x) should keep the shape {tuple(x.shape)}, got "
                     f"{shape_of(out)}.")  # fmt: skip
            if close(out, _reference(block, x)):
                continue
            parts = (block.ln1, block.sa, block.ln2, block.ffwd)
            mistake = matching_mistake(out, _block_mistakes(x, *parts))
            if mistake:
                fail(name, f"looks like {mistake}.")
            fail_if_random_in_eval(name, block, x, "block(x)")
            fail(name, "block(x) differs from two pre-norm residual steps (attention, then "
                 "feed-forward), each adding sub-layer(LayerNorm(x)) to x.")  # fmt: skip
    # Training mode: the sub-layers' own dropout, drawn in the same order, and nothing else.
    block = _block(name, Block, _C, 4, 0.3, seed=1).train()
    x = _input()
    with torch.no_grad(), seeded(2):
        out = call(name, block, x, what="block(x) in training mode")
    with torch.no_grad(), seeded(2):
        expected = _reference(block, x)
    if not close(out, expected):
        fail(name, "in training mode (dropout=0.3) block(x) differs from the same two steps "
             "with the sub-layers' own dropout: the block uses each sub-layer once, attention "
             "first, and adds no randomness of its own.")  # fmt: skip
    passed(name, "x = x + sa(ln1(x)); x = x + ffwd(ln2(x))")
