"""The lesson 05 LayerNorm-from-scratch check: passes correct code written in several ways, and
names each classic mistake (compared with nn.LayerNorm)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from checkhelpers import assert_fails, assert_passes, stub

from shared.checks import check_layer_norm


def make_layer_norm(normalise, params=True, init=(1.0, 0.0), dtype=torch.float32):
    """A LayerNorm class whose forward is ``normalise(self, x)``."""

    class LayerNorm(nn.Module):
        def __init__(self, n_embd, eps=1e-5):
            super().__init__()
            self.eps = eps
            weight = torch.full((n_embd,), init[0], dtype=dtype)
            bias = torch.full((n_embd,), init[1], dtype=dtype)
            if params:
                self.weight, self.bias = nn.Parameter(weight), nn.Parameter(bias)
            else:
                self.weight, self.bias = weight, bias

        def forward(self, x):
            return normalise(self, x)

    return LayerNorm


def ours(self, x):  # the lesson's solution
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def other_way(self, x):  # correct, written differently
    centred = x - x.mean(-1, keepdim=True)
    var = (centred**2).mean(-1, keepdim=True)
    return torch.addcmul(self.bias, centred * torch.rsqrt(var + self.eps), self.weight)


def with_functional(self, x):  # correct: torch's own
    return nn.functional.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


def unbiased(self, x):
    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + self.eps) * (
        self.weight
    ) + self.bias


def eps_outside(self, x):
    mean, std = x.mean(-1, keepdim=True), x.std(-1, keepdim=True, unbiased=False)
    return (x - mean) / (std + self.eps) * self.weight + self.bias


def eps_hard_coded(self, x):
    var = x.var(-1, keepdim=True, unbiased=False)
    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(var + 1e-5) * self.weight + self.bias


def no_root(self, x):
    var = x.var(-1, keepdim=True, unbiased=False)
    return (x - x.mean(-1, keepdim=True)) / (var + self.eps) * self.weight + self.bias


def not_centred(self, x):
    var = x.var(-1, keepdim=True, unbiased=False)
    return x / torch.sqrt(var + self.eps) * self.weight + self.bias


def wrong_dim(self, x):
    var = x.var(1, keepdim=True, unbiased=False)
    return (x - x.mean(1, keepdim=True)) / torch.sqrt(var + self.eps) * self.weight + self.bias


def no_affine(self, x):
    var = x.var(-1, keepdim=True, unbiased=False)
    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(var + self.eps)


def bias_first(self, x):
    return (no_affine(self, x) + self.bias) * self.weight


def swapped(self, x):
    return no_affine(self, x) * self.bias + self.weight


def detached(self, x):
    return no_affine(self, x) * self.weight.detach() + self.bias.detach()


def weight_detached(self, x):
    return no_affine(self, x) * self.weight.detach() + self.bias


def unbiased_std(self, x):
    return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + self.eps) * (
        self.weight
    ) + self.bias


def eps_after_division(self, x):
    centred = x - x.mean(-1, keepdim=True)
    return (centred / centred.pow(2).mean(-1, keepdim=True).sqrt() + self.eps) * self.weight + (
        self.bias
    )


def gain_plus_bias(self, x):
    return ours(LayerNormPlain(), x) * (self.weight + self.bias)


def gain_times_bias(self, x):
    return ours(LayerNormPlain(), x) * self.weight * self.bias


def no_keepdim(self, x):
    mean, var = x.mean(-1), x.var(-1, unbiased=False)
    return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def mean_wrong_dim(self, x):
    var = x.var(-1, keepdim=True, unbiased=False)
    return (x - x.mean(1, keepdim=True)) / torch.sqrt(var + self.eps) * self.weight + self.bias


def var_of_everything(self, x):
    var = x.var(unbiased=False)
    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(var + self.eps) * self.weight + self.bias


def mean_added(self, x):
    var = x.var(-1, keepdim=True, unbiased=False)
    return (x + x.mean(-1, keepdim=True)) / torch.sqrt(var + self.eps) * self.weight + self.bias


def times_std(self, x):
    var = x.var(-1, keepdim=True, unbiased=False)
    return (x - x.mean(-1, keepdim=True)) * torch.sqrt(var + self.eps) * self.weight + self.bias


class LayerNormPlain:  # a bare normalisation, eps 1e-5
    eps, weight, bias = 1e-5, 1.0, 0.0


class DefaultEps(make_layer_norm(ours)):
    def __init__(self, n_embd, eps=1e-6):  # another default than nn.LayerNorm's
        super().__init__(n_embd, eps)


class NoEpsKept(make_layer_norm(ours)):
    def __init__(self, n_embd, eps=1e-5):
        super().__init__(n_embd, eps)
        del self.eps


def test_layer_norm_passes_correct_code(capsys):
    for body in (ours, other_way, with_functional):
        assert_passes(check_layer_norm, make_layer_norm(body), capsys)


def test_layer_norm_check_leaves_the_global_rng_alone():
    torch.manual_seed(3)
    before = torch.get_rng_state()
    check_layer_norm(make_layer_norm(ours))
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize(
    "buggy, hint",
    [
        (stub, "not implemented yet"),
        (make_layer_norm(lambda self, x: stub()), "not implemented yet"),
        (make_layer_norm(unbiased), "unbiased variance"),
        (make_layer_norm(eps_outside), "outside the square root"),
        (make_layer_norm(eps_hard_coded), "eps is ignored"),
        (make_layer_norm(no_root), "not by its square root"),
        (make_layer_norm(not_centred), "mean is not subtracted"),
        (make_layer_norm(wrong_dim), "wrong dimension"),
        (make_layer_norm(no_affine), "gain and bias are not applied"),
        (make_layer_norm(bias_first), "bias is added before the gain"),
        (make_layer_norm(swapped), "swapped"),
        (make_layer_norm(unbiased_std), "unbiased standard deviation (x.std"),
        (make_layer_norm(eps_after_division), "added after the division"),
        (make_layer_norm(gain_plus_bias), "x_hat * (weight + bias)"),
        (make_layer_norm(gain_times_bias), "the bias multiplies too"),
        (make_layer_norm(no_keepdim), "keepdim=True"),
        (DefaultEps, "its default is not 1e-5"),
        (make_layer_norm(mean_wrong_dim), "over different dimensions"),
        (make_layer_norm(var_of_everything), "over different dimensions"),
        (make_layer_norm(mean_added), "the mean is added"),
        (make_layer_norm(times_std), "it is divided by it"),
        (NoEpsKept, "keep the eps given to __init__"),
        (make_layer_norm(ours, params=False), "not a learnable parameter"),
        (make_layer_norm(ours, init=(0.0, 0.0)), "should start at ones"),
        (make_layer_norm(ours, dtype=torch.float64), "float32"),
        (make_layer_norm(detached), "could not learn"),
        (make_layer_norm(weight_detached), "no gradient reaches"),
    ],
)
def test_layer_norm_names_the_mistake(buggy, hint):
    assert_fails(check_layer_norm, buggy, hint)
