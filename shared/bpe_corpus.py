"""Lesson 09: the book as BPE ids, and bits per character: the unit that compares tokenizers.

A loss per token depends on how much text a token holds, so models with different tokenizers
are compared on **bits per character of the same validation text**. ``bpe_corpus`` therefore
splits the *characters* exactly as ``shared.data.split_data`` does (first 90% train), then
encodes each part; ``bits_per_char`` converts a per-token loss with the split's characters per
token; ``text_bits_per_char`` measures a whole text exactly.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from shared.bpe import BPETokenizer


@dataclass
class BPECorpus:
    """The book as BPE ids: the same text split as ``shared.data.load_corpus`` splits characters
    (first 90% of the characters train), so validation text is identical for both tokenizers."""

    text: str
    tokenizer: BPETokenizer
    train_data: torch.Tensor  # (N_train,) long
    val_data: torch.Tensor  # (N_val,) long
    chars_per_token: dict  # {"train": ..., "val": ...}
    path: Path | None = None

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size


def bits_per_char(loss: float, corpus, split: str = "val") -> float:
    """A loss in nats per token -> bits per character of the same text (comparable across
    tokenizers): nats/token / (chars/token) / ln 2. A character corpus has 1 char per token."""
    per_token = getattr(corpus, "chars_per_token", None) or {}
    return loss / per_token.get(split, 1.0) / math.log(2)


@torch.no_grad()
def text_bits_per_char(model, ids: torch.Tensor, n_chars: int, batch_size: int = 64) -> float:
    """Bits per character of a whole text: every token after the first is predicted once, in
    windows of ``block_size`` (each window starts with a fresh context). ``n_chars``: the
    characters those predicted tokens spell. Exact, unlike a loss on random windows."""
    import torch.nn.functional as F

    T, was_training = model.config.block_size, model.training
    starts = list(range(0, len(ids) - 1, T))
    total = 0.0  # nats
    model.eval()  # dropout off
    for i in range(0, len(starts), batch_size):
        rows = [ids[s : s + T + 1] for s in starts[i : i + batch_size]]
        width = max(len(r) for r in rows)
        batch = torch.stack([F.pad(r, (0, width - len(r)), value=-1) for r in rows])  # (B, T+1)
        x, y = batch[:, :-1].clamp(min=0), batch[:, 1:]  # -1 marks padding: not a target
        logits, _ = model(x)  # (B, T, V)
        total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-1,
                                 reduction="sum").item()  # fmt: skip
    model.train(was_training)
    return total / n_chars / math.log(2)


def bpe_corpus(text: str, tokenizer: BPETokenizer, train_frac: float = 0.9, path=None) -> BPECorpus:
    """Split ``text`` by characters (exactly like ``split_data`` on character ids), then encode
    each part: the validation text is the same one the character model is measured on."""
    cut = int(train_frac * len(text))
    parts = {"train": text[:cut], "val": text[cut:]}
    data = {k: torch.tensor(tokenizer.encode(v), dtype=torch.long) for k, v in parts.items()}
    ratio = {k: len(parts[k]) / max(1, len(data[k])) for k in parts}
    return BPECorpus(text, tokenizer, data["train"], data["val"], ratio, path)


def load_bpe_corpus(vocab_size: int = 1024, data_dir=None, cache: bool = True) -> BPECorpus:
    """The book as BPE ids; the merges are learned on the training split only and cached in the
    data folder (``bpe-<vocab_size>-<hash of the text>.json``) so the next run skips training."""
    from shared.data import load_corpus

    chars = load_corpus(data_dir)
    text, cut = chars.text, len(chars.train_data)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    saved = chars.path.parent / f"bpe-{vocab_size}-{digest}.json" if chars.path else None
    if cache and saved is not None and saved.is_file():
        tokenizer = BPETokenizer.load(saved)
    else:
        tokenizer = BPETokenizer.train(text[:cut], vocab_size)
        if cache and saved is not None:
            try:
                tokenizer.save(saved)
            except OSError:
                pass  # a read-only data folder: train again next time
    return bpe_corpus(text, tokenizer, path=chars.path)
