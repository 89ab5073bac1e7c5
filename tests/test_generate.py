"""Sampling: filters, the KV cache (same logits as without, while the text fits the block), long
generations, prompts, seeds."""

from __future__ import annotations

import pytest
import torch
from _tiny import tiny_corpus

from shared.attention import attention_weights
from shared.engine.errors import CourseError
from shared.generate import generate, generate_ids, sample_next, top_k_filter, top_p_filter
from shared.kv_cache import attend_with_cache, forward_with_cache
from shared.model import GPT, GPTConfig


@pytest.fixture(scope="module")
def model_and_tokenizer():
    tokenizer = tiny_corpus().tokenizer
    torch.manual_seed(0)
    model = GPT(GPTConfig(tokenizer.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16))
    with torch.no_grad():  # larger random weights: peaked, varied distributions
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model.eval(), tokenizer


def test_top_k_keeps_the_k_largest_and_clamps_k():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0], [0.0, -1.0, 2.0, 1.0, -2.0]])
    kept = top_k_filter(logits, 2)
    assert torch.equal(
        torch.isfinite(kept), torch.tensor([[0, 1, 0, 1, 0], [0, 0, 1, 1, 0]]).bool()
    )
    assert torch.equal(kept[torch.isfinite(kept)], torch.tensor([5.0, 4.0, 2.0, 1.0]))
    assert torch.equal(top_k_filter(logits, 99), logits)  # k > vocab: keep everything


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.05, 0.3, 0.15]])
    kept = torch.isfinite(top_p_filter(probs.log(), 0.75))
    assert kept.tolist() == [[True, False, True, False]]
    assert torch.isfinite(top_p_filter(probs.log(), 0.01)).sum() == 1  # the top one always stays
    assert torch.isfinite(top_p_filter(probs.log(), 1.0)).all()


def test_sample_next_shape_seed_and_temperature():
    logits = torch.randn(3, 10)
    a = sample_next(logits, 0.8, generator=torch.Generator().manual_seed(1))
    b = sample_next(logits, 0.8, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 1) and a.dtype == torch.long and torch.equal(a, b)
    peaked = torch.tensor([[0.0, 3.0, 1.0]]).repeat(2000, 1)
    cold = sample_next(peaked, 0.1, generator=torch.Generator().manual_seed(0))
    assert (cold == 1).all()  # low temperature: (almost) always the most likely token
    hot = sample_next(peaked, 100.0, generator=torch.Generator().manual_seed(0))
    assert hot.flatten().bincount(minlength=3).min() > 500  # high temperature: nearly uniform
    with pytest.raises(CourseError):
        sample_next(logits, 0.0)


def test_kv_cache_gives_the_same_logits_as_the_full_forward(model_and_tokenizer):
    model, _ = model_and_tokenizer
    idx = torch.randint(
        model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0)
    )
    logits, cache = forward_with_cache(model, idx[:, :5])
    steps = [logits[:, -1]]
    for t in range(5, 16):
        logits, cache = forward_with_cache(model, idx[:, t : t + 1], cache)
        steps.append(logits[:, -1])
    full, _ = model(idx)
    assert torch.allclose(torch.stack(steps, 1), full[:, 4:], atol=1e-5)


def test_attend_with_cache_is_causal_attention_on_the_new_positions():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 4, generator=g) for _ in range(3))  # (B, nh, T, hs)
    full = attention_weights(q, k) @ v  # (B, nh, T, hs): every position at once
    for t_past in (0, 4, 6):  # no cache; several new positions; one new position
        past = (k[:, :, :t_past], v[:, :, :t_past]) if t_past else None
        y, (k_all, v_all) = attend_with_cache(
            q[:, :, t_past:], k[:, :, t_past:], v[:, :, t_past:], past
        )
        assert torch.allclose(y, full[:, :, t_past:], atol=1e-5)
        assert torch.equal(k_all, k) and torch.equal(v_all, v)  # the cache, extended in order


def step_logits(model, idx, max_new_tokens, use_cache):
    """Sample with a hook on lm_head: the ids, and the logits each step drew from (steps, V)."""
    seen = []
    hook = model.lm_head.register_forward_hook(lambda m, i, out: seen.append(out[0, -1].clone()))
    try:
        generator = torch.Generator().manual_seed(3)
        ids = generate_ids(model, idx, max_new_tokens, generator=generator, use_cache=use_cache)
    finally:
        hook.remove()
    return ids, torch.stack(seen)


def test_cached_and_uncached_sampling_agree_while_the_text_fits_the_block(model_and_tokenizer):
    model, _ = model_and_tokenizer  # block_size 16
    idx = torch.tensor([[1, 2, 3]])
    fits = 16 - 3 + 1  # the last of these steps reads exactly block_size ids
    fast, fast_logits = step_logits(model, idx, fits + 1, use_cache=True)
    slow, slow_logits = step_logits(model, idx, fits + 1, use_cache=False)
    assert fast.shape == (1, 3 + fits + 1)
    assert torch.allclose(fast_logits[:fits], slow_logits[:fits], atol=1e-5)
    assert torch.equal(fast[:, : 3 + fits], slow[:, : 3 + fits])
    # One step later the plain loop slides its window (positions 0..15 again, one id later);
    # the cache cannot (its keys carry positions 0..15), so it refills from the last half
    # block and sees 8 ids instead of 16: different logits from here on.
    assert not torch.allclose(fast_logits[fits], slow_logits[fits], atol=1e-3)


@pytest.mark.parametrize("use_cache", [True, False])
def test_long_generations_run_past_block_size(model_and_tokenizer, use_cache):
    model, tokenizer = model_and_tokenizer
    streamed = []
    text = generate(
        model, tokenizer, "En un", 100, seed=0, use_cache=use_cache, stream=streamed.append
    )
    assert text.startswith("En un") and len(text) == 105
    assert "".join(streamed) == text[5:]
    assert set(text) <= set(tokenizer.chars)


def test_same_seed_same_text_and_different_seed_different_text(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    a = generate(model, tokenizer, "En", 60, seed=1)
    assert a == generate(model, tokenizer, "En", 60, seed=1)
    assert a != generate(model, tokenizer, "En", 60, seed=2)


def test_long_prompt_uses_its_last_block_size_chars(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    long_prompt = "no quiero acordarme, un hidalgo de los de lanza"  # 47 chars > block 16
    a = generate(model, tokenizer, long_prompt, 10, seed=4, use_cache=False)
    b = generate(model, tokenizer, long_prompt[-16:], 10, seed=4, use_cache=False)
    assert a.startswith(long_prompt) and a[len(long_prompt) :] == b[16:]


def test_unknown_prompt_chars_are_named_and_empty_prompt_starts_a_paragraph(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(CourseError, match="'Ω'.*'☃'|'☃'.*'Ω'"):
        generate(model, tokenizer, "En un Ω lugar ☃", 5)
    text = generate(model, tokenizer, "", 20, seed=0)
    assert len(text) == 20


def test_generation_restores_training_mode(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    model.train()
    generate(model, tokenizer, "En", 3, seed=0)
    assert model.training
    model.eval()


@pytest.mark.parametrize(
    "bad",
    [dict(temperature=0), dict(temperature=-1), dict(top_k=0), dict(top_p=1.5), dict(top_p=0)],
)
def test_bad_sampling_settings_are_course_errors(model_and_tokenizer, bad):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(CourseError):
        generate(model, tokenizer, "En", 3, **bad)
