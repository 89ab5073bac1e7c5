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


@dataclass
class GPTConfig:
    vocab_size: int | None = None  # distinct characters; None until a tokenizer sets it
    block_size: int = 128  # longest context the model can see (characters)
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block
    n_embd: int = 128  # channels of the residual stream
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if name == "vocab_size" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd={self.n_embd} must be divisible by n_head={self.n_head} "
                "(each head gets n_embd // n_head channels)"
            )
        if not 0.0 <= self.dropout < 1.0:  # also rejects NaN
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    def check_length(self, t_total: int) -> None:
        """A model of this config sees at most ``block_size`` positions: say so, and what to do."""
        if t_total > self.block_size:
            raise ValueError(
                f"sequence of length {t_total} is longer than block_size={self.block_size}, "
                f"the maximum this model supports; crop the input to its last "
                f"{self.block_size} tokens"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain ints/floats only, so checkpoints load with ``torch.load(weights_only=True)``."""
        return {
            key: (v if v is None else float(v) if key == "dropout" else int(v))
            for key, v in asdict(self).items()
        }

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

    def __init__(self, config: GPTConfig, block: type[nn.Module] = Block):
        """``block``: the class of each transformer block, called as
        ``block(n_embd, n_head, block_size, dropout)`` (lesson 05's signature), so a GPT can be
        built from your own Block."""
        super().__init__()
        if config.vocab_size is None:
            raise ValueError("GPTConfig.vocab_size is not set: use the tokenizer's vocab_size")
        self.config = config
        C = config.n_embd
        self.token_embedding = nn.Embedding(config.vocab_size, C)  # what each character is
        self.position_embedding = nn.Embedding(config.block_size, C)  # where it sits
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            block(C, config.n_head, config.block_size, config.dropout)
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

    def embed(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """idx (B, T) -> x (B, T, C): what each character is + where it sits (positions start at
        ``start``, which the KV cache in ``shared.kv_cache`` uses to continue a sequence)."""
        B, T = idx.shape
        self.config.check_length(start + T)
        pos = torch.arange(start, start + T, device=idx.device)  # (T,)
        return self.drop(self.token_embedding(idx) + self.position_embedding(pos))  # (B, T, C)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) -> logits (B, T, vocab_size), and mean cross-entropy if targets (B, T)."""
        x = self.embed(idx)  # (B, T, C)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    @torch.no_grad()
    def attention_weights(self, idx: torch.Tensor) -> torch.Tensor:
        """Every layer's and head's attention weights for idx (B, T), via the teaching path.

        Returns (n_layer, B, n_head, T, T); runs in eval mode (no dropout) and restores the mode.
        """
        was_training = self.training
        self.eval()
        try:
            x = self.embed(idx)
            weights = []
            for block in self.blocks:
                weights.append(block.sa.weights(block.ln1(x)))  # what block's attention sees
                x = block(x)
            return torch.stack(weights)  # (n_layer, B, nh, T, T)
        finally:
            self.train(was_training)

    def num_params(self, non_embedding: bool = False) -> int:
        """Number of parameters; ``non_embedding=True`` leaves out the two embedding tables."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.token_embedding.weight.numel() + self.position_embedding.weight.numel()
        return n
