"""The transformer block (lesson 05): communication (attention) then computation (MLP).

Pre-LayerNorm with residual connections, as in GPT-2:

    x = x + attention(ln1(x))      # tokens talk to each other
    x = x + feedforward(ln2(x))    # each token thinks on its own

The residual stream ``x`` passes through untouched except for what each sub-layer *adds*, so
gradients flow straight from the loss to the first layer even in deep stacks.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from shared.attention import CausalSelfAttention

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


class FeedForward(nn.Module):
    """Position-wise MLP: expand 4x, non-linearity, project back (same weights at every position)."""

    def __init__(self, n_embd: int, dropout: float = 0.0, activation: str = "gelu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.net = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),  # (B, T, C) -> (B, T, 4C)
            ACTIVATIONS[activation](),
            nn.Linear(4 * n_embd, n_embd),  # (B, T, 4C) -> (B, T, C)
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, T, C)


class LayerNorm(nn.Module):
    """LayerNorm from scratch, the same maths as ``nn.LayerNorm(n_embd)`` (which the blocks use:
    one fused kernel). Each position's vector of C features is centred and scaled to variance 1
    (the *biased* variance, as in the paper; ``eps`` inside the root keeps a flat vector from
    dividing by zero), then a learned gain and bias let the model undo that where it helps."""

    def __init__(self, n_embd: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n_embd))  # the gain, (C,)
        self.bias = nn.Parameter(torch.zeros(n_embd))  # (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)  # (B, T, 1)
        var = x.var(dim=-1, keepdim=True, correction=0)  # (B, T, 1), biased
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias  # (B, T, C)


class Block(nn.Module):
    """One transformer block: pre-norm attention and feed-forward, each wrapped in a residual."""

    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float = 0.0):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.sa = CausalSelfAttention(n_embd, n_head, block_size, dropout)
        self.ln2 = nn.LayerNorm(n_embd)
        self.ffwd = FeedForward(n_embd, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C)."""
        x = x + self.sa(self.ln1(x))  # (B, T, C)
        x = x + self.ffwd(self.ln2(x))  # (B, T, C)
        return x
