"""The training loop: schedule, estimate_loss, stopping rules, reproducibility, resume, Ctrl-C."""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import pytest
import torch
from _tiny import tiny_config, tiny_corpus

import shared.train as train_module
from shared.train import (
    TrainConfig,
    default_train_config,
    estimate_loss,
    get_lr,
    train,
    train_step,
)


def test_lr_warms_up_then_decays_to_min_lr():
    config = tiny_config(learning_rate=1e-2, min_lr=1e-3, warmup_iters=4, max_iters=20)
    lrs = [get_lr(step, config) for step in range(21)]
    assert lrs[:4] == sorted(lrs[:4]) and lrs[0] < lrs[3]
    assert lrs[3] == pytest.approx(1e-2)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))  # never goes back up
    assert lrs[20] == pytest.approx(1e-3)


def test_lr_also_decays_with_elapsed_time_under_a_budget():
    config = tiny_config(warmup_iters=2, max_iters=1000, time_budget=100.0)
    assert get_lr(10, config, elapsed=1.0) > get_lr(10, config, elapsed=50.0)
    assert get_lr(10, config, elapsed=100.0) == pytest.approx(config.min_lr)


class Spy(torch.nn.Module):
    """Wraps a model and records the mode and grad state of every forward call."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.calls = []

    def forward(self, idx, targets=None):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.model(idx, targets)


def test_estimate_loss_evaluates_without_grad_in_eval_mode_and_restores_mode():
    corpus = tiny_corpus()
    torch.manual_seed(0)
    from shared.model import GPT

    config = tiny_config(dropout=0.2).model
    spy = Spy(GPT(replace(config, vocab_size=corpus.vocab_size)))
    spy.train()
    losses = estimate_loss(spy, corpus.train_data, corpus.val_data, 16, 4, 3)
    assert set(losses) == {"train", "val"}
    assert all(isinstance(v, float) and 0 < v < 10 for v in losses.values())
    assert len(spy.calls) == 6 and all(call == (False, False) for call in spy.calls)
    assert spy.training  # restored
    spy.eval()
    estimate_loss(spy, corpus.train_data, corpus.val_data, 16, 4, 1)
    assert not spy.training  # and left in eval mode if it came in eval mode


def test_train_step_updates_weights_and_returns_the_loss_before_the_step():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 3), torch.randn(8, 1)

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, xb, yb):
            return None, torch.nn.functional.mse_loss(self.inner(xb), yb)

    wrapper = Wrapper()
    before = torch.nn.functional.mse_loss(model(x), y).item()
    loss = train_step(wrapper, optimizer, x, y)
    assert isinstance(loss, float) and loss == pytest.approx(before)
    assert torch.nn.functional.mse_loss(model(x), y).item() < before


def test_training_lowers_the_loss_and_keeps_history():
    corpus = tiny_corpus()
    result = train(corpus, tiny_config(max_iters=30, eval_interval=10), progress=False)
    h = result.history
    assert result.step == 30 and result.stopped == "max_iters"
    assert h["step"] == [10, 20, 30]
    assert len(h["iter_loss"]) == len(h["lr"]) == 30
    assert h["iter_loss"][0] == pytest.approx(math.log(corpus.vocab_size), abs=0.3)
    assert h["val"][-1] < h["iter_loss"][0] - 0.7
    assert not result.model.training


def test_time_budget_stops_training_early():
    result = train(tiny_corpus(), tiny_config(max_iters=10**6, time_budget=0.5), progress=False)
    assert result.stopped == "time_budget"
    assert 0 < result.step < 10**6
    assert result.history["step"][-1] == result.step  # a final evaluation


def test_same_seed_gives_the_same_model_on_cpu():
    a = train(tiny_corpus(), tiny_config(), progress=False)
    b = train(tiny_corpus(), tiny_config(), progress=False)
    c = train(tiny_corpus(), tiny_config(seed=8), progress=False)
    for (name, pa), pb in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.model.lm_head.weight, c.model.lm_head.weight)


def interrupt_after(monkeypatch, n_batches):
    real = train_module.get_batch
    calls = {"n": 0}

    def get_batch(*args, **kwargs):
        if calls["n"] == n_batches:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "get_batch", get_batch)


def test_ctrl_c_saves_and_resume_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    corpus, config = tiny_corpus(), tiny_config(max_iters=14, eval_interval=5)
    full = train(corpus, config, progress=False)

    out = tmp_path / "ckpt.pt"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 11)  # get_batch calls, training and evaluation
        first = train(corpus, config, out=out, progress=False)
    assert first.stopped == "interrupted" and 0 < first.step < 14
    assert out.is_file()
    resumed = train(corpus, config, out=out, resume=True, progress=False)
    assert resumed.step == 14 and resumed.stopped == "max_iters"
    for (name, pa), pb in zip(
        full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.allclose(pa, pb, atol=1e-6), name
    assert resumed.history["iter_loss"] == pytest.approx(full.history["iter_loss"])
    assert resumed.history["step"] == full.history["step"]


def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    result = train(tiny_corpus(), tiny_config(max_iters=3), out=tmp_path / "x.pt", resume=True,
                   progress=False)  # fmt: skip
    assert result.step == 3 and (tmp_path / "x.pt").is_file()


def test_bad_head_count_is_refused_when_the_config_is_made():
    with pytest.raises(ValueError, match="divisible"):
        tiny_config(n_embd=18, n_head=4)


def test_overrides_reach_the_model_config_and_old_flat_dicts_still_load():
    config = default_train_config(n_layer=3, learning_rate=1e-3)
    assert config.model.n_layer == 3 and config.learning_rate == 1e-3
    assert TrainConfig.from_dict(asdict(config)) == config
    flat = {"n_layer": 2, "block_size": 32, "batch_size": 8}  # checkpoints before the change
    old = TrainConfig.from_dict(flat)
    assert (old.model.n_layer, old.model.block_size, old.batch_size) == (2, 32, 8)


def test_quick_mode_shrinks_the_default_recipe(monkeypatch):
    monkeypatch.setenv("GPT_COURSE_QUICK", "0")
    full = default_train_config()
    monkeypatch.setenv("GPT_COURSE_QUICK", "1")
    quick = default_train_config()
    assert quick.time_budget < full.time_budget and quick.model.n_embd < full.model.n_embd
    assert default_train_config(max_iters=3).max_iters == 3
