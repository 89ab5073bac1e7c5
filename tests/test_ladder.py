"""The loss ladder: rows recorded and replaced, quick label, AblationBlock == Block, gradients."""

from __future__ import annotations

import functools
import json
import random

import numpy as np
import pytest
import torch

from shared.block import Block
from shared.lesson_tools import ladder
from shared.model import GPT, GPTConfig
from tests._tiny import tiny_corpus


@pytest.fixture
def corpus():
    return tiny_corpus()


def test_rows_are_recorded_in_rung_order_and_replaced(corpus, tmp_path):
    path = tmp_path / "ladder.json"
    model = ladder.rung_model("one head", corpus.vocab_size)
    first = ladder.train_rung("one head", model, corpus, steps=3, path=path)
    assert set(first) == {"name", "params", "val_loss", "steps", "quick"}
    assert first["params"] == sum(p.numel() for p in model.parameters())
    ladder.train_rung("bigram", ladder.rung_model("bigram", corpus.vocab_size), corpus, 2, path)
    assert [r["name"] for r in ladder.load_ladder(path)] == ["bigram", "one head"]
    again = ladder.train_rung(
        "one head", ladder.rung_model("one head", corpus.vocab_size), corpus, steps=6, path=path
    )
    rows = ladder.load_ladder(path)
    assert [r["name"] for r in rows] == ["bigram", "one head"]  # replaced, not added
    assert rows[1] == again and rows[1]["steps"] == 6
    assert json.loads(path.read_text(encoding="utf-8"))  # plain JSON on disk


def test_training_lowers_the_loss_and_is_reproducible(corpus, tmp_path):
    path = tmp_path / "ladder.json"
    untrained = ladder.train_rung(
        "multi-head", ladder.rung_model("multi-head", corpus.vocab_size), corpus, 0, path
    )
    trained = ladder.train_rung(
        "multi-head", ladder.rung_model("multi-head", corpus.vocab_size), corpus, 15, path
    )
    repeat = ladder.train_rung(
        "multi-head", ladder.rung_model("multi-head", corpus.vocab_size), corpus, 15, path
    )
    assert trained["val_loss"] < untrained["val_loss"] - 0.3
    assert repeat["val_loss"] == trained["val_loss"]


def test_quick_mode_takes_few_steps_and_says_so(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPT_COURSE_QUICK", "1")
    path = tmp_path / "ladder.json"
    row = ladder.train_rung("bigram", ladder.rung_model("bigram", corpus.vocab_size), corpus,
                            path=path)  # fmt: skip
    assert row["steps"] == ladder.QUICK_STEPS and row["quick"] is True
    monkeypatch.setenv("GPT_COURSE_QUICK", "0")
    assert ladder.default_steps() == ladder.FULL_STEPS
    pytest.importorskip("matplotlib").use("Agg")
    ladder.show_ladder(path)
    out = capsys.readouterr().out
    assert "bigram" in out and "quick mode" in out


def test_quick_mode_rows_go_to_their_own_file(monkeypatch):
    monkeypatch.setenv("GPT_COURSE_QUICK", "1")
    quick = ladder.ladder_path()
    monkeypatch.setenv("GPT_COURSE_QUICK", "0")
    assert quick != ladder.ladder_path() and ladder.ladder_path().name == "loss_ladder.json"


def test_show_ladder_on_an_empty_ladder(tmp_path, capsys):
    ladder.show_ladder(tmp_path / "none.json")
    assert "empty" in capsys.readouterr().out


def test_training_leaves_the_global_rng_alone(corpus, tmp_path):
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    ladder.train_rung("one head", ladder.rung_model("one head", corpus.vocab_size), corpus, 2,
                      tmp_path / "l.json")  # fmt: skip
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1]) and random.getstate() == states[2]


def test_unknown_rung_is_refused():
    with pytest.raises(ValueError, match="unknown rung"):
        ladder.rung_model("two heads", 10)


def test_ablation_block_with_everything_on_equals_block():
    torch.manual_seed(0)
    block = Block(16, 4, 8, 0.0)
    ablation = ladder.AblationBlock(16, 4, 8, 0.0)
    ablation.load_state_dict(block.state_dict())  # same names, same shapes
    x = torch.randn(2, 8, 16)
    torch.testing.assert_close(ablation(x), block(x))


def test_ablation_switches_remove_parts():
    bare = ladder.AblationBlock(16, 4, 8, feedforward=False, residual=False, layernorm=False)
    assert bare.ffwd is None
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in bare.modules())
    x = torch.randn(2, 8, 16)
    torch.testing.assert_close(bare(x), bare.sa(x))  # no residual: just attention
    with_residual = ladder.AblationBlock(16, 4, 8, feedforward=False, layernorm=False)
    with_residual.load_state_dict(bare.state_dict())
    torch.testing.assert_close(with_residual(x), x + bare.sa(x))


def _first_layer_grad_norm(residual: bool, layernorm: bool, seed: int) -> float:
    torch.manual_seed(seed)
    config = GPTConfig(vocab_size=20, block_size=16, n_layer=8, n_head=2, n_embd=32)
    block = functools.partial(ladder.AblationBlock, residual=residual, layernorm=layernorm)
    model = GPT(config, block=block)
    idx = torch.randint(0, 20, (4, 16))
    _, loss = model(idx, torch.randint(0, 20, (4, 16)))
    loss.backward()
    return model.blocks[0].sa.c_attn.weight.grad.norm().item()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deep_stack_without_residual_and_layernorm_starves_the_first_layer(seed):
    with_both = _first_layer_grad_norm(residual=True, layernorm=True, seed=seed)
    without = _first_layer_grad_norm(residual=False, layernorm=False, seed=seed)
    assert without < with_both / 100, (without, with_both)


def test_the_ladder_plot_shows_each_model_apart_never_a_line_between_them(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    path = tmp_path / "ladder.json"
    rows = [
        {"name": n, "params": 1, "val_loss": v, "steps": 10} for n, v in (("a", 2.5), ("b", 2.1))
    ]
    path.write_text(json.dumps(rows), encoding="utf-8")
    fig, ax = plt.subplots()
    ladder.show_ladder(path, ax=ax)
    heights = sorted(round(p.get_height(), 3) for p in ax.patches)
    assert heights == [2.1, 2.5]  # one bar per model
    slopes = [line for line in ax.get_lines() if len(set(line.get_ydata())) > 1]
    assert not slopes  # the only lines are the horizontal reference levels
    plt.close(fig)
