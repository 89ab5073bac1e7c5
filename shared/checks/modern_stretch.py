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


def _reference(G, steps, coefficients=COEFFICIENTS, normalise=True, transpose=True):
    a, b, c = coefficients
    tall = transpose and G.size(0) > G.size(1)
    X = G.T if tall else G
    if normalise:
        X = X / (X.norm() + 1e-7)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if tall else X


def _mistakes(G, steps):
    return {
        "G is not divided by its norm first: the iteration only converges when every singular "
        "value is at most 1": lambda: _reference(G, steps, normalise=False),
        "`steps` is ignored: run the update exactly `steps` times": [
            lambda s=s: _reference(G, s) for s in (1, 5, 10) if s != steps],
        "it returns the transpose for a tall matrix: transpose back at the end": lambda: (
            _reference(G, steps).T),
    }  # fmt: skip


def _muon_direction(G: torch.Tensor) -> torch.Tensor:
    """The update direction ``torch.optim.Muon`` takes for gradient G (one step, no momentum)."""
    p = torch.nn.Parameter(torch.zeros_like(G))
    p.grad = G.clone()
    opt = torch.optim.Muon([p], lr=1.0, momentum=0.0, nesterov=False, weight_decay=0.0,
                           adjust_lr_fn="original")  # fmt: skip
    opt.step()
    scale = max(1.0, G.size(0) / G.size(1)) ** 0.5  # Muon's "original" learning-rate adjustment
    return -p.detach() / scale


def check_newton_schulz(newton_schulz) -> None:
    """``newton_schulz(G, steps)``: matches Keller Jordan's quintic iteration (float32) and the
    direction ``torch.optim.Muon`` steps in (bfloat16 there, so loosely)."""
    __tracebackhide__ = True
    name = "newton_schulz"
    require_callable(name, newton_schulz, "the newton_schulz function")
    g = torch.Generator().manual_seed(0)
    for shape, steps in (((8, 20), 5), ((24, 6), 5), ((12, 12), 3)):
        G = torch.randn(*shape, generator=g)
        G = G / G.norm() * 0.5  # small: without the normalisation it still stays finite
        out = call(name, newton_schulz, G, steps, what=f"newton_schulz(G {shape}, steps={steps})")
        if not isinstance(out, torch.Tensor) or out.shape != G.shape:
            fail(name, f"the result should have G's shape {shape}, got {shape_of(out)}.")
        if close(out, _reference(G, steps), atol=1e-4, rtol=1e-3):
            continue
        if not torch.isfinite(out).all():
            fail(name, "the iteration blew up (NaN or inf): X must start as G / ||G|| (every "
                 "singular value <= 1) and the update is a X + (b A + c A^2) X with "
                 "(a, b, c) = (3.4445, -4.7750, 2.0315).")  # fmt: skip
        mistake = matching_mistake(out, _mistakes(G, steps), atol=1e-4, rtol=1e-3)
        if mistake:
            fail(name, f"looks like {mistake}.")
        fail(name, f"newton_schulz(G {shape}, steps={steps}) differs from the quintic "
             "iteration X <- a X + (b A + c A^2) X, A = X X^T, started from G / ||G||.")  # fmt: skip
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
