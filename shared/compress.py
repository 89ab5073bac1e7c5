"""Prediction is compression (lesson 10): a language model's loss next to classic compressors.

A model that gives the next character probability p can code it in -log2(p) bits (an arithmetic
coder gets within a few bytes of that over a whole text). So the mean cross-entropy in nats per
character, divided by ln 2, is the size in bits per character of the text coded with the model.

We measure compressors the same way the model is measured: on the validation text, after they
have seen the training text. A compressor's cost for ``text`` given ``context`` is
``size(context + text) - size(context)``: what it adds to code the validation text when it has
already coded (and so learned from) the training text.
"""

from __future__ import annotations

import bz2
import lzma
import math
import zlib

import torch
from torch.nn import functional as F

PPMD_ORDER, PPMD_MEMORY = 12, 256 << 20  # order-12 contexts, 256 MB of model


def _ppmd(data: bytes) -> bytes:
    import pyppmd  # PPMd (variant I, as in 7-Zip's .7z PPMd): pip install pyppmd

    return pyppmd.compress(data, max_order=PPMD_ORDER, mem_size=PPMD_MEMORY)


COMPRESSORS = {
    "gzip -9": lambda data: zlib.compress(data, 9),  # LZ77 with a 32 KB window, then Huffman
    "bzip2 -9": lambda data: bz2.compress(data, 9),  # Burrows-Wheeler on 900 KB blocks
    "xz -9e": lambda data: lzma.compress(data, preset=9 | lzma.PRESET_EXTREME),  # LZMA
    f"PPMd (order {PPMD_ORDER}, 256 MB)": _ppmd,  # prediction by partial matching (1984)
}


def compressor_bits_per_char(name: str, context: str, text: str) -> float:
    """Bits per character of ``text`` for compressor ``name`` once it has seen ``context``."""
    compress = COMPRESSORS[name]
    before = len(compress(context.encode("utf-8")))
    after = len(compress((context + text).encode("utf-8")))
    return 8 * (after - before) / len(text)


def nats_to_bits(nats: float) -> float:
    """Cross-entropy in nats (natural log, what F.cross_entropy gives) -> bits (log base 2)."""
    return nats / math.log(2)


@torch.no_grad()
def loss_on_text(model, data: torch.Tensor, window: int | None = None, batch: int = 64) -> float:
    """Mean cross-entropy (nats/char) of ``model`` on EVERY character of ``data`` (a 1-D tensor of
    ids) after the first: the text is cut into consecutive windows of ``window`` characters
    (default: the model's block_size), each predicted from the start of its window (so the
    context grows from 0 to window - 1 characters). No sampling: the same number every time."""
    window = window or model.config.block_size
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        n = (len(data) - 1) // window * window
        inputs, targets = data[:n].view(-1, window), data[1 : n + 1].view(-1, window)
        rest = len(data) - 1 - n  # the last, shorter window
        chunks = [
            (inputs[i : i + batch], targets[i : i + batch]) for i in range(0, len(inputs), batch)
        ]
        if rest:
            chunks.append((data[n:-1].view(1, -1), data[n + 1 :].view(1, -1)))
        for x, y in chunks:
            logits, _ = model(x.to(device))
            loss = F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten(), reduction="sum")
            total, count = total + loss.item(), count + y.numel()
    finally:
        model.train(was_training)
    return total / count
