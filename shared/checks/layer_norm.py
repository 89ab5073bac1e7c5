"""Check for lesson 05's LayerNorm from scratch: compared with ``nn.LayerNorm`` (the biased
variance, eps inside the square root, a learnable gain and bias), each classic mistake named."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn import functional as F

from shared.checks._calls import call, construct
from shared.checks._core import close, fail, matching_mistake, passed, require_callable, shape_of
from shared.checks._hints import crash_hint

_B, _T = 2, 5


def _input(C: int, seed: int) -> torch.Tensor:
    """Rows with very different means and spreads; the last rows so flat that eps matters."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(_B, _T, C, generator=g) * torch.linspace(0.5, 4.0, _T).view(1, _T, 1) + 2.0
    x[:, -2:] = 1.0 + 0.02 * torch.randn(_B, 2, C, generator=g)  # variance ~4e-4
    return x


def _mistakes(x, weight, bias, eps) -> dict:
    """What each classic mistake computes (lazily)."""
    C = x.size(-1)

    def norm(centre=True, correction=0, root=True, eps_inside=True, dim=-1):
        mean = x.mean(dim=dim, keepdim=True) if centre else 0.0
        var = x.var(dim=dim, keepdim=True, correction=correction)
        if not root:
            return (x - mean) / (var + eps)
        if eps_inside:
            return (x - mean) / torch.sqrt(var + eps)
        return (x - mean) / (torch.sqrt(var) + eps)

    def affine(h):
        return h * weight + bias

    return {
        "the unbiased variance (divides by C - 1): LayerNorm uses the biased one, the mean of "
        "the squared deviations (torch.var's default is unbiased: correction=0 or "
        "unbiased=False)": [lambda: affine(norm(correction=1))],
        "the unbiased standard deviation (x.std divides by C - 1) plus eps: LayerNorm divides by "
        "sqrt(biased variance + eps), the biased variance under the root with eps": [
            lambda: affine(norm(correction=1, eps_inside=False))],
        "eps is added to the standard deviation, outside the square root: it belongs inside, "
        "sqrt(var + eps)": [lambda: affine(norm(eps_inside=False))],
        "eps is added after the division, to the normalised values: it belongs inside the "
        "square root, sqrt(var + eps)": [
            lambda: affine((x - x.mean(-1, keepdim=True))
                           / x.var(-1, keepdim=True, correction=0).sqrt() + eps)],
        "eps is ignored, hard-coded, or its default is not 1e-5: use the eps given to __init__": [
            lambda e=e: affine((x - x.mean(-1, keepdim=True))
                               / torch.sqrt(x.var(-1, keepdim=True, correction=0) + e))
            for e in (0.0, 1e-5, 1e-6, 1e-8)
        ],  # fmt: skip
        "division by the variance, not by its square root (the standard deviation)": [
            lambda: affine(norm(root=False))
        ],
        "the mean is not subtracted: each row must be centred before it is scaled": [
            lambda: affine(x / torch.sqrt(x.var(-1, keepdim=True, correction=0) + eps)),
            lambda: affine(x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)),
        ],
        "the statistics are taken over the wrong dimension: normalise each position's vector "
        "of C features (the last dimension)": [
            lambda d=d: affine(norm(dim=d)) for d in (0, 1)
        ] + [lambda: affine((x - x.mean()) / torch.sqrt(x.var(correction=0) + eps))],
        "the mean and the variance are taken over different dimensions: both are statistics of "
        "each position's C features (the last dimension)": [
            lambda d=d: affine((x - x.mean(d, keepdim=True))
                               / torch.sqrt(x.var(-1, keepdim=True, correction=0) + eps))
            for d in (0, 1)] + [
            lambda d=d: affine((x - x.mean(-1, keepdim=True))
                               / torch.sqrt(x.var(d, keepdim=True, correction=0) + eps))
            for d in (0, 1)] + [
            lambda: affine((x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(correction=0) + eps))],
        "the mean is added: each row is centred by subtracting it": [
            lambda: affine((x + x.mean(-1, keepdim=True))
                           / torch.sqrt(x.var(-1, keepdim=True, correction=0) + eps))],
        "the centred x is multiplied by sqrt(var + eps): it is divided by it": [
            lambda: affine((x - x.mean(-1, keepdim=True))
                           * torch.sqrt(x.var(-1, keepdim=True, correction=0) + eps))],
        "the gain and bias are not applied: scale by self.weight, then add self.bias": [
            lambda: norm(), lambda: norm() * weight, lambda: norm() + bias,
        ],
        "the bias is added before the gain: (x_hat * weight) + bias, in that order": [
            lambda: (norm() + bias) * weight
        ],
        "the gain and bias are swapped: weight multiplies, bias is added": [
            lambda: norm() * bias + weight
        ],
        "the bias is added to the gain, x_hat * (weight + bias): the bias is added after the "
        "multiplication, to x_hat * weight": [lambda: norm() * (weight + bias)],
        "the bias multiplies too (x_hat * weight * bias): it is added": [
            lambda: norm() * weight * bias],
    } if C else {}  # fmt: skip


def _hint(what, C):
    return crash_hint(what, [
        (None, "must match the size of tensor",
         "Each position's mean and variance must keep a last dimension of size 1 (keepdim=True): "
         f"(B, T, 1) broadcasts against x (B, T, {C}), while (B, T) lines up with the wrong "
         "dimensions."),
        (("AttributeError",), "eps",
         "forward reads an attribute __init__ did not set: keep the eps given to __init__ on "
         "self."),
    ])  # fmt: skip


def _parameters(name, ln, C):
    """The learnable gain and bias: registered parameters of shape (C,), at ones and zeros."""
    __tracebackhide__ = True
    params = dict(ln.named_parameters())
    for attr, init in (("weight", "ones"), ("bias", "zeros")):
        value = getattr(ln, attr, None)
        if not isinstance(value, torch.Tensor):
            fail(name, f"self.{attr} is missing: the spec names the gain self.weight and the "
                 "bias self.bias.")  # fmt: skip
        if attr not in params or not value.requires_grad:
            fail(name, f"self.{attr} is a plain tensor, not a learnable parameter: wrap it in "
                 "nn.Parameter so the optimiser sees it (it is not in model.parameters()).")  # fmt: skip
        if value.shape != (C,):
            fail(name, f"with n_embd={C}, self.{attr} should have shape ({C},), got "
                 f"{shape_of(value)}.")  # fmt: skip
        if value.dtype != torch.float32:
            fail(name, f"self.{attr} should be a float tensor (float32), got {value.dtype}.")
        expected = torch.ones(C) if init == "ones" else torch.zeros(C)
        if not torch.equal(value.detach(), expected):
            fail(name, f"self.{attr} should start at {init} (so a fresh LayerNorm only "
                 "normalises), like nn.LayerNorm's.")  # fmt: skip
    if len(params) != 2:
        fail(name, f"LayerNorm should have exactly two parameters (weight, bias), found "
             f"{sorted(params)}.")  # fmt: skip


def check_layer_norm(LayerNorm) -> None:
    """Check ``LayerNorm(n_embd, eps=1e-5)`` against ``nn.LayerNorm`` with the same gain/bias."""
    __tracebackhide__ = True
    name = "layer_norm"
    require_callable(name, LayerNorm, "the LayerNorm class")
    for C, eps, seed in ((10, 1e-5, 0), (16, 0.1, 1)):
        kwargs = {} if eps == 1e-5 else {"eps": eps}
        ln = construct(name, LayerNorm, C, **kwargs)
        _parameters(name, ln, C)
        g = torch.Generator().manual_seed(seed + 100)
        with torch.no_grad():  # a gain and bias far from 1 and 0, so each must be applied
            ln.weight.copy_(torch.rand(C, generator=g) * 2 + 0.5)
            ln.bias.copy_(torch.rand(C, generator=g) * 2 - 1)
        x = _input(C, seed)
        weight, bias = ln.weight.detach().clone(), ln.bias.detach().clone()
        what = f"LayerNorm({C}{', eps=' + str(eps) if kwargs else ''})(x)"
        with torch.no_grad():
            out = call(name, ln, x, what=what, hint=_hint(what, C))
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            fail(name, f"{what} should keep the input's shape {tuple(x.shape)}, got "
                 f"{shape_of(out)}.")  # fmt: skip
        want = F.layer_norm(x, (C,), weight, bias, eps)
        if close(out, want, atol=1e-4):
            continue
        mistake = matching_mistake(out, _mistakes(x, weight, bias, eps), atol=1e-4)
        if mistake:
            fail(name, f"looks like {mistake}.")
        fail(name, f"{what} differs from nn.LayerNorm with the same weight and bias: each "
             "position's C features, centred by their mean, divided by sqrt(biased variance "
             "+ eps), then times weight plus bias.")  # fmt: skip
    # Learnable: the gradient reaches both parameters through the output.
    ln = construct(name, LayerNorm, 6)
    x = _input(6, 2)
    out = call(name, ln, x, what="LayerNorm(6)(x)")
    if not out.requires_grad:
        fail(name, "the output does not depend on self.weight and self.bias through autograd "
             "(was it computed under no_grad, or from .data/.detach()?): they could not learn.")  # fmt: skip
    out.pow(2).sum().backward()
    if ln.weight.grad is None or ln.bias.grad is None:
        fail(name, "no gradient reaches self.weight or self.bias: use them in forward as "
             "tensors, not copies, so training can move them.")  # fmt: skip
    reference = nn.LayerNorm(6)
    reference(x).pow(2).sum().backward()
    if not (close(ln.weight.grad, reference.weight.grad, atol=1e-4)
            and close(ln.bias.grad, reference.bias.grad, atol=1e-4)):  # fmt: skip
        fail(name, "the gradients of weight and bias differ from nn.LayerNorm's.")
    passed(name, "matches nn.LayerNorm: biased variance, eps inside the root, gain and bias")
