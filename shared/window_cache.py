"""Lesson 10's compressor: a KV cache with its room reserved up front, for reading a batch of
windows one position at a time (``shared.gptzip``).

``shared.kv_cache`` grows its cache with ``torch.cat`` at every step: simple, but each step
copies every key and value seen so far, and on a CPU that copy cost more than the model itself
(45% of the time, measured). Here each layer owns two buffers of ``window`` positions, and
step t writes its key and value into slot t and attends over slots 0..t: nothing is copied.

    cache = WindowCache(model, batch=B, window=model.config.block_size)
    for t in range(window):
        logits = cache.step(idx[:, t : t + 1])     # (B, vocab_size): the prediction after t

The logits equal those of ``model`` on the whole window at position t (up to float rounding:
the sums are done in another order). Works for ``GPT`` (lessons 03-08) and ``ModernGPT``
(lesson 10: the new key is rotated by RoPE at its position t). Inference only.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from shared.attention import merge_heads
from shared.modern import ModernAttention


class WindowCache:
    """Per layer: keys and values of ``window`` positions, filled one step at a time."""

    def __init__(self, model, batch: int, window: int):
        config = model.config
        head_size = config.n_embd // config.n_head
        shape = (batch, config.n_head, window, head_size)
        self.model, self.length, self.window = model, 0, window
        like = model.token_embedding.weight  # the model's device and dtype
        self.keys = [like.new_zeros(shape) for _ in model.blocks]
        self.values = [like.new_zeros(shape) for _ in model.blocks]

    def attend(self, layer: int, attn, x: torch.Tensor) -> torch.Tensor:
        """One layer's attention for the new position: x (B, 1, C) -> (B, 1, C)."""
        t = self.length
        if isinstance(attn, ModernAttention):
            q, k, v = attn.qkv(x, start=t)  # RoPE: rotated by the position t
        else:
            q, k, v = attn.qkv(x)  # (B, nh, 1, hs) each
        self.keys[layer][:, :, t : t + 1] = k
        self.values[layer][:, :, t : t + 1] = v
        keys, values = self.keys[layer][:, :, : t + 1], self.values[layer][:, :, : t + 1]
        scores = q @ keys.transpose(-2, -1) * q.size(-1) ** -0.5  # (B, nh, 1, t + 1)
        y = F.softmax(scores, dim=-1) @ values  # (B, nh, 1, hs): the new position sees 0..t
        return attn.c_proj(merge_heads(y))

    @torch.no_grad()
    def step(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, 1): the ids at position ``length`` -> logits (B, vocab_size) for the next."""
        if self.length >= self.window:
            raise ValueError(f"the cache holds {self.window} positions; start a new one")
        model = self.model
        x = model.embed(idx, start=self.length)  # (B, 1, C)
        for layer, block in enumerate(model.blocks):
            x = x + self.attend(layer, block.sa, block.ln1(x))
            x = x + block.ffwd(block.ln2(x))
        self.length += 1
        logits = model.head(x) if hasattr(model, "head") else model.lm_head(model.ln_f(x))
        return logits[:, -1]
