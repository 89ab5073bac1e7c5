"""The GPT language model (lesson 05): embeddings -> transformer blocks -> next-character logits.

    idx (B, T) -> token embedding + position embedding (B, T, C)
               -> n_layer x Block (B, T, C)
               -> final LayerNorm -> lm_head -> logits (B, T, vocab_size)

A decoder-only, character-level GPT in the style of nanoGPT, small enough to train on a laptop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn as nn
from torch.nn import functional as F

from shared.block import Block

KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (k, v), each (B, nh, T_past, hs)


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 128  # longest context the model can see (characters)
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block
    n_embd: int = 128  # channels of the residual stream
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd={self.n_embd} must be divisible by n_head={self.n_head} "
                "(each head gets n_embd // n_head channels)"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain ints/floats only, so checkpoints load with ``torch.load(weights_only=True)``."""
        return {key: (float(v) if key == "dropout" else int(v)) for key, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown GPTConfig fields {unknown}; expected some of {sorted(known)}"
            )
        return cls(**data)


class GPT(nn.Module):
    """Decoder-only transformer language model over characters."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        C = config.n_embd
        self.token_embedding = nn.Embedding(config.vocab_size, C)  # what each character is
        self.position_embedding = nn.Embedding(config.block_size, C)  # where it sits
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(C, config.n_head, config.block_size, config.dropout)
            for _ in range(config.n_layer)
        )
        self.ln_f = nn.LayerNorm(C)
        self.lm_head = nn.Linear(C, config.vocab_size)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # Small random weights and zero biases: every character starts out nearly equally
        # likely, so the initial loss is ~ln(vocab_size) (about 4.5 for 92 characters).
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def _check_length(self, t_total: int) -> None:
        if t_total > self.config.block_size:
            raise ValueError(
                f"sequence of length {t_total} is longer than block_size={self.config.block_size}, "
                f"the maximum this model supports; crop the input to its last "
                f"{self.config.block_size} tokens"
            )

    def _embed(self, idx: torch.Tensor, t_past: int = 0) -> torch.Tensor:
        B, T = idx.shape
        self._check_length(t_past + T)
        pos = torch.arange(t_past, t_past + T, device=idx.device)  # (T,)
        return self.drop(self.token_embedding(idx) + self.position_embedding(pos))  # (B, T, C)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) -> logits (B, T, vocab_size), and mean cross-entropy if targets (B, T)."""
        x = self._embed(idx)  # (B, T, C)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    def forward_with_cache(
        self, idx: torch.Tensor, cache: KVCache | None = None
    ) -> tuple[torch.Tensor, KVCache]:
        """Run only the new tokens idx (B, T_new), reusing the keys/values of earlier positions.

        Returns logits (B, T_new, V) equal to the last T_new positions of ``forward`` on the whole
        sequence, and the cache extended by T_new positions (pass it to the next call).
        """
        t_past = 0 if not cache else cache[0][0].size(2)
        x = self._embed(idx, t_past)  # positions continue where the cache ends
        new_cache: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, kv_cache=cache[i] if cache else None, use_cache=True)
            new_cache.append(kv)
        return self.lm_head(self.ln_f(x)), new_cache

    @torch.no_grad()
    def attention_weights(self, idx: torch.Tensor) -> torch.Tensor:
        """Every layer's and head's attention weights for idx (B, T), via the teaching path.

        Returns (n_layer, B, n_head, T, T); runs in eval mode (no dropout) and restores the mode.
        """
        was_training = self.training
        self.eval()
        try:
            x = self._embed(idx)
            weights = []
            for block in self.blocks:
                x, wei = block(x, return_weights=True)
                weights.append(wei)  # (B, nh, T, T)
            return torch.stack(weights)  # (n_layer, B, nh, T, T)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Plain sampling without a cache (shared.generate has the full-featured version)."""
        for _ in range(max_new_tokens):
            context = idx[:, -self.config.block_size :]  # never feed more than block_size
            logits, _ = self(context)
            probs = F.softmax(logits[:, -1, :] / temperature, dim=-1)  # (B, V)
            idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], dim=1)
        return idx

    def num_params(self, non_embedding: bool = False) -> int:
        """Number of parameters; ``non_embedding=True`` leaves out the two embedding tables."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.token_embedding.weight.numel() + self.position_embedding.weight.numel()
        return n
