"""Lesson 10's rungs of the loss ladder: from lesson 05's GPT to the modern GPT, one change at a
time, each trained with the ladder's one recipe (``shared.lesson_tools.ladder.train_rung``).

``StepGPT`` is a measuring tool, like ``shared.lesson_tools.ladder.AblationBlock``: lesson 05's 4-block GPT
with switches for each modern change. The model you read is ``shared.modern.ModernGPT``; the
last two rungs are that model itself (trained with AdamW, then with Muon).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn import functional as F

from shared.attention import merge_heads, split_heads
from shared.lesson_tools import ladder
from shared.modern import ModernConfig, ModernGPT, RMSNorm, apply_rope, relu_squared, rope_angles
from shared.optimizers import MuonAdamW

# name -> the switches turned on so far (each rung adds one change to the one before)
STEPS = {
    "RMSNorm": dict(rms=True),
    "+ RoPE": dict(rms=True, rope=True),
    "+ ReLU²": dict(rms=True, rope=True, relu2=True),
    "+ QK-norm, no biases, zero-init": dict(rms=True, rope=True, relu2=True, modern_rest=True),
}
MODERN_RUNGS = (*STEPS, "+ logit soft-cap (modern GPT)", "+ Muon")


class StepAttention(nn.Module):
    def __init__(self, C, n_head, block_size, rope, qk_norm, bias):
        super().__init__()
        self.n_head, self.rope, self.qk_norm = n_head, rope, qk_norm
        self.c_attn = nn.Linear(C, 3 * C, bias=False)
        self.c_proj = nn.Linear(C, C, bias=bias)
        cos, sin = rope_angles(C // n_head, block_size)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x):
        T = x.size(1)
        q, k, v = (split_heads(t, self.n_head) for t in self.c_attn(x).split(x.size(2), dim=2))
        if self.qk_norm:
            q, k = F.rms_norm(q, (q.size(-1),)), F.rms_norm(k, (k.size(-1),))
        if self.rope:
            q, k = (
                apply_rope(q, self.cos[:T], self.sin[:T]),
                apply_rope(k, self.cos[:T], self.sin[:T]),
            )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(merge_heads(y))


class StepMLP(nn.Module):
    def __init__(self, C, relu2, bias):
        super().__init__()
        self.c_fc = nn.Linear(C, 4 * C, bias=bias)
        self.c_proj = nn.Linear(4 * C, C, bias=bias)
        self.act = relu_squared if relu2 else F.gelu

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


class StepBlock(nn.Module):
    def __init__(self, C, n_head, block_size, rms, rope, relu2, modern_rest):
        super().__init__()
        bias = not modern_rest
        norm = RMSNorm if rms else nn.LayerNorm
        self.ln1, self.ln2 = norm(C), norm(C)
        self.sa = StepAttention(C, n_head, block_size, rope, modern_rest, bias)
        self.ffwd = StepMLP(C, relu2, bias)

    def forward(self, x):
        x = x + self.sa(self.ln1(x))
        return x + self.ffwd(self.ln2(x))


class StepGPT(nn.Module):
    """Lesson 05's GPT with the modern changes switched on one by one (see ``STEPS``)."""

    def __init__(self, config, rms=False, rope=False, relu2=False, modern_rest=False):
        super().__init__()
        self.config = config
        C = config.n_embd
        self.token_embedding = nn.Embedding(config.vocab_size, C)
        self.position_embedding = None if rope else nn.Embedding(config.block_size, C)
        self.blocks = nn.ModuleList(
            StepBlock(C, config.n_head, config.block_size, rms, rope, relu2, modern_rest)
            for _ in range(config.n_layer)
        )
        self.ln_f = RMSNorm(C) if rms else nn.LayerNorm(C)
        self.lm_head = nn.Linear(C, config.vocab_size, bias=not modern_rest)
        if modern_rest:  # ModernGPT's init: every output projection and the head at zero
            ModernGPT.reset_parameters(self)
        else:  # lesson 05's: normal(0, 0.02), zero biases
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, idx, targets=None):
        x = self.token_embedding(idx)
        if self.position_embedding is not None:
            x = x + self.position_embedding(torch.arange(idx.size(1), device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def modern_rung_model(name: str, vocab_size: int, seed: int = ladder.SEED) -> nn.Module:
    """The model of rung ``name`` at the ladder's shape (``ladder.RUNGS["deeper"]``), seeded."""
    if name not in MODERN_RUNGS:
        raise ValueError(f"unknown rung {name!r}; choose one of {list(MODERN_RUNGS)}")
    deeper = ladder.RUNGS["deeper"]
    config = ModernConfig(
        vocab_size=vocab_size, block_size=ladder.BLOCK_SIZE, n_layer=deeper.n_layer,
        n_head=deeper.n_head, n_embd=ladder.N_EMBD,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return StepGPT(config, **STEPS[name]) if name in STEPS else ModernGPT(config)


def modern_optimizer(name: str):
    """``train_rung``'s optimizer for rung ``name``: Muon + AdamW for "+ Muon", else None (the
    ladder's AdamW)."""
    if name != "+ Muon":
        return None
    return lambda model: MuonAdamW(model, ladder.LEARNING_RATE)
