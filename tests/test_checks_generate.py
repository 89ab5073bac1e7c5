"""The lesson 07 checks pass correct code (ours and a different one) and name classic bugs."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from checkhelpers import assert_fails, stub
from torch.nn import functional as F

from shared.checks import check_sample_with_temperature, check_top_k_filter
from shared.generate import sample_with_temperature, top_k_filter


# ----------------------------------------------------------------------------- temperature
def other_sample(logits, temperature, generator=None):  # inverse-CDF sampling, no multinomial
    probs = torch.exp(torch.log_softmax(logits / temperature, dim=-1))
    u = torch.rand(logits.size(0), 1, generator=generator)
    ids = (probs.cumsum(-1) < u).sum(-1, keepdim=True)
    return ids.clamp(max=logits.size(-1) - 1)


def softmax_first(logits, temperature, generator=None):
    return torch.multinomial(F.softmax(logits, -1) / temperature, 1, generator=generator)


def double_softmax(logits, temperature, generator=None):
    probs = F.softmax(F.softmax(logits, -1) / temperature, -1)
    return torch.multinomial(probs, 1, generator=generator)


def argmax(logits, temperature, generator=None):
    return (logits / temperature).argmax(-1, keepdim=True)


def multiplied(logits, temperature, generator=None):
    return torch.multinomial(F.softmax(logits * temperature, -1), 1, generator=generator)


def ignores_temperature(logits, temperature, generator=None):
    return torch.multinomial(F.softmax(logits, -1), 1, generator=generator)


def ignores_generator(logits, temperature, generator=None):
    return torch.multinomial(F.softmax(logits / temperature, -1), 1)


def numpy_sample(logits, temperature, generator=None):  # the RNG the spec does not name
    probs = F.softmax(logits / temperature, -1).double()
    probs = (probs / probs.sum(-1, keepdim=True)).numpy()
    return torch.tensor([[np.random.choice(probs.shape[1], p=row)] for row in probs])


def random_sample(logits, temperature, generator=None):
    probs = F.softmax(logits / temperature, -1)
    return torch.tensor(
        [random.choices(range(probs.size(1)), weights=row.tolist()) for row in probs]
    )


def own_generator(logits, temperature, generator=None):
    fixed = torch.Generator().manual_seed(1337)  # ignores the generator passed in
    return torch.multinomial(F.softmax(logits / temperature, -1), 1, generator=fixed)


def in_place_division(logits, temperature, generator=None):
    logits /= temperature
    return torch.multinomial(F.softmax(logits, -1), 1, generator=generator)


T = 0.8  # a notebook global


def global_temperature(logits, temperature, generator=None):
    return torch.multinomial(F.softmax(logits / T, -1), 1, generator=generator)


def no_softmax(logits, temperature, generator=None):
    return torch.multinomial(logits / temperature, 1, generator=generator)


def flat_ids(logits, temperature, generator=None):
    return torch.multinomial(F.softmax(logits / temperature, -1), 1, generator=generator)[:, 0]


def returns_probs(logits, temperature, generator=None):
    return F.softmax(logits / temperature, -1)


def test_temperature_passes_correct_code(capsys):
    check_sample_with_temperature(sample_with_temperature)
    check_sample_with_temperature(other_sample)
    assert capsys.readouterr().out.count("PASSED") == 2


@pytest.mark.parametrize(
    "buggy, hint",
    [
        (stub, "not implemented yet"),
        (softmax_first, "before the softmax"),
        (double_softmax, "divides the probabilities after a softmax"),
        (argmax, "argmax"),
        (multiplied, "multiplied by T"),
        (ignores_temperature, "no effect"),
        (ignores_generator, "torch's global random state"),
        (numpy_sample, "numpy's random state"),
        (random_sample, "Python's `random`"),
        (own_generator, "different generator seeds gave the same samples"),
        (in_place_division, "changed the logits passed in"),
        (global_temperature, "do not follow softmax(logits / T)"),
        (no_softmax, "not probabilities"),
        (flat_ids, "expected ids of shape (B, 1)"),
        (returns_probs, "expected ids of shape (B, 1)"),
    ],
)
def test_temperature_names_the_mistake(buggy, hint):
    error = assert_fails(check_sample_with_temperature, buggy, hint)
    if buggy is global_temperature:  # matches no known mistake: no name is given
        assert "temperature has no effect" not in str(error)


# ----------------------------------------------------------------------------- top-k
def other_top_k(logits, k):  # sort-based, written differently
    k = min(k, logits.shape[-1])
    order = logits.argsort(dim=-1, descending=True)
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order[..., :k], True)
    return torch.where(keep, logits, torch.full_like(logits, float("-inf")))


def k_minus_one(logits, k):
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k).values[..., -1:]
    return logits.masked_fill(logits <= kth, float("-inf"))


def k_plus_one(logits, k):
    k = min(k + 1, logits.size(-1))
    kth = torch.topk(logits, k).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def smallest(logits, k):
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k, largest=False).values[..., -1:]
    return logits.masked_fill(logits > kth, float("-inf"))


def no_clamp(logits, k):
    kth = torch.topk(logits, k).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def zeros_not_inf(logits, k):
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k).values[..., -1:]
    return logits.masked_fill(logits < kth, 0.0)


def in_place(logits, k):
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k).values[..., -1:]
    return logits.masked_fill_(logits < kth, float("-inf"))


def whole_batch(logits, k):
    k = min(k, logits.size(-1))
    kth = torch.topk(logits.flatten(), k).values[-1]
    return logits.masked_fill(logits < kth, float("-inf"))


def values_only(logits, k):
    return torch.topk(logits, min(k, logits.size(-1))).values


def softmaxed(logits, k):
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k).values[..., -1:]
    return F.softmax(logits.masked_fill(logits < kth, float("-inf")), -1).log().exp()


def fixed_k(logits, k):
    kth = torch.topk(logits, 5).values[..., -1:]  # k from a notebook global
    return logits.masked_fill(logits < kth, float("-inf"))


def test_top_k_passes_correct_code(capsys):
    check_top_k_filter(top_k_filter)
    check_top_k_filter(other_top_k)
    assert capsys.readouterr().out.count("PASSED") == 2


@pytest.mark.parametrize(
    "buggy, hint",
    [
        (stub, "not implemented yet"),
        (k_minus_one, "one too few"),
        (k_plus_one, "one too many"),
        (smallest, "smallest"),
        (no_clamp, "clamp"),
        (zeros_not_inf, "set to 0, not -inf"),
        (in_place, "changed the logits passed in"),
        (values_only, "should return logits of the input's shape"),
        (softmaxed, "these are probabilities"),
        (fixed_k, "expected 3"),
        (whole_batch, "per row"),
    ],
)
def test_top_k_names_the_mistake(buggy, hint):
    assert_fails(check_top_k_filter, buggy, hint)
