"""Lesson 10's checks: stub, reference, a differently written correct version and the classic
mistakes, each rejected with its own hint."""

import pytest
import torch
import torch.nn as nn
from checkhelpers import assert_fails, assert_passes, stub
from torch.nn import functional as F

from shared import modern as ref
from shared.checks import (
    EXERCISES,
    check_apply_rope,
    check_newton_schulz,
    check_relu2_mlp,
    check_rmsnorm,
)
from shared.optimizers import newton_schulz as ref_newton_schulz


def test_exercises_are_registered_for_lesson_10():
    exercises = EXERCISES["10_modern_gpt"]
    assert [ex.check for ex in exercises if not ex.optional] == [
        "check_rmsnorm", "check_apply_rope", "check_relu2_mlp",
    ]  # fmt: skip
    assert [ex.check for ex in exercises if ex.optional] == ["check_newton_schulz", "check_narrow"]


# --- RMSNorm ----------------------------------------------------------------------------------
def rmsnorm_with(forward):
    return type("RMSNorm", (ref.RMSNorm,), {"forward": forward})


def rms_rsqrt(self, x):  # written differently: rsqrt and a mean of x * x
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * self.weight


def rms_layernorm(self, x):
    return F.layer_norm(x, (x.size(-1),), self.weight, None, self.eps)


def rms_no_eps(self, x):
    return x / x.pow(2).mean(-1, keepdim=True).sqrt() * self.weight


def rms_eps_outside(self, x):
    return x / (x.pow(2).mean(-1, keepdim=True).sqrt() + self.eps) * self.weight


def rms_no_gain(self, x):
    return x / (x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()


def rms_wrong_dim(self, x):
    return x / (x.pow(2).mean(1, keepdim=True) + self.eps).sqrt() * self.weight


def rms_norm_not_mean(self, x):
    return x / (x.pow(2).sum(-1, keepdim=True) + self.eps).sqrt() * self.weight


def rms_no_sqrt(self, x):
    return x / (x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rms_eps_hard_coded(self, x):
    return x / (x.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt() * self.weight


def rms_std(self, x):
    return x / (x.std(-1, keepdim=True) + self.eps) * self.weight


def rms_var(self, x):
    return x / (x.var(-1, keepdim=True, unbiased=False) + self.eps).sqrt() * self.weight


def rms_abs(self, x):
    return x / (x.abs().mean(-1, keepdim=True) + self.eps) * self.weight


def rms_times_rsqrt_wrong(self, x):
    return x / torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rms_gain_first(self, x):
    y = x * self.weight
    return y / (y.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()


def rms_no_keepdim(self, x):
    return x / (x.pow(2).mean(-1) + self.eps).sqrt() * self.weight


class RMSNormDetachedGain(ref.RMSNorm):
    def __init__(self, dim, eps=1e-6):
        super().__init__(dim, eps)
        del self.weight
        self.register_buffer("weight", torch.ones(dim))


def test_rmsnorm_check(capsys):
    assert_fails(check_rmsnorm, rmsnorm_with(stub), "not implemented yet")
    assert_passes(check_rmsnorm, ref.RMSNorm, capsys)
    assert_passes(check_rmsnorm, rmsnorm_with(rms_rsqrt), capsys)


@pytest.mark.parametrize(
    "forward, fragment",
    [
        (rms_layernorm, "that is LayerNorm"),
        (rms_no_eps, "`eps` is left out"),
        (rms_eps_outside, "added after the square root"),
        (rms_no_gain, "`self.weight` is not applied"),
        (rms_wrong_dim, "wrong dimension"),
        (rms_norm_not_mean, "not the root *mean* square"),
        (rms_no_sqrt, "without the square root"),
        (rms_eps_hard_coded, "left out or hard-coded"),
        (rms_std, "standard deviation"),
        (rms_var, "standard deviation"),
        (rms_abs, "mean absolute value"),
        (rms_times_rsqrt_wrong, "multiplies by the root mean square"),
        (rms_gain_first, "gain is applied before the normalisation"),
        (rms_no_keepdim, "keepdim=True"),
        (lambda self, x: x * self.weight, "x is not normalised"),
        (
            lambda self, x: x / (x.mean(-1, keepdim=True) + self.eps).sqrt() * self.weight,
            "the mean of x itself",
        ),
    ],
)
def test_rmsnorm_mistakes_get_their_hint(forward, fragment):
    assert_fails(check_rmsnorm, rmsnorm_with(forward), fragment)


def test_rmsnorm_without_a_parameter_gain_is_named():
    assert_fails(check_rmsnorm, RMSNormDetachedGain, "gets no gradient")


# --- RoPE -------------------------------------------------------------------------------------
def rope_complex(x, cos, sin):  # written differently: complex numbers, interleaved pairs
    z = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2).contiguous())
    return torch.view_as_real(z * torch.complex(cos, sin)).flatten(-2)


def rope_rotate_half(x, cos, sin):  # Hugging Face's style: x * cos + rotate_half(x) * sin
    half = x.size(-1) // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * torch.cat([cos, cos], -1) + rotated * torch.cat([sin, sin], -1)


def _halves(x):
    half = x.size(-1) // 2
    return x[..., :half], x[..., half:]


def rope_wrong_way(x, cos, sin):
    a, b = _halves(x)
    return torch.cat([a * cos + b * sin, -a * sin + b * cos], -1)


def rope_no_minus(x, cos, sin):
    a, b = _halves(x)
    return torch.cat([a * cos + b * sin, a * sin + b * cos], -1)


def rope_swapped_cos_sin(x, cos, sin):
    a, b = _halves(x)
    return torch.cat([a * sin - b * cos, a * cos + b * sin], -1)


def rope_halves_swapped(x, cos, sin):
    a, b = _halves(x)
    return torch.cat([a * sin + b * cos, a * cos - b * sin], -1)


def rope_unpaired(x, cos, sin):
    return x * torch.cat([cos, cos], -1) + x * torch.cat([sin, sin], -1)


def rope_absolute(x, cos, sin):  # adds a position-dependent vector: not relative
    return x + torch.cat([cos, sin], -1)


def rope_read_interleaved_write_halves(x, cos, sin):
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], -1)


def rope_read_halves_write_interleaved(x, cos, sin):
    a, b = _halves(x)
    return torch.stack([a * cos - b * sin, a * sin + b * cos], -1).flatten(-2)


def rope_both_minus(x, cos, sin):
    a, b = _halves(x)
    return torch.cat([a * cos - b * sin, b * cos - a * sin], -1)


def rope_first_half_only(x, cos, sin):
    a, b = _halves(x)
    return torch.cat([a * cos - b * sin, b], -1)


def rope_transposed_angles(x, cos, sin):
    return x * cos.T.repeat(1, 2)


def rope_in_place(x, cos, sin):
    a, b = _halves(x)
    new = torch.cat([a * cos - b * sin, a * sin + b * cos], -1)
    x.copy_(new)
    return x


def test_apply_rope_check(capsys):
    assert_fails(check_apply_rope, stub, "not implemented yet")
    assert_passes(check_apply_rope, ref.apply_rope, capsys)
    assert_passes(check_apply_rope, rope_complex, capsys)
    assert_passes(check_apply_rope, rope_rotate_half, capsys)


@pytest.mark.parametrize(
    "fn, fragment",
    [
        (rope_wrong_way, "turns the wrong way"),
        (rope_no_minus, "minus sign is missing"),
        (rope_swapped_cos_sin, "cos and sin are swapped"),
        (rope_halves_swapped, "wrong order"),
        (rope_unpaired, "without pairing"),
        (rope_absolute, "lengths changed"),
        (rope_in_place, "changed its input in place"),
        (rope_read_interleaved_write_halves, "pairing layouts are mixed"),
        (rope_read_halves_write_interleaved, "pairing layouts are mixed"),
        (rope_both_minus, "both sin terms carry a minus"),
        (rope_first_half_only, "only the first half was rotated"),
        (rope_transposed_angles, "cos and sin are (T, hs // 2)"),
    ],
)
def test_apply_rope_mistakes_get_their_hint(fn, fragment):
    assert_fails(check_apply_rope, fn, fragment)


def test_apply_rope_check_proves_the_relative_property():
    def rotate_by_square_of_position(x, cos, sin):  # a rotation, but angle ~ p^2: not relative
        T = x.size(-2)
        p = torch.arange(T, dtype=torch.float32)[:, None]
        angle = torch.atan2(sin, cos) * p  # position p: angle p * (p * freq)
        return ref.apply_rope(x, angle.cos(), angle.sin())

    assert_fails(check_apply_rope, rotate_by_square_of_position, "m - n =")


# --- ReLU² MLP --------------------------------------------------------------------------------
def mlp_with(forward):
    return type("ReluSquaredMLP", (ref.ReluSquaredMLP,), {"forward": forward})


def mlp_functional(self, x):  # written differently: F.linear and a clamp
    h = F.linear(x, self.c_fc.weight).clamp(min=0)
    return F.linear(h * h, self.c_proj.weight)


def test_relu2_mlp_check(capsys):
    assert_fails(check_relu2_mlp, mlp_with(stub), "not implemented yet")
    assert_passes(check_relu2_mlp, ref.ReluSquaredMLP, capsys)
    assert_passes(check_relu2_mlp, mlp_with(mlp_functional), capsys)


@pytest.mark.parametrize(
    "forward, fragment",
    [
        (lambda self, x: self.c_proj(F.relu(self.c_fc(x))), "not squared"),
        (lambda self, x: self.c_proj(self.c_fc(x) ** 2), "without the ReLU first"),
        (lambda self, x: self.c_proj(F.gelu(self.c_fc(x))), "GELU"),
        (lambda self, x: F.relu(self.c_proj(F.relu(self.c_fc(x)) ** 2)) ** 2, "follows c_proj"),
        (lambda self, x: self.c_proj(self.c_fc(x)), "no non-linearity"),
        (lambda self, x: self.c_proj(F.relu(self.c_fc(x)) * 2), "doubled, not squared"),
        (lambda self, x: self.c_proj(self.c_fc(F.relu(x) ** 2)), "comes before c_fc"),
        (lambda self, x: F.relu(self.c_fc(x)) ** 2, "c_proj brings it back"),
        (lambda self, x: self.c_proj(F.relu(self.c_fc(x)) ^ 2), "bitwise XOR"),
        (lambda self, x: self.c_fc(F.relu(self.c_proj(x)) ** 2), "each Linear must get the size"),
    ],
)
def test_relu2_mlp_mistakes_get_their_hint(forward, fragment):
    assert_fails(check_relu2_mlp, mlp_with(forward), fragment)


def test_relu2_mlp_needs_its_linears():
    class Renamed(nn.Module):
        def __init__(self, n_embd):
            super().__init__()
            self.up = nn.Linear(n_embd, 4 * n_embd, bias=False)

        def forward(self, x):
            return x

    assert_fails(check_relu2_mlp, Renamed, "`c_fc` and `c_proj`")


# --- Newton-Schulz (stretch) ------------------------------------------------------------------
COEF = (3.4445, -4.7750, 2.0315)


def ns_tall_side(G, steps=5):  # written differently: always X^T X on the right, never transposed
    a, b, c = COEF
    X = G / (G.norm() + 1e-7)
    for _ in range(steps):
        B = X.T @ X
        X = a * X + X @ (b * B + c * B @ B)
    return X


def ns_variant(G, steps, normalise=True, coef=COEF, transpose_back=True, eps=1e-7, norm=None,
               update="right"):  # fmt: skip
    a, b, c = coef
    tall = G.size(0) > G.size(1)
    X = G.T if tall else G
    if norm is not None:
        X = X / (norm(X) + eps)
    elif normalise:
        X = X / (X.norm() + eps)
    for _ in range(steps):
        A = X @ X.T if update != "elementwise" else X * X
        if update == "no_x":
            X = a * X + (b * A + c * A @ A)
        else:
            X = a * X + (b * A + c * A @ A) @ X
    return X.T if tall and transpose_back else X


def ns_clamped(G, steps):
    return ns_variant(G, steps, eps=0.0, norm=lambda X: X.norm().clamp_min(1e-7))


def test_newton_schulz_check(capsys):
    assert_fails(check_newton_schulz, stub, "not implemented yet")
    assert_passes(check_newton_schulz, ref_newton_schulz, capsys)
    assert_passes(check_newton_schulz, ns_tall_side, capsys)


@pytest.mark.parametrize(
    "fn, fragment",
    [
        (lambda G, steps: ns_variant(G, steps, normalise=False), "not divided by its norm"),
        (lambda G, steps: ns_variant(G, steps, coef=(COEF[0], COEF[2], COEF[1])), "wrong order"),
        (lambda G, steps: ns_variant(G, steps, coef=COEF[::-1]), "wrong order"),
        (lambda G, steps: ns_variant(G, steps) / 0.0, "blew up"),
        (lambda G, steps: ns_variant(G, steps, coef=(3.4445, -4.7750, 2.315)), "2.3150)"),
        (lambda G, steps: ns_variant(G, steps, coef=(3.4445, 4.7750, 2.0315)), "4.7750, 2.0315);"),
        (lambda G, steps: ns_variant(G, 5), "`steps` is ignored"),
        (lambda G, steps: ns_variant(G, steps, transpose_back=False), "shape"),
        (lambda G, steps: ns_variant(G, steps, eps=0.0), "returned NaN"),
        (lambda G, steps: ns_variant(G, steps, eps=0.0) + 1e-7, "returned NaN"),
        (lambda G, steps: ns_variant(G, steps, eps=-1e-7), "the epsilon is subtracted"),
        (ns_clamped, "clamped at 1e-7"),
        (lambda G, steps: ns_variant(G, steps - 1), "one step too many or too few"),
        (lambda G, steps: ns_variant(G, steps + 1), "one step too many or too few"),
        (lambda G, steps: ns_variant(G, steps, coef=(COEF[1], COEF[0], COEF[2])), "wrong order"),
        (lambda G, steps: ns_variant(G, steps, norm=lambda X: X.norm(dim=0)), "another norm"),
        (lambda G, steps: ns_variant(G, steps, norm=lambda X: X.abs().max()), "another norm"),
        (lambda G, steps: ns_variant(G, steps, update="no_x"), "multiplies X"),
        (lambda G, steps: ns_variant(G, steps, update="elementwise"), "(m, m) matrix product"),
        (lambda G, steps: ns_variant(G.double(), steps), "float32"),
    ],
)
def test_newton_schulz_mistakes_get_their_hint(fn, fragment):
    assert_fails(check_newton_schulz, fn, fragment)
