"""Muon for the hidden matrices, AdamW for the rest (lesson 10's optimizer).

Muon (Keller Jordan, 2024) takes SGD's momentum and replaces each 2-D update by its nearest
orthogonal matrix (Newton-Schulz iteration): every direction of the matrix moves by the same
amount, however lopsided the gradient. It is only for matrices inside the network, so the
token embedding, the output head and the RMSNorm gains go to AdamW, as in modded-nanogpt and
nanochat. ``torch.optim.Muon`` (torch >= 2.9) does the maths.

``MuonAdamW`` looks like one optimizer to the training loop: the loop sets one learning rate
per step (the schedule) in ``param_groups[0]["lr"]``, and each inner group gets that times its
own ``lr_scale`` (Muon's rate is ``muon_lr / learning_rate`` of AdamW's).
"""

from __future__ import annotations

import torch

from shared.modern import ModernGPT

MUON_LR = 0.02  # Muon's rate when the schedule is at its peak
ADAM_BETAS = (0.9, 0.99)


def muon_params(model: ModernGPT) -> tuple[list, list]:
    """(hidden matrices for Muon, everything else for AdamW)."""
    model = getattr(model, "module", model)
    hidden, other = [], []
    for name, p in model.named_parameters():
        is_hidden = p.dim() == 2 and name.startswith("blocks.")
        (hidden if is_hidden else other).append(p)
    return hidden, other


class MuonAdamW:
    """``torch.optim.Muon`` on the hidden matrices plus ``torch.optim.AdamW`` on the rest."""

    def __init__(self, model, learning_rate: float, muon_lr: float = MUON_LR,
                 weight_decay: float = 0.0):  # fmt: skip
        hidden, other = muon_params(model)
        self.muon = torch.optim.Muon(
            hidden, lr=muon_lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw"
        )
        self.adamw = torch.optim.AdamW(other, lr=learning_rate, betas=ADAM_BETAS, weight_decay=0.0)
        for group in self.muon.param_groups:
            group["lr_scale"] = muon_lr / learning_rate
        for group in self.adamw.param_groups:
            group["lr_scale"] = 1.0
        self.param_groups = [{"lr": learning_rate}]  # the schedule writes here

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        lr = self.param_groups[0]["lr"]
        for optimizer in (self.muon, self.adamw):
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            optimizer.step()

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict(),
                "lr": float(self.param_groups[0]["lr"])}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])
        self.param_groups[0]["lr"] = float(state["lr"])


def newton_schulz(G: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Muon's orthogonalisation, in float32: G (m, n) -> ~U V^T (its SVD's U S V^T with every
    singular value pushed towards 1). Divide by the Frobenius norm (so every singular value is
    <= 1), then ``steps`` times X <- a X + (b A + c A^2) X with A = X X^T, on the wide side."""
    a, b, c = 3.4445, -4.7750, 2.0315  # Keller Jordan's quintic: steep at 0, ends near 1
    X = G.T if G.size(0) > G.size(1) else G  # work with the wide shape: A is the small Gram
    X = X / (X.norm() + eps)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if G.size(0) > G.size(1) else X
