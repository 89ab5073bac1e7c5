"""The KV cache (lesson 07): sampling that runs only the new character through the model.

Without a cache, every sampling step re-runs the whole context. But the keys and values of the
earlier positions do not change when a character is appended (attention is causal), so we can
keep them per layer and compute q, k, v for the new position alone. This module is that
variant, kept apart from the teaching classes: it reuses a ``GPT``'s weights, step by step.

    logits, cache = forward_with_cache(model, idx)             # the prompt in one go
    logits, cache = forward_with_cache(model, next_id, cache)  # then one id per step

The logits equal those of ``model(whole_sequence)`` at the same positions, as long as the
sequence fits in ``block_size``: the learned position table ends there. A full cache cannot slide
by one position (every cached key was computed with its absolute position), so
``shared.generate`` refills it from the last half block, and from then on its text differs from
the plain loop's, which re-reads the last block_size characters at every step.

Lesson 10's ``ModernGPT`` works the same way, with one twist: RoPE rotates q and k by their
positions, so the new positions are rotated with ``start = cache_length`` and the cached keys
are kept already rotated (a key's rotation depends on its own position only).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from shared.attention import CausalSelfAttention, causal_mask, merge_heads
from shared.modern import ModernAttention

KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (k, v), each (B, nh, T_past, hs)


def supports_cache(model) -> bool:
    """True when every block attends with the fused ``CausalSelfAttention`` (the GPT default)
    or lesson 10's ``ModernAttention``."""
    blocks = getattr(model, "blocks", None)
    return blocks is not None and all(
        isinstance(getattr(block, "sa", None), (CausalSelfAttention, ModernAttention))
        for block in blocks
    )


def cache_length(cache: KVCache | None) -> int:
    """How many positions the cache holds (0 for no cache)."""
    return 0 if not cache else cache[0][0].size(2)


def attend_with_cache(q, k, v, past=None):
    """One layer's attention for new positions, reusing the cached keys/values of earlier ones.

    q, k, v: (B, nh, T_new, hs) for the new positions; ``past``: None or the cached (k, v) of the
    T_past earlier positions, each (B, nh, T_past, hs). Returns y (B, nh, T_new, hs), one output
    per head (before the heads are merged), and the extended cache (k, v), each
    (B, nh, T_past + T_new, hs): the new keys/values appended after the cached ones, on the time
    dimension. Lesson 07's stretch exercise writes it for one new position.
    """
    if past is not None:  # the new positions come after the cached ones
        k = torch.cat([past[0], k], dim=2)  # (B, nh, T_past + T_new, hs)
        v = torch.cat([past[1], v], dim=2)
    T_new, T_all = q.size(2), k.size(2)
    if T_new == 1:  # one new position may look at every cached one, and itself: no mask
        y = F.scaled_dot_product_attention(q, k, v)
    elif T_new == T_all:  # no cache: the usual causal mask
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:  # is_causal aligns the mask top-left; with a cache we need it bottom-right
        mask = causal_mask(T_new, T_all, device=q.device)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return y, (k, v)


def attention_with_cache(attn: CausalSelfAttention, x, past):
    """x (B, T, C) holds the T positions after the cached ``past`` (k, v) -> out (B, T, C), (k, v)."""
    if isinstance(attn, ModernAttention):  # RoPE: rotate the new positions by where they are
        q, k, v = attn.qkv(x, start=0 if past is None else past[0].size(2))
    else:
        q, k, v = attn.qkv(x)  # each (B, nh, T, hs)
    y, cache = attend_with_cache(q, k, v, past)  # (B, nh, T, hs)
    return attn.c_proj(merge_heads(y)), cache


def forward_with_cache(model, idx: torch.Tensor, cache: KVCache | None = None):
    """Run only the new ids idx (B, T_new) through ``model`` (a GPT), reusing the cache.

    Returns logits (B, T_new, V) equal to the last T_new positions of ``model`` on the whole
    sequence, and the cache extended by T_new positions (pass it to the next call). Inference
    only: dropout is not applied.
    """
    x = model.embed(idx, start=cache_length(cache))  # positions continue where the cache ends
    new_cache: KVCache = []
    for i, block in enumerate(model.blocks):
        out, kv = attention_with_cache(block.sa, block.ln1(x), cache[i] if cache else None)
        x = x + out  # the same residual block as Block.forward
        x = x + block.ffwd(block.ln2(x))
        new_cache.append(kv)
    if hasattr(model, "head"):  # ModernGPT: RMSNorm, lm_head and the logit cap
        return model.head(x), new_cache
    return model.lm_head(model.ln_f(x)), new_cache
