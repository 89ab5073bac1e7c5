"""Checks for lesson 10: RMSNorm, rotary position embeddings and the ReLU² feed-forward."""

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
from shared.checks._hints import crash_hint, torch_errors_unmasked

EXERCISES = [
    Exercise(
        name="rmsnorm",
        check="check_rmsnorm",
        target="RMSNorm",
        description="RMSNorm.forward: x / sqrt(mean(x^2) + eps) * weight",
    ),
    Exercise(
        name="apply_rope",
        check="check_apply_rope",
        target="apply_rope",
        description="apply_rope(x, cos, sin): rotate channel pairs by their position's angles",
    ),
    Exercise(
        name="relu2_mlp",
        check="check_relu2_mlp",
        target="ReluSquaredMLP",
        description="ReluSquaredMLP.forward: c_fc, ReLU squared, c_proj",
    ),
]


def _input(B: int, T: int, C: int, seed: int) -> torch.Tensor:
    # Shifted and scaled: a mean that LayerNorm would remove and an RMS far from 1.
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, C, generator=g) * 3 + 1.5


# ----------------------------------------------------------------------------- RMSNorm
def _rmsnorm_mistakes(x, w, eps):
    ms = x.pow(2).mean(-1, keepdim=True)
    return {
        "the mean is subtracted (that is LayerNorm): RMSNorm only divides by the root mean "
        "square": lambda: F.layer_norm(x, (x.size(-1),), w, None, eps),
        "`eps` is left out or hard-coded: self.eps, the eps given to __init__, goes under the "
        "square root, mean(x^2) + eps": [lambda: x / ms.sqrt() * w]
        + [lambda e=e: x / (ms + e).sqrt() * w for e in (1e-5, 1e-6, 1e-8) if e != eps],
        "`eps` is added after the square root: it goes inside, sqrt(mean(x^2) + eps)": lambda: (
            x / (ms.sqrt() + eps) * w
        ),
        "the learned gain `self.weight` is not applied": lambda: x / (ms + eps).sqrt(),
        "the mean is taken over the wrong dimension: normalise each vector over its channels "
        "(the last dim, keepdim=True)": [
            lambda: x / (x.pow(2).mean(1, keepdim=True) + eps).sqrt() * w,
            lambda: x / (x.pow(2).mean() + eps).sqrt() * w,
        ],
        "it divides by the norm sqrt(sum(x^2)), not the root *mean* square": lambda: (
            x / (x.pow(2).sum(-1, keepdim=True) + eps).sqrt() * w
        ),
        "it divides by the mean square without the square root": lambda: x / (ms + eps) * w,
        "it divides by the standard deviation (torch.std/var subtract the mean first): RMSNorm "
        "uses the mean of the squares, sqrt(mean(x^2) + eps)": [
            lambda c=c: x / (x.var(-1, keepdim=True, correction=c) + eps).sqrt() * w for c in (0, 1)
        ]
        + [lambda: x / (x.std(-1, keepdim=True) + eps) * w],
        "x is not normalised (only the gain is applied): divide each vector by its root mean "
        "square first": lambda: x * w,
        "it divides by sqrt(mean(x) + eps), the mean of x itself: RMSNorm averages the squares, "
        "mean(x^2)": lambda: x / (x.mean(-1, keepdim=True) + eps).sqrt() * w,
        "it divides by the mean absolute value: RMSNorm squares first, sqrt(mean(x^2) + eps)": [
            lambda: x / (x.abs().mean(-1, keepdim=True) + eps) * w
        ],
        "it multiplies by the root mean square instead of dividing by it (rsqrt is already "
        "1/sqrt)": [lambda: x * (ms + eps).sqrt() * w, lambda: x / (ms + eps).rsqrt() * w],
        "the gain is applied before the normalisation, which then undoes it: normalise x, then "
        "multiply by self.weight": [
            lambda: (x * w) / ((x * w).pow(2).mean(-1, keepdim=True) + eps).sqrt()
        ],
    }


_KEEPDIM = [
    (None, "must match the size of tensor",
     "The mean of the squares must keep a last dimension of size 1 (keepdim=True), so that it "
     "broadcasts over the channels of x."),
    (("AttributeError",), "eps",
     "forward reads an attribute __init__ did not set: use the given __init__ (it keeps eps)."),
]  # fmt: skip


def check_rmsnorm(RMSNorm) -> None:
    """Compare ``RMSNorm(dim, eps)`` with ``torch.nn.RMSNorm`` given the same gain."""
    __tracebackhide__ = True
    name = "rmsnorm"
    require_callable(name, RMSNorm, "the RMSNorm class")
    for C, eps in ((10, 0.5), (16, 1e-6)):  # a large eps first: where it goes shows
        norm = construct(name, RMSNorm, C, eps=eps)
        weight = getattr(norm, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.shape != (C,):
            fail(name, f"RMSNorm({C}) should have a learned gain `self.weight` of shape ({C},), "
                 f"got {shape_of(weight)}.")  # fmt: skip
        if not isinstance(weight, nn.Parameter):  # a buffer or plain tensor: never learned
            fail(name, "`self.weight` is not an nn.Parameter, so it gets no gradient: wrap it "
                 "in nn.Parameter so that the optimizer learns it.")  # fmt: skip
        if not torch.equal(weight.detach(), torch.ones(C)):
            fail(name, "`self.weight` should start at ones (the norm starts as pure scaling).")
        with torch.no_grad():
            weight.copy_(torch.linspace(0.5, 2.0, C))
        ref = nn.RMSNorm(C, eps=eps)
        with torch.no_grad():
            ref.weight.copy_(
                weight.detach().clone()
            )  # a plain copy: `weight` may live in a grading sandbox
        x = _input(2, 5, C, seed=C)
        with torch.no_grad():
            what = f"RMSNorm({C}, eps={eps})(x)"
            out = call(name, norm, x, what=what, hint=crash_hint(what, _KEEPDIM))
            want = ref(x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            fail(name, f"the output should keep the input's shape {tuple(x.shape)}, got "
                 f"{shape_of(out)}.")  # fmt: skip
        if close(out, want):
            continue
        mistake = matching_mistake(out, _rmsnorm_mistakes(x, weight.detach(), eps))
        if mistake:
            fail(name, f"looks like {mistake}.")
        fail(name, f"RMSNorm({C}, eps={eps}) differs from torch.nn.RMSNorm with the same gain.")
    norm = construct(name, RMSNorm, 8)
    x = _input(2, 3, 8, seed=3)  # the gain alone needs a gradient (an input that needs one
    # would be lent to a grading sandbox by handle rather than sent as values)
    out = call(name, norm, x, what="RMSNorm(8)(x)")
    if out.requires_grad:
        out.sum().backward()
    if not out.requires_grad or norm.weight.grad is None:
        fail(name, "`self.weight` gets no gradient: it must be an nn.Parameter used in forward.")
    passed(name, "matches torch.nn.RMSNorm (eps inside the square root, gain applied).")


# ----------------------------------------------------------------------------- RoPE
def _angles(hs: int, positions: torch.Tensor, base: float = 10000.0):
    freq = base ** -(torch.arange(0, hs, 2, dtype=torch.float32) / hs)
    angles = torch.outer(positions.float(), freq)  # (T, hs/2)
    return angles.cos(), angles.sin()


def _rope_halves(x, cos, sin):
    half = x.size(-1) // 2
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def _rope_interleaved(x, cos, sin):
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


def _rope_mistakes(x, cos, sin):
    half = x.size(-1) // 2
    a, b = x[..., :half], x[..., half:]
    ia, ib = x[..., 0::2], x[..., 1::2]
    return {
        "the two pairing layouts are mixed: the pairs are read in one layout (halves: channel i "
        "with i + hs/2; or interleaved: 2i with 2i + 1) and written back in the other, which "
        "moves channels around: read and write the pairs the same way": [
            torch.cat([ia * cos - ib * sin, ia * sin + ib * cos], dim=-1),
            torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)],
        "the rotation turns the wrong way (the signs of the sin terms are swapped): the spec "
        "asks for (a cos - b sin, a sin + b cos)": [_rope_halves(x, cos, -sin),
                                                     _rope_interleaved(x, cos, -sin)],
        "the minus sign is missing: (a cos + b sin, a sin + b cos) is not a rotation, so it "
        "changes lengths and the score depends on absolute positions": [
            torch.cat([a * cos + b * sin, a * sin + b * cos], dim=-1)],
        "cos and sin are swapped": [_rope_halves(x, sin, cos), _rope_interleaved(x, sin, cos)],
        "the two rotated halves are put back in the wrong order: the first half of the output "
        "is a cos - b sin": [torch.cat([a * sin + b * cos, a * cos - b * sin], dim=-1)],
        "each channel is multiplied by cos and sin without pairing (x cos + x sin): a rotation "
        "mixes each channel with its partner": [
            x * torch.cat([cos, cos], -1) + x * torch.cat([sin, sin], -1),
            x * torch.cat([cos, cos], -1) - x * torch.cat([sin, sin], -1)],
        "both sin terms carry a minus, (a cos - b sin, -a sin + b cos): that is not a rotation, "
        "so it changes lengths; the second half is a sin + b cos": [
            torch.cat([a * cos - b * sin, b * cos - a * sin], dim=-1)],
        "only the first half was rotated: both channels of a pair change, the second half "
        "becomes a sin + b cos": [torch.cat([a * cos - b * sin, b], dim=-1)],
    }  # fmt: skip


def _scores_by_offset(rope, hs: int, T: int):
    """q·k for one fixed q and k placed at every pair of positions (m, n): {m - n: [scores]}."""
    g = torch.Generator().manual_seed(hs)
    q, k = torch.randn(hs, generator=g), torch.randn(hs, generator=g)
    cos, sin = _angles(hs, torch.arange(T))
    qs = call("apply_rope", rope, q.expand(1, T, hs).clone(), cos, sin, what="apply_rope(q, ...)")
    ks = call("apply_rope", rope, k.expand(1, T, hs).clone(), cos, sin, what="apply_rope(k, ...)")
    scores = qs[0] @ ks[0].T  # (T, T): row m = q at position m, column n = k at position n
    return {d: torch.diagonal(scores, offset=-d) for d in range(-T + 1, T)}


_ROPE_CRASHES = [
    (None, "must match the size of tensor",
     "cos and sin are (T, hs // 2), the shape of each half of x's last two dimensions: they "
     "multiply the halves a and b as they are (not the whole x, nor transposed)."),
]  # fmt: skip


def check_apply_rope(apply_rope) -> None:
    """``apply_rope(x, cos, sin)`` rotates pairs (halves or interleaved layout) so that the
    score of q at position m and k at position n depends only on m - n."""
    __tracebackhide__ = True
    name = "apply_rope"
    require_callable(name, apply_rope, "the apply_rope function")
    B, nh, T, hs = 2, 3, 7, 8
    with seeded(0):
        x = torch.randn(B, nh, T, hs)
    cos, sin = _angles(hs, torch.arange(T))
    what = "apply_rope(x (2, 3, 7, 8), cos, sin)"
    out = call(name, apply_rope, x, cos, sin, what=what, hint=crash_hint(what, _ROPE_CRASHES))
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        fail(name, f"the output should keep x's shape {tuple(x.shape)}, got {shape_of(out)}.")
    correct = close(out, _rope_halves(x, cos, sin)) or close(out, _rope_interleaved(x, cos, sin))
    if not correct:
        mistake = matching_mistake(out, _rope_mistakes(x, cos, sin))
        if mistake:
            fail(name, f"looks like {mistake}.")
    if not close(out.norm(dim=-1), x.norm(dim=-1)):
        fail(name, "the vectors' lengths changed: a rotation keeps every pair's length, "
             "(a, b) -> (a cos - b sin, a sin + b cos).")  # fmt: skip
    if not close(out[:, :, 0], x[:, :, 0]):
        fail(name, "position 0 should stay as it is (angle 0: cos = 1, sin = 0); index cos and "
             "sin by the position (rows) and the channel pair (columns).")  # fmt: skip
    for d, scores in _scores_by_offset(apply_rope, hs, T).items():
        if not torch.allclose(scores, scores[0].expand_as(scores), atol=1e-4):
            fail(name, f"q at position m and k at position n should score the same for every "
                 f"pair with m - n = {d}, but they differ ({scores.min():.3f} .. "
                 f"{scores.max():.3f}): the rotation must depend on the position only through "
                 "the angle of that position.")  # fmt: skip
    if not correct:
        fail(name, "the rotation differs from the spec: pair channel i with channel i + hs/2 "
             "and rotate it by the angle in column i of cos and sin.")  # fmt: skip
    passed(name, "lengths kept, and q·k depends only on the offset m - n.")


# ----------------------------------------------------------------------------- ReLU² MLP
def _mlp_mistakes(up, down, h, x):
    return {
        "the ReLU is doubled, not squared: * 2 doubles, ** 2 (or .square()) squares": lambda: (
            down(F.relu(h) * 2)),
        "the activation comes before c_fc: it belongs between c_fc and c_proj": lambda: (
            down(up(F.relu(x).square()))),
        "the ReLU is not squared: ReLU^2 is relu(h) ** 2": lambda: down(F.relu(h)),
        "h is squared without the ReLU first (relu(h ** 2) is the same: squares are never "
        "negative), so large negative pre-activations become large outputs: relu, then square": (
            lambda: down(h.square())),
        "GELU is used: this MLP uses ReLU squared": lambda: down(F.gelu(h)),
        "the activation also follows c_proj: it belongs between the Linears only": lambda: (
            F.relu(down(F.relu(h).square())).square()),
        "there is no non-linearity: c_proj(c_fc(x)) is one linear map": lambda: down(h),
    }  # fmt: skip


_MLP_CRASHES = [
    (None, "bitwise_xor",
     "In Python ^ is the bitwise XOR (it does not work on floats); the power is **."),
    (None, "mat1 and mat2 shapes cannot be multiplied",
     "c_fc maps C -> 4C and c_proj 4C -> C: each Linear must get the size it was built for."),
]  # fmt: skip


def check_relu2_mlp(ReluSquaredMLP) -> None:
    """``ReluSquaredMLP(n_embd)``: c_fc (C -> 4C, no bias), relu(.)**2, c_proj (4C -> C)."""
    __tracebackhide__ = True
    name = "relu2_mlp"
    require_callable(name, ReluSquaredMLP, "the ReluSquaredMLP class")
    for C in (6, 16):
        with seeded(C):
            mlp = construct(name, ReluSquaredMLP, C)
        up, down = getattr(mlp, "c_fc", None), getattr(mlp, "c_proj", None)
        if not (isinstance(up, nn.Linear) and isinstance(down, nn.Linear)):
            fail(name, "keep the `c_fc` and `c_proj` Linears that __init__ builds.")
        with torch.no_grad():  # a non-zero projection, so the output shows what happened
            down.weight.copy_(
                torch.randn(down.weight.shape, generator=torch.Generator().manual_seed(1))
            )
        x = _input(2, 4, C, seed=C)
        what = f"ReluSquaredMLP({C})(x)"
        with torch.no_grad():
            out = call(
                name, torch_errors_unmasked(mlp), x, what=what, hint=crash_hint(what, _MLP_CRASHES)
            )
        if (
            isinstance(out, torch.Tensor)
            and out.shape[:-1] == x.shape[:-1]
            and out.size(-1) == 4 * C
        ):
            fail(name, f"the output has 4 * {C} = {4 * C} channels, the hidden size: c_proj "
                 f"brings it back to {C}.")  # fmt: skip
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            fail(name, f"the output should keep x's shape {tuple(x.shape)}, got {shape_of(out)}.")
        h = up(x).detach()
        if close(out, down(F.relu(h).square()).detach()):
            continue
        with torch.no_grad():
            mistake = matching_mistake(out, _mlp_mistakes(up, down, h, x))
        if mistake:
            fail(name, f"looks like {mistake}.")
        fail(name, f"ReluSquaredMLP({C})(x) differs from c_proj(relu(c_fc(x)) ** 2).")
    passed(name, "c_fc -> relu(.)**2 -> c_proj.")
