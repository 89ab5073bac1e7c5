"""A bigram-sized language model with dropout that records every call (lesson 06's checks)."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn import functional as F

V, C = 16, 8


class TinyLM(nn.Module):
    """A bigram-sized language model with dropout that records how it is called."""

    def __init__(self, seed: int = 0, dropout: float = 0.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = nn.Embedding(V, C)
        self.head = nn.Linear(C, V)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.drop = nn.Dropout(dropout)
        self.calls: list[dict] = []

    def forward(self, idx, targets=None):
        logits = self.head(self.drop(self.emb(idx)))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, V), targets.reshape(-1))
        self.calls.append(
            {
                "training": self.training,
                "grad": torch.is_grad_enabled(),
                "idx": idx.detach().clone(),
                "targets": None if targets is None else targets.detach().clone(),
                "loss": None if loss is None else loss.item(),
            }
        )
        return logits, loss
