"""Lesson 07's stretch checks pass correct code (ours and a different one) and name classic bugs."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from checkhelpers import assert_fails, assert_passes, stub
from torch.nn import functional as F

from shared.checks import EXERCISES, check_attend_with_cache, check_top_p_filter
from shared.generate import top_p_filter
from shared.kv_cache import attend_with_cache

INF = float("-inf")


def test_stretch_exercises_are_registered_as_optional():
    by_name = {ex.name: ex for ex in EXERCISES["07_generate"]}
    assert by_name["top_p_filter"].optional and by_name["attend_with_cache"].optional
    assert not by_name["sample_with_temperature"].optional


# ----------------------------------------------------------------------------- top-p
def hf_top_p(logits, p):  # ascending sort and 1 - p, as in Hugging Face's TopPLogitsWarper
    sorted_logits, order = torch.sort(logits, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - p)
    remove[..., -1:] = False  # the most likely token always stays
    return logits.masked_fill(remove.scatter(1, order, remove), INF)


def loop_top_p(logits, p):  # row by row, plain Python
    out = torch.full_like(logits, INF)
    for r, row in enumerate(logits):
        total = 0.0
        for i in row.argsort(descending=True).tolist():
            out[r, i] = row[i]
            total += float(row.softmax(-1)[i])
            if total >= p:
                break
    return out


def _sorted(logits):
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    return sorted_logits, order, sorted_logits.softmax(-1)


def top_vanishes(logits, p):  # keeps tokens strictly below p: a top token with prob >= p goes
    sorted_logits, order, probs = _sorted(logits)
    drop = ~(probs.cumsum(-1) < p)
    return logits.masked_fill(drop.scatter(-1, order, drop), INF)


def includes_itself(logits, p):  # cumulative including the token, top kept on purpose
    sorted_logits, order, probs = _sorted(logits)
    drop = probs.cumsum(-1) > p
    drop[..., 0] = False
    return logits.masked_fill(drop.scatter(-1, order, drop), INF)


def drops_the_top(logits, p):  # correct nucleus, but the top token is removed when it alone >= p
    out = top_p_filter(logits, p)
    probs = logits.softmax(-1)
    alone = probs.max(-1, keepdim=True).values >= p
    top = probs == probs.max(-1, keepdim=True).values
    return out.masked_fill(alone & top, INF)


def keeps_at_exactly_p(logits, p):  # a token whose predecessors sum to exactly p stays
    sorted_logits, order, probs = _sorted(logits)
    drop = (probs.cumsum(-1) - probs) > p
    return logits.masked_fill(drop.scatter(-1, order, drop), INF)


def not_sorted(logits, p):
    probs = logits.softmax(-1)
    drop = (probs.cumsum(-1) - probs) >= p
    return logits.masked_fill(drop, INF)


def cumsum_of_logits(logits, p):
    sorted_logits, order, _ = _sorted(logits)
    drop = (sorted_logits.cumsum(-1) - sorted_logits) >= p
    return logits.masked_fill(drop.scatter(-1, order, drop), INF)


def returns_probabilities(logits, p):
    return top_p_filter(logits, p).softmax(-1)


def forgets_to_unsort(logits, p):
    sorted_logits, order, probs = _sorted(logits)
    drop = (probs.cumsum(-1) - probs) >= p
    return logits.masked_fill(drop, INF)


def gathers_back(logits, p):
    sorted_logits, order, probs = _sorted(logits)
    drop = (probs.cumsum(-1) - probs) >= p
    return logits.masked_fill(drop.gather(-1, order), INF)


def zeros_not_inf(logits, p):
    return torch.nan_to_num(top_p_filter(logits, p), neginf=0.0)


def in_place(logits, p):
    sorted_logits, order, probs = _sorted(logits)
    drop = (probs.cumsum(-1) - probs) >= p
    return logits.masked_fill_(drop.scatter(-1, order, drop), INF)


def test_top_p_passes_correct_code(capsys):
    for correct in (top_p_filter, hf_top_p, loop_top_p):
        assert_passes(check_top_p_filter, correct, capsys)


@pytest.mark.parametrize(
    "buggy, hint",
    [
        (stub, "not implemented yet"),
        (top_vanishes, "not even it"),
        (drops_the_top, "most likely token was removed"),
        (includes_itself, "carries the sum past p"),
        (not_sorted, "vocabulary order. Sort them first"),
        (cumsum_of_logits, "cumulative sum of the logits"),
        (returns_probabilities, "you returned probabilities"),
        (forgets_to_unsort, "applied them to the logits in vocabulary order"),
        (gathers_back, "with gather"),
        (zeros_not_inf, "not 0"),
        (in_place, "changed the logits passed in"),
        (keeps_at_exactly_p, "already sum to exactly p"),
    ],
)
def test_top_p_names_the_mistake(buggy, hint):
    assert_fails(check_top_p_filter, buggy, hint)


# ----------------------------------------------------------------------------- KV-cache step
def explicit_step(q, k, v, past=None):  # written out: softmax(q k^T / sqrt(hs)) v
    if past is not None:
        k = torch.cat((past[0], k), dim=-2)
        v = torch.cat((past[1], v), dim=-2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(k.shape[-1])
    return scores.softmax(dim=-1) @ v, (k, v)


def _cached(q, k, v, past):
    return (k, v) if past is None else (torch.cat([past[0], k], 2), torch.cat([past[1], v], 2))


def wrong_dim(q, k, v, past=None):
    k_all = k if past is None else torch.cat([past[0], k], dim=1)
    v_all = v if past is None else torch.cat([past[1], v], dim=1)
    return F.scaled_dot_product_attention(q, k_all, v_all), (k_all, v_all)


def attends_before_appending(q, k, v, past=None):
    y = F.scaled_dot_product_attention(q, past[0], past[1]) if past else v
    return y, _cached(q, k, v, past)


def causal_mask_hides_cache(q, k, v, past=None):
    k_all, v_all = _cached(q, k, v, past)
    return F.scaled_dot_product_attention(q, k_all, v_all, is_causal=True), (k_all, v_all)


def returns_old_cache(q, k, v, past=None):
    k_all, v_all = _cached(q, k, v, past)
    return F.scaled_dot_product_attention(q, k_all, v_all), past


def divides_by_head_size(q, k, v, past=None):
    k_all, v_all = _cached(q, k, v, past)
    scores = q @ k_all.transpose(-2, -1) / k.size(-1)
    return scores.softmax(-1) @ v_all, (k_all, v_all)


def new_before_past(q, k, v, past=None):
    k_all = k if past is None else torch.cat([k, past[0]], dim=2)
    v_all = v if past is None else torch.cat([v, past[1]], dim=2)
    return F.scaled_dot_product_attention(q, k_all, v_all), (k_all, v_all)


def merges_heads(q, k, v, past=None):
    k_all, v_all = _cached(q, k, v, past)
    y = F.scaled_dot_product_attention(q, k_all, v_all)  # (B, nh, 1, hs)
    return y.transpose(1, 2).reshape(y.size(0), 1, -1), (k_all, v_all)


def crashes_on_empty_cache(q, k, v, past):
    k_all, v_all = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
    return F.scaled_dot_product_attention(q, k_all, v_all), (k_all, v_all)


def test_attend_with_cache_passes_correct_code(capsys):
    for correct in (attend_with_cache, explicit_step):
        assert_passes(check_attend_with_cache, correct, capsys)


@pytest.mark.parametrize(
    "buggy, hint",
    [
        (stub, "not implemented yet"),
        (wrong_dim, "append along the *time* dimension"),
        (attends_before_appending, "*before* attending"),
        (causal_mask_hides_cache, "a causal mask hides the cache"),
        (returns_old_cache, "you returned the old cache"),
        (divides_by_head_size, "scaled wrong (1/hs)"),
        (new_before_past, "goes *after* the cached ones"),
        (merges_heads, "Leave the heads apart"),
        (crashes_on_empty_cache, "past is None for the first position"),
    ],
)
def test_attend_with_cache_names_the_mistake(buggy, hint):
    assert_fails(check_attend_with_cache, buggy, hint)


@pytest.mark.parametrize(
    "check, target",
    [(check_top_p_filter, top_p_filter), (check_attend_with_cache, attend_with_cache)],
)
def test_stretch_checks_leave_global_rng_alone(check, target, capsys):
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    check(target)
    assert torch.equal(torch.get_rng_state(), states[0])
    assert random.getstate() == states[1]
    assert np.array_equal(np.random.get_state()[1], states[2])
