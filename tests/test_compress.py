"""Prediction is compression (lesson 10): compressors given a context, a model's loss on every
character, and lesson 10's ladder rungs."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from shared.compress import COMPRESSORS, compressor_bits_per_char, loss_on_text, nats_to_bits
from shared.lesson_tools.modern_ladder import (
    MODERN_RUNGS,
    StepGPT,
    modern_optimizer,
    modern_rung_model,
)
from shared.modern import ModernConfig, ModernGPT
from shared.optimizers import MuonAdamW

TEXT = "En un lugar de la Mancha, de cuyo nombre no quiero acordarme, no ha mucho tiempo. " * 40


@pytest.mark.parametrize("name", list(COMPRESSORS))
def test_a_compressor_that_has_seen_the_text_codes_it_almost_for_free(name):
    fresh = compressor_bits_per_char(name, "", TEXT[:2000])
    seen = compressor_bits_per_char(name, TEXT, TEXT[:2000])
    assert 0 < fresh < 8 and seen < fresh / 4


def test_nats_to_bits_divides_by_ln_2():
    assert nats_to_bits(math.log(92)) == pytest.approx(math.log2(92))


def test_loss_on_text_scores_every_character_once():
    torch.manual_seed(0)
    model = ModernGPT(ModernConfig(vocab_size=7, block_size=5, n_layer=1, n_head=2, n_embd=8))
    with torch.no_grad():
        model.lm_head.weight.normal_()
    data = torch.randint(0, 7, (23,))  # 22 predictions: 4 windows of 5 and one of 2
    losses = []
    for start in range(0, 22, 5):
        x, y = data[start : min(start + 5, 22)], data[start + 1 : min(start + 6, 23)]
        losses.append(F.cross_entropy(model(x[None])[0][0], y, reduction="none"))
    expected = torch.cat(losses)
    assert expected.numel() == 22
    assert loss_on_text(model, data, batch=2) == pytest.approx(expected.mean().item(), rel=1e-5)


def test_every_rung_builds_from_its_seed_and_predicts():
    idx = torch.randint(0, 11, (2, 8))
    for name in MODERN_RUNGS:
        a, b = modern_rung_model(name, 11), modern_rung_model(name, 11)
        logits, loss = a(idx, idx)
        assert logits.shape == (2, 8, 11) and torch.isfinite(loss)
        assert torch.equal(logits, b(idx)[0])  # the same seed, the same model
    assert isinstance(modern_rung_model("+ logit soft-cap (modern GPT)", 11), ModernGPT)
    assert isinstance(modern_rung_model("RMSNorm", 11), StepGPT)
    assert modern_rung_model("+ RoPE", 11).position_embedding is None
    assert modern_optimizer("+ ReLU²") is None
    assert isinstance(modern_optimizer("+ Muon")(modern_rung_model("+ Muon", 11)), MuonAdamW)
    with pytest.raises(ValueError, match="unknown rung"):
        modern_rung_model("SwiGLU", 11)
