"""The attention modules: causal, correctly normalised, and all three implementations agree."""

import math

import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from shared.attention import (
    CausalSelfAttention,
    Head,
    MultiHeadAttention,
    attention_weights,
    causal_mask,
)

B, T, C, NH = 2, 7, 16, 4
HS = C // NH


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def fused_from_multihead(mha: MultiHeadAttention) -> CausalSelfAttention:
    """A CausalSelfAttention holding exactly the weights of ``mha`` (heads stacked in order)."""
    n_head = len(mha.heads)
    fused = CausalSelfAttention(C, n_head, block_size=T)
    with torch.no_grad():
        q = torch.cat([h.query.weight for h in mha.heads], dim=0)  # (C, C)
        k = torch.cat([h.key.weight for h in mha.heads], dim=0)
        v = torch.cat([h.value.weight for h in mha.heads], dim=0)
        fused.c_attn.weight.copy_(torch.cat([q, k, v], dim=0))  # (3C, C)
        fused.c_proj.weight.copy_(mha.proj.weight)
        fused.c_proj.bias.copy_(mha.proj.bias)
    return fused


def test_attention_weights_rows_sum_to_one_and_upper_triangle_is_zero():
    q, k = torch.randn(B, NH, T, HS), torch.randn(B, NH, T, HS)
    wei = attention_weights(q, k)
    assert wei.shape == (B, NH, T, T)
    torch.testing.assert_close(wei.sum(-1), torch.ones(B, NH, T))
    assert torch.all(wei.triu(diagonal=1) == 0)
    assert torch.all(wei[..., causal_mask(T, T)] > 0)  # every visible position gets some weight
    assert torch.all(wei[..., 0, 0] == 1)  # the first token can only look at itself


def test_attention_weights_matches_the_formula():
    q, k = torch.randn(B, T, HS), torch.randn(B, T, HS)
    scores = q @ k.transpose(-2, -1) / math.sqrt(HS)
    expected = torch.zeros(B, T, T)
    for t in range(T):  # row by row, softmax over the visible prefix only
        expected[:, t, : t + 1] = torch.softmax(scores[:, t, : t + 1], dim=-1)
    torch.testing.assert_close(attention_weights(q, k), expected)


def test_attention_weights_with_fewer_queries_than_keys_aligns_them_at_the_end():
    q, k = torch.randn(B, T, HS), torch.randn(B, T, HS)
    last_rows = attention_weights(q[:, -3:], k)  # the last 3 queries see the whole past
    torch.testing.assert_close(last_rows, attention_weights(q, k)[:, -3:])
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]


def test_attention_weights_accepts_a_precomputed_bool_or_0_1_mask():
    q, k = torch.randn(B, T, HS), torch.randn(B, T, HS)
    expected = attention_weights(q, k)
    torch.testing.assert_close(attention_weights(q, k, causal_mask(T, T)), expected)
    torch.testing.assert_close(attention_weights(q, k, torch.tril(torch.ones(T, T))), expected)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Head(C, HS, block_size=T),
        lambda: MultiHeadAttention(C, NH, block_size=T),
        lambda: CausalSelfAttention(C, NH, block_size=T),
    ],
    ids=["Head", "MultiHeadAttention", "CausalSelfAttention"],
)
def test_outputs_up_to_t_ignore_everything_after_t(make):
    module = make()
    x = torch.randn(B, T, C)
    for t in range(T - 1):
        changed = x.clone()
        changed[:, t + 1 :] = torch.randn(B, T - t - 1, C) * 10
        out, out_changed = module(x), module(changed)
        torch.testing.assert_close(out[:, : t + 1], out_changed[:, : t + 1])
        assert not torch.allclose(out[:, t + 1 :], out_changed[:, t + 1 :])
        wei, wei_changed = module.weights(x), module.weights(changed)
        torch.testing.assert_close(wei[..., : t + 1, :], wei_changed[..., : t + 1, :])


def test_head_output_is_weights_times_values():
    head = Head(C, HS, block_size=T)
    x = torch.randn(B, T, C)
    out, wei = head(x), head.weights(x)
    assert out.shape == (B, T, HS) and wei.shape == (B, T, T)
    torch.testing.assert_close(wei, attention_weights(head.query(x), head.key(x)))
    torch.testing.assert_close(out, wei @ head.value(x))


def test_multihead_concatenates_heads_then_projects():
    mha = MultiHeadAttention(C, NH, block_size=T)
    x = torch.randn(B, T, C)
    out, wei = mha(x), mha.weights(x)
    assert out.shape == (B, T, C) and wei.shape == (B, NH, T, T)
    expected = mha.proj(torch.cat([h(x) for h in mha.heads], dim=-1))
    torch.testing.assert_close(out, expected)


def test_fused_path_equals_explicit_multihead_with_mapped_weights():
    mha = MultiHeadAttention(C, NH, block_size=T)
    fused = fused_from_multihead(mha)
    x = torch.randn(B, T, C)
    torch.testing.assert_close(fused(x), mha(x))  # fast path (scaled_dot_product_attention)
    torch.testing.assert_close(fused.weights(x), mha.weights(x))  # teaching path


def test_explicit_path_equals_scaled_dot_product_attention():
    q, k, v = (torch.randn(B, NH, T, HS) for _ in range(3))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(attention_weights(q, k) @ v, expected)


def test_multihead_equals_torch_multiheadattention_with_mapped_weights():
    mha = MultiHeadAttention(C, NH, block_size=T)
    fused = fused_from_multihead(mha)
    torch_mha = nn.MultiheadAttention(C, NH, bias=True, batch_first=True)
    with torch.no_grad():
        torch_mha.in_proj_weight.copy_(fused.c_attn.weight)
        torch_mha.in_proj_bias.zero_()
        torch_mha.out_proj.weight.copy_(mha.proj.weight)
        torch_mha.out_proj.bias.copy_(mha.proj.bias)
    x = torch.randn(B, T, C)
    not_allowed = ~causal_mask(T, T)  # nn.MultiheadAttention: True = may NOT attend
    expected, avg_weights = torch_mha(x, x, x, attn_mask=not_allowed, need_weights=True)
    out, wei = mha(x), mha.weights(x)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(wei.mean(dim=1), avg_weights)  # it averages over heads


def test_split_and_merge_heads_are_inverses():
    attn = CausalSelfAttention(C, NH, block_size=T)
    x = torch.randn(B, T, C)
    heads = attn.split_heads(x)
    assert heads.shape == (B, NH, T, HS)
    torch.testing.assert_close(heads[:, 1], x[..., HS : 2 * HS])  # head 1 owns channels HS..2HS
    torch.testing.assert_close(attn.merge_heads(heads), x)


def test_dropout_only_in_training_mode():
    for module in (MultiHeadAttention(C, NH, T, dropout=0.5), CausalSelfAttention(C, NH, T, 0.5)):
        x = torch.randn(B, T, C)
        module.train()
        assert not torch.allclose(module(x), module(x))
        module.eval()
        torch.testing.assert_close(module(x), module(x))


def test_n_embd_must_split_evenly_into_heads():
    with pytest.raises(ValueError, match="divisible"):
        CausalSelfAttention(10, 3, block_size=4)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3, block_size=4)
