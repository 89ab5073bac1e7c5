"""Causal self-attention, three ways (lessons 03 and 04).

- ``attention_weights``: the formula, written out: softmax(q k^T / sqrt(d_k)) with a causal mask.
  This is the *teaching path*; everything that shows attention weights goes through it.
- ``Head`` and ``MultiHeadAttention``: one head, then several heads side by side plus an output
  projection, as built in the lessons (one small Linear per head: easy to read, slow).
- ``CausalSelfAttention``: the same maths as ``MultiHeadAttention`` with one fused QKV projection
  and PyTorch's ``F.scaled_dot_product_attention`` (fast path; what ``GPT`` uses). Ask it for
  ``return_weights=True`` and it switches to ``attention_weights`` so you can look inside.

Shapes: B batch, T time (sequence length), C channels (n_embd), nh heads, hs head size = C // nh.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn import functional as F


def causal_mask(t_query: int, t_key: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (t_query, t_key) mask, True where a query may look at a key.

    The queries are the *last* t_query positions of the t_key keys (t_query < t_key when earlier
    keys come from a KV cache), so query i sits at position i + (t_key - t_query).
    """
    ones = torch.ones(t_query, t_key, dtype=torch.bool, device=device)
    return torch.tril(ones, diagonal=t_key - t_query)


def attention_weights(
    q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Causal attention weights softmax(q k^T / sqrt(d_k)): q (..., T_q, hs), k (..., T_k, hs)
    -> wei (..., T_q, T_k); each row sums to 1 and is 0 above the diagonal (no peeking ahead).

    ``mask``: optional precomputed (T_q, T_k) mask, True/1 where a query may attend; default causal.
    """
    d_k = q.size(-1)
    # Scale by 1/sqrt(d_k): keeps the scores' variance ~1, so softmax does not saturate.
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)
    if mask is None:
        mask = causal_mask(q.size(-2), k.size(-2), device=q.device)
    # -inf BEFORE the softmax: exp(-inf) = 0, and the remaining weights still sum to 1.
    scores = scores.masked_fill(mask == 0, float("-inf"))  # works for bool and 0/1 masks
    return F.softmax(scores, dim=-1)  # normalise over the keys (last dim)


class Head(nn.Module):
    """One head of causal self-attention (the explicit, teaching version)."""

    def __init__(self, n_embd: int, head_size: int, block_size: int, dropout: float = 0.0):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)  # what do I contain?
        self.query = nn.Linear(n_embd, head_size, bias=False)  # what am I looking for?
        self.value = nn.Linear(n_embd, head_size, bias=False)  # what do I hand over if chosen?
        # Built once (not a parameter, not saved): lower-triangular "may attend" mask.
        tril = torch.tril(torch.ones(block_size, block_size, dtype=torch.bool))
        self.register_buffer("tril", tril, persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        """x (B, T, C) -> out (B, T, head_size) [, wei (B, T, T)]."""
        B, T, C = x.shape
        k = self.key(x)  # (B, T, hs)
        q = self.query(x)  # (B, T, hs)
        v = self.value(x)  # (B, T, hs)
        wei = attention_weights(q, k, self.tril[:T, :T])  # (B, T, T)
        out = self.dropout(wei) @ v  # (B, T, T) @ (B, T, hs) -> (B, T, hs)
        return (out, wei) if return_weights else out


class MultiHeadAttention(nn.Module):
    """Several heads in parallel, concatenated, then mixed by an output projection."""

    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float = 0.0):
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        head_size = n_embd // n_head
        self.heads = nn.ModuleList(
            Head(n_embd, head_size, block_size, dropout) for _ in range(n_head)
        )
        self.proj = nn.Linear(n_embd, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        """x (B, T, C) -> out (B, T, C) [, wei (B, n_head, T, T)]."""
        results = [head(x, return_weights=True) for head in self.heads]
        out = torch.cat([o for o, _ in results], dim=-1)  # n_head x (B, T, hs) -> (B, T, C)
        out = self.dropout(self.proj(out))  # (B, T, C)
        if return_weights:
            return out, torch.stack([w for _, w in results], dim=1)  # (B, n_head, T, T)
        return out


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused QKV projection (the fast path)."""

    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float = 0.0):
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        self.n_head = n_head
        self.n_embd = n_embd
        self.block_size = block_size
        self.dropout_p = dropout
        # q, k and v for every head in one matmul; no bias, like Head's key/query/value.
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.c_proj = nn.Linear(n_embd, n_embd)  # the output projection (MultiHeadAttention.proj)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        return_weights: bool = False,
        kv_cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        use_cache: bool = False,
    ):
        """x (B, T, C) -> out (B, T, C).

        ``kv_cache``: (k, v) of earlier positions, each (B, nh, T_past, hs); x holds the T new
        positions that follow them. With ``use_cache=True`` also returns the updated (k, v).
        Returns ``out``, then the new (k, v) if use_cache, then wei (B, nh, T, T_past + T) if
        return_weights.
        """
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        # Split channels into heads: (B, T, C) -> (B, T, nh, hs) -> (B, nh, T, hs)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        if kv_cache is not None:  # prepend the cached past keys/values
            k = torch.cat([kv_cache[0], k], dim=2)  # (B, nh, T_past + T, hs)
            v = torch.cat([kv_cache[1], v], dim=2)
        t_past = k.size(2) - T

        wei = None
        if return_weights:  # teaching path: the same formula as Head, weights kept
            wei = attention_weights(q, k)  # (B, nh, T, T_past + T)
            y = self.attn_dropout(wei) @ v  # (B, nh, T, hs)
        else:
            dropout_p = self.dropout_p if self.training else 0.0
            if t_past == 0:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
            elif T == 1:  # one new position may look at every cached one: no mask to build
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
            else:  # is_causal aligns the mask top-left; with a cache we need it bottom-right
                mask = causal_mask(T, k.size(2), device=x.device)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-join heads: (B, T, C)
        out = self.resid_dropout(self.c_proj(y))

        extra = []
        if use_cache:
            extra.append((k, v))
        if return_weights:
            extra.append(wei)
        return (out, *extra) if extra else out
