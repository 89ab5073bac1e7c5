"""Causal self-attention, three ways (lessons 03 and 04).

- ``attention_weights``: the formula, written out: softmax(q k^T / sqrt(d_k)) with a causal mask.
  This is the *teaching path*; everything that shows attention weights goes through it.
- ``Head`` and ``MultiHeadAttention``: one head, then several heads side by side plus an output
  projection, as built in the lessons (one small Linear per head: easy to read, slow).
- ``split_heads`` / ``merge_heads``: the reshape that turns channels into heads and back.
- ``CausalSelfAttention``: the same maths as ``MultiHeadAttention`` with one fused QKV projection
  and PyTorch's ``F.scaled_dot_product_attention`` (fast path; what ``GPT`` uses).

Every module's ``forward(x)`` returns one tensor, the output. To look inside, call its
``weights(x)``: the attention weights, computed by ``attention_weights``. The KV-cache variant
used for fast sampling lives in ``shared.kv_cache``.

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


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, C) -> (B, nh, T, hs): head h gets channels h*hs .. (h+1)*hs - 1 of every position."""
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)  # split channels, then swap T and nh


def merge_heads(y: torch.Tensor) -> torch.Tensor:
    """(B, nh, T, hs) -> (B, T, nh * hs): the heads' outputs side by side again (undoes split)."""
    B, nh, T, hs = y.shape
    # After the transpose the memory is no longer in (B, T, C) order: .contiguous() before .view.
    return y.transpose(1, 2).contiguous().view(B, T, nh * hs)


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

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> wei (B, T, T): how much each position attends to each earlier one."""
        T = x.size(1)
        return attention_weights(self.query(x), self.key(x), self.tril[:T, :T])  # (B, T, T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> out (B, T, head_size): a weighted average of the values."""
        v = self.value(x)  # (B, T, hs)
        return self.dropout(self.weights(x)) @ v  # (B, T, T) @ (B, T, hs) -> (B, T, hs)


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

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> wei (B, n_head, T, T)."""
        return torch.stack([head.weights(x) for head in self.heads], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> out (B, T, C)."""
        out = torch.cat(
            [head(x) for head in self.heads], dim=-1
        )  # n_head x (B, T, hs) -> (B, T, C)
        return self.dropout(self.proj(out))  # (B, T, C)


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

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, nh, T, hs): each head gets its own slice of the channels."""
        return split_heads(x, self.n_head)

    @staticmethod
    def merge_heads(y: torch.Tensor) -> torch.Tensor:
        """(B, nh, T, hs) -> (B, T, C): the heads' outputs side by side again."""
        return merge_heads(y)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, C) -> q, k, v, each (B, nh, T, hs), from one fused projection."""
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        return self.split_heads(q), self.split_heads(k), self.split_heads(v)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> wei (B, nh, T, T), by the teaching formula (``attention_weights``)."""
        q, k, _ = self.qkv(x)
        return attention_weights(q, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> out (B, T, C)."""
        q, k, v = self.qkv(x)  # each (B, nh, T, hs)
        dropout_p = self.dropout_p if self.training else 0.0
        # The same maths as attention_weights(q, k) @ v, in one fused (and faster) kernel.
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        return self.resid_dropout(self.c_proj(self.merge_heads(y)))  # (B, T, C)
