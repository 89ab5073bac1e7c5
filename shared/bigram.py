"""Lesson 02: the bigram language model, the simplest thing that predicts the next character.

Each character looks up a row of a (vocab, vocab) table and reads it as the logits (unnormalised
log-probabilities) of the next character. No context beyond the current character: this is the
baseline every later model (lesson 02 onwards) has to beat.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn import functional as F


class BigramLanguageModel(nn.Module):
    """Next-character logits read straight out of a (vocab_size, vocab_size) table."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        # Row i holds the logits for "what comes after character i".
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) token ids -> logits (B, T, vocab_size), and the mean cross-entropy loss
        against targets (B, T) when they are given (else None)."""
        logits = self.token_embedding_table(idx)  # (B, T, V)
        if targets is None:
            return logits, None
        B, T, V = logits.shape
        # cross_entropy wants (N, V) raw logits and (N,) class ids: flatten batch and time.
        loss = F.cross_entropy(logits.view(B * T, V), targets.view(B * T))
        return logits, loss
