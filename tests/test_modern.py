"""Lesson 10's modern GPT: the model, its KV cache, checkpoints, resume, Muon + AdamW, the CLI."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from _tiny import tiny_config, tiny_corpus

import shared.train as train_module
from shared.engine.checkpoint import load_checkpoint, read_checkpoint
from shared.engine.errors import CourseError
from shared.engine.train_config import TrainConfig, modern_train_config
from shared.generate import generate_ids
from shared.kv_cache import forward_with_cache, supports_cache
from shared.modern import ModernConfig, ModernGPT, apply_rope, is_modern, rope_angles
from shared.optimizers import MuonAdamW, muon_params
from shared.train import train

ROOT = Path(__file__).resolve().parents[1]


def busy_model(mlp="relu2", block_size=12, vocab=11) -> ModernGPT:
    """A small ModernGPT with every weight off its (partly zero) init, so every part shows."""
    config = ModernConfig(vocab_size=vocab, block_size=block_size, n_layer=2, n_head=2,
                          n_embd=16, mlp=mlp)  # fmt: skip
    torch.manual_seed(0)
    model = ModernGPT(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


def modern_tiny_config(**overrides) -> TrainConfig:
    model = ModernConfig(block_size=16, n_layer=1, n_head=2, n_embd=16)
    return replace(tiny_config(**overrides), model=model, muon_lr=0.02, weight_decay=0.0)


def test_a_fresh_model_predicts_uniformly_and_keeps_the_shapes():
    config = ModernConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
    model = ModernGPT(config)
    idx = torch.randint(0, 11, (3, 8))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 8, 11)
    assert loss.item() == pytest.approx(math.log(11), abs=1e-6)  # zero-initialised head
    assert not any(n.endswith("bias") for n, _ in model.named_parameters())
    assert model.attention_weights(idx).shape == (2, 3, 2, 8, 8)


def test_bad_configs_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="must be even"):
        ModernConfig(vocab_size=5, n_embd=12, n_head=4)  # head size 3
    with pytest.raises(ValueError, match="mlp must be one of"):
        ModernConfig(vocab_size=5, mlp="gelu")
    with pytest.raises(ValueError, match="no dropout"):
        ModernGPT(ModernConfig(vocab_size=5, dropout=0.1))


def test_logits_are_soft_capped():
    model = busy_model()
    with torch.no_grad():
        model.lm_head.weight.mul_(1000)
    logits, _ = model(torch.randint(0, 11, (1, 12)))
    assert logits.abs().max() <= model.config.softcap  # tanh saturates at the cap


def test_attention_scores_depend_only_on_the_offset():
    cos, sin = rope_angles(8, 20)
    q, k = torch.randn(8), torch.randn(8)
    qs, ks = apply_rope(q.expand(20, 8), cos, sin), apply_rope(k.expand(20, 8), cos, sin)
    scores = qs @ ks.T
    assert torch.allclose(scores[5, 2], scores[17, 14], atol=1e-5)
    assert torch.allclose(scores[0, 0], q @ k, atol=1e-5)


@pytest.mark.parametrize("mlp", ["relu2", "swiglu"])
def test_kv_cache_gives_the_logits_of_the_plain_forward_within_block_size(mlp):
    model = busy_model(mlp)
    assert supports_cache(model)
    idx = torch.randint(0, 11, (2, 12))
    full, _ = model(idx)
    logits, cache = forward_with_cache(model, idx[:, :4])  # the prompt, then one id at a time
    steps = [logits]
    for t in range(4, 12):
        logits, cache = forward_with_cache(model, idx[:, t : t + 1], cache)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_sampling_with_the_cache_equals_the_plain_loop_within_block_size():
    model = busy_model()
    prompt = torch.randint(0, 11, (1, 3))
    runs = [
        generate_ids(model, prompt, 9, generator=torch.Generator().manual_seed(4), use_cache=c)
        for c in (True, False)
    ]
    assert torch.equal(*runs) and runs[0].shape == (1, 12)


def test_muon_gets_the_hidden_matrices_and_adamw_the_rest():
    model = busy_model()
    hidden, other = muon_params(model)
    assert all(p.dim() == 2 for p in hidden) and len(hidden) == 2 * 4  # 4 matrices per block
    ids = {id(p) for p in other}
    assert id(model.token_embedding.weight) in ids and id(model.lm_head.weight) in ids
    assert len(other) == 2 + 2 * 2 + 1  # embedding, head, 2 gains per block, final gain
    optimizer = MuonAdamW(model, learning_rate=1e-2, muon_lr=0.05)
    optimizer.param_groups[0]["lr"] = 5e-3  # what the schedule does: half the peak
    model(torch.randint(0, 11, (2, 12)), torch.randint(0, 11, (2, 12)))[1].backward()
    optimizer.step()
    assert optimizer.muon.param_groups[0]["lr"] == pytest.approx(0.025)
    assert optimizer.adamw.param_groups[0]["lr"] == pytest.approx(5e-3)


def test_a_modern_checkpoint_records_its_architecture_and_loads_back(tmp_path):
    corpus = tiny_corpus()
    result = train(corpus, modern_tiny_config(max_iters=4), out=tmp_path / "m.pt", progress=False)
    assert is_modern(result.model)
    raw = read_checkpoint(tmp_path / "m.pt")
    assert raw["architecture"] == "modern" and raw["model_config"]["mlp"] == "relu2"
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert isinstance(ckpt.model, ModernGPT) and ckpt.model_config == result.model.config
    idx = torch.tensor([corpus.tokenizer.encode("En un lugar")])
    assert torch.equal(ckpt.model(idx)[0], result.model(idx)[0])
    restored = TrainConfig.from_dict(raw["train_config"]).model
    assert restored == replace(result.model.config, vocab_size=None)  # the corpus sets it


def test_ctrl_c_then_resume_matches_an_uninterrupted_modern_run(tmp_path, monkeypatch):
    corpus, config = tiny_corpus(), modern_tiny_config(max_iters=10, eval_interval=5)
    full = train(corpus, config, progress=False)
    real, calls = train_module.get_batch, {"n": 0}

    def get_batch(*args, **kwargs):
        if calls["n"] == 8:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "get_batch", get_batch)
        first = train(corpus, config, out=tmp_path / "m.pt", progress=False)
    assert first.stopped == "interrupted" and 0 < first.step < 10
    resumed = train(corpus, config, out=tmp_path / "m.pt", resume=True, progress=False)
    assert resumed.step == 10
    for (name, a), b in zip(
        full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), name


def test_resuming_a_gpt_checkpoint_as_a_modern_model_is_refused(tmp_path):
    corpus = tiny_corpus()
    train(corpus, tiny_config(max_iters=2), out=tmp_path / "g.pt", progress=False)
    with pytest.raises(CourseError, match="cannot resume"):
        train(corpus, modern_tiny_config(max_iters=4), out=tmp_path / "g.pt", resume=True,
              progress=False)  # fmt: skip


def test_the_modern_recipe_is_small_in_quick_mode(monkeypatch):
    monkeypatch.setenv("GPT_COURSE_QUICK", "1")
    config = modern_train_config(n_layer=3)
    assert isinstance(config.model, ModernConfig) and config.model.n_layer == 3
    assert config.time_budget <= 15


def test_train_recipe_modern_runs_from_the_command_line_under_torchrun(tmp_path):
    from test_distributed import fake_book, torchrun_train

    fake_book(tmp_path)
    out = tmp_path / "gpt.pt"
    flags = ["--recipe", "modern", "--data-dir", tmp_path, "--out", out, "--device", "cpu",
             "--quiet", "--block-size", 16, "--batch-size", 4, "--n-layer", 1, "--n-head", 2,
             "--n-embd", 16, "--eval-iters", 2, "--max-iters", 3, "--time-budget", "none"]  # fmt: skip
    proc = torchrun_train(flags)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "recipe: modern" in proc.stdout and "world size 2" in proc.stdout
    assert isinstance(load_checkpoint(out).model, ModernGPT)


def test_lessons_07_08_use_the_stand_in_when_the_checkpoint_holds_the_modern_gpt(tmp_path, capsys):
    from shared.lesson_tools.lesson_checkpoint import holds_lesson_gpt, lesson_checkpoint

    corpus = tiny_corpus()
    modern = train(corpus, modern_tiny_config(max_iters=2), out=tmp_path / "m.pt", progress=False)
    classic = train(corpus, tiny_config(max_iters=2), out=tmp_path / "c.pt", progress=False)
    assert holds_lesson_gpt(classic.checkpoint)
    assert capsys.readouterr().out == ""
    assert not holds_lesson_gpt(modern.checkpoint)
    assert lesson_checkpoint(modern.checkpoint) is None  # no earlier copy holds the lessons' GPT
    assert "uses the stand-in" in capsys.readouterr().out
