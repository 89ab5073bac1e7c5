"""Stretch check for lesson 10: Muon's Newton-Schulz orthogonalisation."""

from __future__ import annotations

import torch

from shared.checks._calls import call
from shared.checks._core import (
    Exercise,
    close,
    fail,
    matching_mistake,
    passed,
    require_callable,
    shape_of,
)
from shared.checks._hints import crash_hint

EXERCISES = [
    Exercise(
        name="newton_schulz",
        check="check_newton_schulz",
        target="newton_schulz",
        description="newton_schulz(G, steps): Muon's orthogonalisation of a matrix",
        optional=True,
    ),
]

COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def _reference(G, steps, coefficients=COEFFICIENTS, normalise=True, transpose=True, norm=None):
    a, b, c = coefficients
    tall = transpose and G.size(0) > G.size(1)
    X = G.T if tall else G
    if norm is not None:  # another norm than the Frobenius norm of the whole matrix
        X = X / (norm(X) + 1e-7)
    elif normalise:
        X = X / (X.norm() + 1e-7)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if tall else X


_NORMS = [
    lambda X: X.norm(dim=0, keepdim=True),
    lambda X: X.norm(dim=1, keepdim=True),
    lambda X: X.abs().max(),
    lambda X: torch.linalg.matrix_norm(X, ord=2),
    lambda X: X.norm() ** 2,
]


def _mistakes(G, steps):
    a, b, c = COEFFICIENTS
    orders = [(a, c, b), (b, a, c), (b, c, a), (c, a, b), (c, b, a)]
    return {
        "G is not divided by its norm first: the iteration only converges when every singular "
        "value is at most 1": lambda: _reference(G, steps, normalise=False),
        "G is divided by another norm than the Frobenius norm of the whole matrix "
        "(sqrt of the sum of all squared entries, G.norm())": [
            lambda n=n: _reference(G, steps, norm=n) for n in _NORMS],
        "the update runs one step too many or too few: exactly `steps` times": [
            lambda s=s: _reference(G, s) for s in (steps - 1, steps + 1)],
        "`steps` is ignored: run the update exactly `steps` times": [
            lambda s=s: _reference(G, s) for s in (1, 5, 10) if abs(s - steps) > 1],
        "the coefficients are in the wrong order: (a, b, c) = (3.4445, -4.7750, 2.0315), a for "
        "X, b for A X, c for A A X": [
            lambda o=o: _reference(G, steps, coefficients=o) for o in orders],
        "it returns the transpose for a tall matrix: transpose back at the end": lambda: (
            _reference(G, steps).T),
    }  # fmt: skip


def _muon_direction(G: torch.Tensor) -> torch.Tensor:
    """The update direction ``torch.optim.Muon`` takes for gradient G (one step, no momentum).

    Its own orthogonalisation when this torch has it (a private function: checked by name and
    signature, else one optimiser step, which costs ~6 s the first time as it loads dynamo)."""
    try:
        from torch.optim._muon import _zeropower_via_newtonschulz as orthogonalise

        return orthogonalise(G, COEFFICIENTS, 5, 1e-7).float()
    except (ImportError, TypeError):
        pass
    p = torch.nn.Parameter(torch.zeros_like(G))
    p.grad = G.clone()
    opt = torch.optim.Muon([p], lr=1.0, momentum=0.0, nesterov=False, weight_decay=0.0,
                           adjust_lr_fn="original")  # fmt: skip
    opt.step()
    scale = max(1.0, G.size(0) / G.size(1)) ** 0.5  # Muon's "original" learning-rate adjustment
    return -p.detach() / scale


_CRASHES = [
    (None, "mat1 and mat2 shapes cannot be multiplied",
     "For X (m, n), A = X X^T is the (m, m) matrix product (with * it stays (m, n)), and "
     "(b A + c A A), an (m, m) matrix, multiplies X from the left."),
    (None, "must match the size of tensor",
     "(b A + c A A) is (m, m) and X is (m, n): the polynomial multiplies X (a matrix product) "
     "before it is added to a X."),
]  # fmt: skip


def _coefficients_used(G, out):
    """The (a, b, c) that one step from G / ||G|| would need to give ``out``, when some do."""
    tall = G.size(0) > G.size(1)
    X = (G.T if tall else G) / (G.norm() + 1e-7)
    A = X @ X.T
    terms = [X, A @ X, A @ A @ X]
    if tall:
        terms = [t.T for t in terms]
    basis = torch.stack([t.flatten() for t in terms], dim=1).double()
    fit = torch.linalg.lstsq(basis, out.detach().flatten().double().unsqueeze(1)).solution
    a, b, c = (float(v) for v in fit.flatten())
    if (a, b, c) == COEFFICIENTS or not close(out, _reference(G, 1, coefficients=(a, b, c))):
        return None
    return a, b, c


def _check_zero(name, newton_schulz):
    """Muon meets an all-zero gradient (a weight that got no gradient yet): no NaN then."""
    __tracebackhide__ = True
    Z = torch.zeros(4, 6)
    what = "newton_schulz(torch.zeros(4, 6), steps=5)"
    out = call(name, newton_schulz, Z, 5, what=what, hint=crash_hint(what, _CRASHES))
    if isinstance(out, torch.Tensor) and not torch.isfinite(out).all():
        fail(name, f"{what} returned NaN: for a zero matrix ||G|| = 0, and G / ||G|| is 0 / 0. "
             "The 1e-7 in the spec's denominator, ||G|| + 1e-7, keeps X at 0 (Muon meets a "
             "zero gradient, e.g. at its first step for a weight that got none).")  # fmt: skip
    if not (isinstance(out, torch.Tensor) and out.shape == Z.shape and not out.any()):
        fail(name, f"{what} should return zeros of G's shape (a zero matrix has no direction), "
             f"got {shape_of(out)}.")  # fmt: skip


def _check_tiny(name, newton_schulz):
    """||G|| = 2e-7, the size of the 1e-7: where the epsilon goes, and its sign, show."""
    __tracebackhide__ = True
    G = torch.randn(5, 3, generator=torch.Generator().manual_seed(7))
    G = G / G.norm() * 2e-7
    what = "newton_schulz(G (5, 3) with ||G|| = 2e-7, steps=1)"
    out = call(name, newton_schulz, G, 1, what=what, hint=crash_hint(what, _CRASHES))
    if close(out, _reference(G, 1), atol=1e-4, rtol=1e-3):
        return

    def dividing_by(norm):  # _reference adds 1e-7 to what `norm` gives: take it off again
        return lambda: _reference(G, 1, norm=lambda X: norm(X) - 1e-7)

    mistake = matching_mistake(out, {
        "the epsilon is subtracted: the spec divides by ||G|| + 1e-7": dividing_by(
            lambda X: X.norm() - 1e-7),
        "the norm is clamped at 1e-7 (max(||G||, 1e-7)): the spec adds it, ||G|| + 1e-7": (
            dividing_by(lambda X: X.norm().clamp_min(1e-7))),
    }, atol=1e-4, rtol=1e-3)  # fmt: skip
    fail(name, f"{what} differs from the spec's: " + (
        f"looks like {mistake}." if mistake else "X starts as G / (||G|| + 1e-7), which for so "
        "small a G is not G / ||G||."))  # fmt: skip


def check_newton_schulz(newton_schulz) -> None:
    """``newton_schulz(G, steps)``: matches Keller Jordan's quintic iteration (float32) and the
    direction ``torch.optim.Muon`` steps in (bfloat16 there, so loosely)."""
    __tracebackhide__ = True
    name = "newton_schulz"
    require_callable(name, newton_schulz, "the newton_schulz function")
    g = torch.Generator().manual_seed(0)
    # One step first: no wrong version blows up yet, so each mistake's result can be compared.
    for shape, steps in (((6, 10), 1), ((8, 20), 5), ((24, 6), 5), ((12, 12), 3)):
        G = torch.randn(*shape, generator=g)
        G = G / G.norm() * 0.5  # small: without the normalisation it still stays finite
        what = f"newton_schulz(G {shape}, steps={steps})"
        out = call(name, newton_schulz, G, steps, what=what, hint=crash_hint(what, _CRASHES))
        if not isinstance(out, torch.Tensor) or out.shape != G.shape:
            fail(name, f"the result should have G's shape {shape}, got {shape_of(out)}.")
        if out.dtype != G.dtype:
            fail(name, f"{what} returned {out.dtype}: the spec works in float32, G's dtype "
                 "(in lower precision the result drifts from the reference).")  # fmt: skip
        if close(out, _reference(G, steps), atol=1e-4, rtol=1e-3):
            continue
        if not torch.isfinite(out).all():
            fail(name, "the iteration blew up (NaN or inf): X must start as G / ||G|| (every "
                 "singular value <= 1) and the update is a X + (b A + c A^2) X with "
                 "(a, b, c) = (3.4445, -4.7750, 2.0315).")  # fmt: skip
        mistake = matching_mistake(out, _mistakes(G, steps), atol=1e-4, rtol=1e-3)
        if mistake:
            fail(name, f"looks like {mistake}.")
        if steps == 1 and (used := _coefficients_used(G, out)) is not None:
            fail(name, f"{what} computes a X + (b A + c A^2) X with (a, b, c) = ({used[0]:.4f}, "
                 f"{used[1]:.4f}, {used[2]:.4f}); the spec's are (3.4445, -4.7750, 2.0315): "
                 "check each coefficient's digits and sign.")  # fmt: skip
        fail(name, f"newton_schulz(G {shape}, steps={steps}) differs from the quintic "
             "iteration X <- a X + (b A + c A^2) X, A = X X^T, started from G / ||G||.")  # fmt: skip
    _check_zero(name, newton_schulz)
    _check_tiny(name, newton_schulz)
    G = torch.randn(16, 48, generator=g)
    out = call(name, newton_schulz, G, 5, what="newton_schulz(G (16, 48), 5)")
    singular = torch.linalg.svdvals(out)
    if not (singular.min() > 0.3 and singular.max() < 1.6):
        fail(name, f"after 5 steps every singular value should be near 1 (0.3 .. 1.6), got "
             f"{singular.min():.2f} .. {singular.max():.2f}.")  # fmt: skip
    if not close(out, _muon_direction(G), atol=0.05, rtol=0.05):
        fail(name, "the result differs from the direction torch.optim.Muon steps in.")
    passed(name, f"singular values {singular.min():.2f} .. {singular.max():.2f}, the same "
           "direction as torch.optim.Muon.")  # fmt: skip
