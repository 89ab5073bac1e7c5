"""The learner's own GPT: per-head <-> fused conversion, train(model=...), reading their notebooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _tiny import tiny_config, tiny_corpus

import shared.train as train_module
from shared.engine.checkpoint import load_checkpoint, read_checkpoint
from shared.engine.convert import is_reference_layout, load_reference_state, to_reference
from shared.generate import generate
from shared.lesson_tools.your_gpt import HeadsBlock, notebook_definitions, your_parts
from shared.model import GPT, GPTConfig
from shared.train import train

ROOT = Path(__file__).resolve().parent.parent
CONFIG = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


def heads_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(CONFIG, block=HeadsBlock).eval()
    with torch.no_grad():  # LayerNorms and biases away from their init, so every tensor matters
        for p in model.parameters():
            p.add_(torch.randn(p.shape) * 0.1)
    return model


def test_a_per_head_gpt_converts_to_the_reference_layout_with_the_same_logits():
    model = heads_gpt()
    assert not is_reference_layout(model)
    ref = to_reference(model)
    assert isinstance(ref, GPT) and is_reference_layout(ref)
    idx = torch.randint(0, CONFIG.vocab_size, (3, CONFIG.block_size))
    assert torch.allclose(ref(idx)[0], model(idx)[0], atol=1e-5)
    assert not torch.allclose(GPT(CONFIG).eval()(idx)[0], model(idx)[0], atol=1e-3)


def test_converting_back_restores_every_weight():
    model, other = heads_gpt(0), heads_gpt(1)
    load_reference_state(other, to_reference(model).state_dict())
    for (name, a), b in zip(model.named_parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b), name


def test_a_block_without_a_reference_counterpart_is_refused():
    class Odd(HeadsBlock):
        def __init__(self, *args):
            super().__init__(*args)
            self.extra = torch.nn.Linear(4, 4)

    with pytest.raises(ValueError, match="without a place"):
        to_reference(GPT(CONFIG, block=Odd))


def test_train_trains_the_given_model_and_its_checkpoint_samples(tmp_path):
    corpus = tiny_corpus()
    config = tiny_config(max_iters=8)
    model_config = GPTConfig(
        vocab_size=corpus.vocab_size,
        block_size=config.model.block_size,
        n_layer=1,
        n_head=2,
        n_embd=16,
    )
    torch.manual_seed(0)
    model = GPT(model_config, block=HeadsBlock)
    before = [p.detach().clone() for p in model.parameters()]
    out = tmp_path / "gpt.pt"
    result = train(corpus, config, out=out, progress=False, model=model, source="your Block")
    assert result.model is model and result.step == 8
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert len(result.history["lr"]) == 8 and result.history["val"]

    ckpt = load_checkpoint(out)
    assert ckpt.source == "your Block" and ckpt.step == 8
    idx = torch.tensor([corpus.tokenizer.encode("En un lugar")])
    model.eval()
    assert torch.allclose(ckpt.model(idx)[0], model(idx)[0], atol=1e-5)
    a = generate(ckpt.model, ckpt.tokenizer, "En un", 20, seed=3, use_cache=True)
    b = generate(model, corpus.tokenizer, "En un", 20, seed=3, use_cache=False)
    assert a == b and len(a) == len("En un") + 20


def test_ctrl_c_and_resume_continue_the_given_model_like_an_uninterrupted_run(
    tmp_path, monkeypatch
):
    corpus, config = tiny_corpus(), tiny_config(max_iters=10, eval_interval=4)

    def fresh():
        torch.manual_seed(0)
        return GPT(GPTConfig(corpus.vocab_size, 16, 1, 2, 16), block=HeadsBlock)

    whole = train(corpus, config, progress=False, model=fresh())
    out = tmp_path / "gpt.pt"
    calls = {"n": 0}
    real = train_module.get_batch

    def get_batch(*args, **kwargs):  # Ctrl-C in the middle of the run
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "get_batch", get_batch)
        first = train(corpus, config, out=out, progress=False, model=fresh())
    assert first.stopped == "interrupted" and 0 < first.step < 10
    resumed = train(corpus, config, out=out, resume=True, progress=False, model=fresh())
    assert resumed.step == 10
    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_default_runs_are_labelled_reference(tmp_path):
    out = tmp_path / "gpt.pt"
    train(tiny_corpus(), tiny_config(max_iters=2), out=out, progress=False)
    assert read_checkpoint(out)["source"] == "reference GPT"
    assert load_checkpoint(out).source == "reference GPT"


def test_old_checkpoints_without_a_source_still_load(tmp_path):
    out = tmp_path / "gpt.pt"
    train(tiny_corpus(), tiny_config(max_iters=2), out=out, progress=False)
    payload = torch.load(out, weights_only=True)
    del payload["source"]
    torch.save(payload, out)
    assert load_checkpoint(out).source == "reference GPT"


# ----------------------------------------------------------------------------- your_parts
def test_solved_notebooks_give_a_gpt_built_from_every_class(tmp_path):
    parts = your_parts(ROOT / "solutions")
    assert parts.theirs == [
        "attention_weights",
        "Head",
        "MultiHeadAttention",
        "FeedForward",
        "Block",
    ]
    assert not parts.reasons and "yours" in parts.source
    torch.manual_seed(0)
    model = GPT(CONFIG, block=parts.block)
    assert type(model.blocks[0]).__name__ == "Block"
    assert type(model.blocks[0].sa.heads[0]).__module__ != "shared.attention"  # their Head
    idx = torch.randint(0, CONFIG.vocab_size, (2, CONFIG.block_size))
    assert torch.allclose(to_reference(model)(idx)[0], model(idx)[0], atol=1e-5)


def test_stub_notebooks_fall_back_to_the_reference_and_say_why():
    parts = your_parts(ROOT / "lessons")
    assert parts.theirs == [] and "reference GPT" in parts.source
    assert all("not implemented yet" in why for why in parts.reasons.values())
    assert set(parts.reasons) == {
        "attention_weights",
        "Head",
        "MultiHeadAttention",
        "FeedForward",
        "Block",
    }
    torch.manual_seed(0)
    model = GPT(CONFIG, block=parts.block)
    assert isinstance(model.blocks[0], HeadsBlock)


def _copy_with(tmp_path, replacements: dict[str, tuple[str, str]]) -> Path:
    """solutions/03-05 copied to tmp_path, with (old, new) source edits per notebook."""
    for lesson in ("03_self_attention", "04_multihead", "05_block"):
        nb = json.loads((ROOT / "solutions" / f"{lesson}.ipynb").read_text(encoding="utf-8"))
        old, new = replacements.get(lesson, ("", ""))
        for cell in nb["cells"]:
            source = "".join(cell["source"])
            if old and old in source:
                cell["source"] = source.replace(old, new)
        (tmp_path / f"{lesson}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    return tmp_path


def test_a_failing_class_falls_back_and_hides_the_classes_it_would_have_built(tmp_path):
    # A broken MultiHeadAttention: the reference one builds its own Heads, so the learner's Head
    # and attention_weights are reported as not used.
    folder = _copy_with(tmp_path, {"04_multihead": ("dim=-1)", "dim=0)")})
    parts = your_parts(folder)
    assert parts.theirs == ["FeedForward", "Block"]
    assert "[multihead]" in parts.reasons["MultiHeadAttention"]
    assert "builds its own" in parts.reasons["Head"]
    assert "calls its own" in parts.reasons["attention_weights"]


def test_a_missing_notebook_is_named(tmp_path):
    folder = _copy_with(tmp_path, {})
    (folder / "05_block.ipynb").unlink()
    parts = your_parts(folder)
    assert parts.theirs == ["attention_weights", "Head", "MultiHeadAttention"]
    assert "05_block.ipynb not found" in parts.reasons["Block"]


def test_only_the_last_definition_is_taken_and_magics_are_skipped(tmp_path):
    nb = {
        "cells": [
            {"cell_type": "code", "source": ["def f():\n", "    return 1\n"]},
            {"cell_type": "code", "source": ["%time x = 1\n"]},
            {"cell_type": "markdown", "source": ["def f(): nothing"]},
            {
                "cell_type": "code",
                "source": ["import os\n", "@staticmethod\n", "def f():\n    return 2\n"],
            },
        ]
    }
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    assert notebook_definitions(path, {"f"}) == {"f": "@staticmethod\ndef f():\n    return 2"}
