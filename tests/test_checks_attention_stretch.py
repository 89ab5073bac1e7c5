"""Lesson 04's stretch checks (split_heads, merge_heads): stub, reference, a differently written
correct version, and classic mistakes, each rejected with its own hint."""

import random

import numpy as np
import pytest
import torch
from checkhelpers import assert_fails, assert_passes, stub

from shared import attention as ref
from shared.checks import EXERCISES, check_merge_heads, check_split_heads


def test_registered_as_optional_exercises_of_lesson_04():
    stretch = [ex for ex in EXERCISES["04_multihead"] if ex.optional]
    assert [(ex.check, ex.target) for ex in stretch] == [
        ("check_split_heads", "split_heads"),
        ("check_merge_heads", "merge_heads"),
    ]


# --- split_heads ------------------------------------------------------------------------------


def split_einops_style(x, n_head):
    B, T, C = x.shape
    return x.reshape(B, T, n_head, -1).permute(0, 2, 1, 3)


def split_by_chunks(x, n_head):
    return torch.stack(x.chunk(n_head, dim=-1), dim=1)  # (B, nh, T, hs)


@pytest.mark.parametrize("correct", [ref.split_heads, split_einops_style, split_by_chunks])
def test_split_heads_accepts_correct_versions(correct, capsys):
    assert_passes(check_split_heads, correct, capsys)


def test_split_heads_stub():
    assert_fails(check_split_heads, stub, "not implemented yet")


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda x, nh: x.view(x.shape[0], nh, x.shape[1], -1), "cuts the sequence into pieces"),
        (lambda x, nh: x.view(x.shape[0], x.shape[1], -1, nh).permute(0, 3, 1, 2), "(hs, nh)"),
        (
            lambda x, nh: x.transpose(1, 2).reshape(x.shape[0], nh, x.shape[1], -1),
            "transposed T and C before splitting",
        ),  # fmt: skip
        (lambda x, nh: x.view(x.shape[0], x.shape[1], nh, -1), "add .transpose(1, 2)"),
        (
            lambda x, nh: x.view(x.shape[0], x.shape[1], nh, -1).transpose(1, 3),
            "transpose dims 1 and 2",
        ),  # fmt: skip
        (lambda x, nh: x, "comes back unchanged"),
    ],
)
def test_split_heads_names_classic_mistakes(wrong, hint):
    assert_fails(check_split_heads, wrong, hint)


def test_split_heads_in_place_edit_is_caught():
    def clobber(x, n_head):
        out = ref.split_heads(x.clone(), n_head)
        x.zero_()
        return out

    assert_fails(check_split_heads, clobber, "changed its input in place")


# --- merge_heads ------------------------------------------------------------------------------


def merge_with_permute(y):
    B, nh, T, hs = y.shape
    return y.permute(0, 2, 1, 3).reshape(B, T, nh * hs)


def merge_by_cat(y):
    return torch.cat(y.unbind(dim=1), dim=-1)


@pytest.mark.parametrize("correct", [ref.merge_heads, merge_with_permute, merge_by_cat])
def test_merge_heads_accepts_correct_versions(correct, capsys):
    assert_passes(check_merge_heads, correct, capsys)


def test_merge_heads_stub():
    assert_fails(check_merge_heads, stub, "not implemented yet")


def _bt(y):
    return y.shape[0], y.shape[2], y.shape[1] * y.shape[3]


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda y: y.view(*_bt(y)), "without moving the heads back behind T"),
        (lambda y: y.transpose(1, 2).view(*_bt(y)), ".contiguous() before .view"),
        (lambda y: y.permute(0, 2, 3, 1).reshape(*_bt(y)), "in the order (hs, nh)"),
        (lambda y: y.transpose(1, 2), "did not flatten (nh, hs) into C"),
        (lambda y: y.reshape(y.shape[0], -1, y.shape[3]), "flattened the heads into time"),
    ],
)
def test_merge_heads_names_classic_mistakes(wrong, hint):
    assert_fails(check_merge_heads, wrong, hint)


def test_reference_merge_undoes_split_and_causal_self_attention_uses_them():
    x = torch.randn(2, 7, 12)
    assert torch.equal(ref.merge_heads(ref.split_heads(x, 3)), x)
    attn = ref.CausalSelfAttention(12, 3, block_size=7)
    assert torch.equal(attn.split_heads(x), ref.split_heads(x, 3))


def test_checks_leave_the_global_rng_alone(capsys):
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    check_split_heads(ref.split_heads)
    check_merge_heads(ref.merge_heads)
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1]) and random.getstate() == states[2]
