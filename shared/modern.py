"""A modern GPT (lesson 10): what changed in the transformer after GPT-2.

The same decoder-only language model as ``shared.model.GPT`` (characters in, next-character
logits out), with the block that nanochat, modded-nanogpt and the Llama family use:

    idx (B, T) -> token embedding (no position table)           (B, T, C)
               -> n_layer x ModernBlock:
                    x = x + attention(rmsnorm(x))   q, k: RMSNorm (QK-norm), then RoPE
                    x = x + mlp(rmsnorm(x))         ReLU^2 (or SwiGLU)
               -> RMSNorm -> lm_head -> cap * tanh(logits / cap)  (B, T, vocab_size)

- ``RMSNorm``: LayerNorm without the mean and the bias: scale each vector to unit RMS.
- ``rope_angles`` / ``apply_rope``: rotary position embeddings. Each pair of channels of q and
  k is rotated by an angle proportional to the position, so q·k depends only on the distance.
- ``relu_squared``, ``ReluSquaredMLP`` and ``SwiGLU``: the feed-forwards.
- no biases anywhere; every output projection (attention and MLP) starts at zero, so each block
  starts as the identity and the residual stream carries the embeddings straight to the head.
- ``softcap``: logits squashed smoothly into (-cap, cap), so no logit runs away early.

The optimizer that goes with it (Muon for the hidden matrices, AdamW for the rest) lives in
``shared.optimizers``; the KV-cache variant in ``shared.modern_cache``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.nn import functional as F

from shared.attention import attention_weights, merge_heads, split_heads
from shared.model import GPTConfig

ARCHITECTURE = "modern"  # what checkpoints record (the GPT of lessons 03-08 is "gpt")
MLPS = ("relu2", "swiglu")


@dataclass
class ModernConfig(GPTConfig):
    """``GPTConfig`` plus the modern choices. ``softcap`` 0 turns the logit cap off."""

    mlp: str = "relu2"  # "relu2" (ReLU squared, nanochat) or "swiglu" (Llama)
    softcap: float = 15.0
    rope_base: float = 10000.0  # the slowest rotation: one turn every ~2*pi*base positions

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mlp not in MLPS:
            raise ValueError(f"mlp must be one of {MLPS}, got {self.mlp!r}")
        if (self.n_embd // self.n_head) % 2:
            raise ValueError(
                f"head size n_embd/n_head = {self.n_embd // self.n_head} must be even: RoPE "
                "rotates channels in pairs"
            )
        if not (self.softcap >= 0 and math.isfinite(self.softcap)):
            raise ValueError(f"softcap must be >= 0 (0 = off), got {self.softcap!r}")
        if not (self.rope_base > 1 and math.isfinite(self.rope_base)):
            raise ValueError(f"rope_base must be > 1, got {self.rope_base!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (``torch.load(weights_only=True)``); the ints stay ints."""
        data = asdict(self)
        for key in ("dropout", "softcap", "rope_base"):
            data[key] = float(data[key])
        return data


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight over the last dim: every vector gets RMS 1 (times a
    learned gain). No mean subtracted, no bias: cheaper than LayerNorm and just as good."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)
        return x / rms * self.weight  # (..., dim)


def rope_angles(
    head_size: int, n_positions: int, base: float = 10000.0, start: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angles, each (n_positions, head_size // 2).

    Channel pair i of position p is rotated by p * base**(-2i / head_size): the first pairs
    turn fast (they see fine distances), the last ones slowly (coarse distances).
    """
    pairs = torch.arange(0, head_size, 2, dtype=torch.float32) / head_size  # (hs/2,)
    frequencies = base**-pairs  # radians per position, from 1 down to ~1/base
    positions = torch.arange(start, start + n_positions, dtype=torch.float32)  # (T,)
    angles = torch.outer(positions, frequencies)  # (T, hs/2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., T, hs) by the angles of its positions (cos, sin: (T, hs/2)).

    Channel i is paired with channel i + hs/2 (the "halves" layout of GPT-NeoX and Llama),
    and each pair (a, b) becomes (a cos - b sin, a sin + b cos): a 2-D rotation, so lengths are
    kept and q_m · k_n depends on the positions only through m - n.
    """
    half = x.size(-1) // 2
    a, b = x[..., :half], x[..., half:]  # (..., T, hs/2) each
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)  # (..., T, hs)


def relu_squared(x: torch.Tensor) -> torch.Tensor:
    """ReLU(x)^2: zero for x < 0, x^2 above (smooth at 0, sparse like ReLU)."""
    return F.relu(x).square()


class ReluSquaredMLP(nn.Module):
    """Expand 4x, ReLU^2, project back; no biases (nanochat's and modded-nanogpt's MLP)."""

    def __init__(self, n_embd: int):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=False)
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(relu_squared(self.c_fc(x)))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class SwiGLU(nn.Module):
    """Llama's gated MLP: silu(x W_gate) * (x W_up), projected back. Three matrices, so the
    hidden size is 8/3 C (rounded up to a multiple of 8) to keep the parameters of a 4x MLP."""

    def __init__(self, n_embd: int):
        super().__init__()
        hidden = 8 * math.ceil(8 * n_embd / 3 / 8)
        self.gate = nn.Linear(n_embd, hidden, bias=False)
        self.up = nn.Linear(n_embd, hidden, bias=False)
        self.c_proj = nn.Linear(hidden, n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.silu(self.gate(x)) * self.up(x))  # (B, T, C)


class ModernAttention(nn.Module):
    """Causal self-attention with QK-norm and RoPE, no biases."""

    def __init__(self, config: ModernConfig):
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.head_size = config.n_embd // config.n_head
        self.block_size, self.rope_base = config.block_size, config.rope_base
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        cos, sin = rope_angles(self.head_size, config.block_size, config.rope_base)
        self.register_buffer("cos", cos, persistent=False)  # (block_size, hs/2)
        self.register_buffer("sin", sin, persistent=False)

    def qkv(self, x: torch.Tensor, start: int = 0):
        """x (B, T, C) at positions start.. -> q, k, v (B, nh, T, hs); q and k normalised
        (QK-norm: the scores stay in a sane range whatever the weights do) and rotated."""
        T = x.size(1)
        q, k, v = (split_heads(t, self.n_head) for t in self.c_attn(x).split(self.n_embd, dim=2))
        q = F.rms_norm(q, (self.head_size,))
        k = F.rms_norm(k, (self.head_size,))
        cos, sin = self.cos[start : start + T], self.sin[start : start + T]  # (T, hs/2)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> wei (B, nh, T, T), by the teaching formula."""
        q, k, _ = self.qkv(x)
        return attention_weights(q, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x)  # (B, nh, T, hs) each
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        return self.c_proj(merge_heads(y))  # (B, T, C)


class ModernBlock(nn.Module):
    """Pre-norm block with RMSNorm; same attribute names as ``shared.block.Block``."""

    def __init__(self, config: ModernConfig):
        super().__init__()
        self.ln1 = RMSNorm(config.n_embd)
        self.sa = ModernAttention(config)
        self.ln2 = RMSNorm(config.n_embd)
        self.ffwd = (
            SwiGLU(config.n_embd) if config.mlp == "swiglu" else ReluSquaredMLP(config.n_embd)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.sa(self.ln1(x))  # (B, T, C)
        return x + self.ffwd(self.ln2(x))  # (B, T, C)


class ModernGPT(nn.Module):
    """The modern decoder-only language model; ``forward`` and ``attention_weights`` as GPT's."""

    architecture = ARCHITECTURE

    def __init__(self, config: ModernConfig):
        super().__init__()
        if config.vocab_size is None:
            raise ValueError("ModernConfig.vocab_size is not set: use the tokenizer's vocab_size")
        if config.dropout:
            raise ValueError("the modern GPT has no dropout (at this scale it only slows it down)")
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(ModernBlock(config) for _ in range(config.n_layer))
        self.ln_f = RMSNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Embeddings N(0, 1) (RMSNorm follows); matrices uniform with std 1/sqrt(fan_in);
        every output projection and the head at zero: each block starts as the identity and
        the first prediction is uniform (loss = ln(vocab_size))."""
        nn.init.normal_(self.token_embedding.weight, std=1.0)
        for name, p in self.named_parameters():
            if p.dim() == 2 and "token_embedding" not in name:
                bound = math.sqrt(3.0 / p.size(1))
                nn.init.uniform_(p, -bound, bound)
        for block in self.blocks:
            nn.init.zeros_(block.sa.c_proj.weight)
            nn.init.zeros_(block.ffwd.c_proj.weight)
        nn.init.zeros_(self.lm_head.weight)

    def embed(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """idx (B, T) -> x (B, T, C): what each character is (positions come from RoPE)."""
        self.config.check_length(start + idx.size(1))  # GPTConfig's rule
        return self.token_embedding(idx)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Residual stream (B, T, C) -> soft-capped logits (B, T, V)."""
        logits = self.lm_head(self.ln_f(x))
        cap = self.config.softcap
        return cap * torch.tanh(logits / cap) if cap else logits

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """idx (B, T) -> logits (B, T, vocab_size), and mean cross-entropy if targets (B, T)."""
        x = self.embed(idx)  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        logits = self.head(x)  # (B, T, V)
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    @torch.no_grad()
    def attention_weights(self, idx: torch.Tensor) -> torch.Tensor:
        """(n_layer, B, n_head, T, T), like ``GPT.attention_weights`` (eval mode, restored)."""
        was_training = self.training
        self.eval()
        try:
            x, weights = self.embed(idx), []
            for block in self.blocks:
                weights.append(block.sa.weights(block.ln1(x)))
                x = block(x)
            return torch.stack(weights)
        finally:
            self.train(was_training)

    def num_params(self, non_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.token_embedding.weight.numel() if non_embedding else n


def is_modern(model) -> bool:
    """True for a ``ModernGPT`` (also wrapped by DDP or torch.compile)."""
    model = getattr(model, "module", model)
    return getattr(getattr(model, "_orig_mod", model), "architecture", None) == ARCHITECTURE
