"""A tiny corpus and model for the training/generation tests (fast on one CPU core)."""

from __future__ import annotations

import torch

from shared.data import CharTokenizer, Corpus, split_data
from shared.engine.train_config import TrainConfig, with_overrides
from shared.model import GPTConfig

TEXT = (
    "En un lugar de la Mancha, de cuyo nombre no quiero acordarme, no ha mucho tiempo que "
    "vivía un hidalgo de los de lanza en astillero, adarga antigua, rocín flaco y galgo corredor.\n"
) * 30


def tiny_corpus(text: str = TEXT) -> Corpus:
    tokenizer = CharTokenizer(text)
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_data, val_data = split_data(data)
    return Corpus(text, tokenizer, train_data, val_data)


def tiny_config(**overrides) -> TrainConfig:
    """A tiny TrainConfig; overrides may name GPTConfig fields too (they go to .model)."""
    config = TrainConfig(
        model=GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16),
        batch_size=4, learning_rate=1e-2,
        min_lr=1e-3, warmup_iters=2, max_iters=12, time_budget=None, eval_interval=5,
        eval_iters=2, seed=7, device="cpu", num_threads=1,
    )  # fmt: skip
    return with_overrides(config, **overrides)
