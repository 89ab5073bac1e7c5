"""The CPU default reads BPE tokens (issue 32): `train` and `run` without --tokenizer."""

from __future__ import annotations

import pytest
from _cli import run_cli
from _tiny import TEXT, tiny_corpus

import shared.bpe_corpus
import shared.data
import shared.engine.train_config
from shared.bpe import BPETokenizer
from shared.bpe_corpus import bpe_corpus
from shared.engine.checkpoint import load_checkpoint
from shared.engine.train_config import recipe_tokenizer

TINY_MODEL = ["--max-iters", 2, "--time-budget", "none", "--eval-interval", 1000,
              "--n-layer", 1, "--n-embd", 16, "--n-head", 2, "--block-size", 8,
              "--batch-size", 2, "--quiet"]  # fmt: skip


@pytest.fixture
def full_size(monkeypatch):
    """Outside quick mode (what a learner runs), on the tiny text."""
    monkeypatch.setenv("GPT_COURSE_QUICK", "0")
    monkeypatch.setattr(shared.data, "load_corpus", lambda *a, **k: tiny_corpus())


def test_the_modern_recipe_reads_bpe_the_classic_one_characters(monkeypatch):
    monkeypatch.setenv("GPT_COURSE_QUICK", "0")
    assert (recipe_tokenizer("modern"), recipe_tokenizer("classic")) == ("bpe", "char")
    monkeypatch.setenv("GPT_COURSE_QUICK", "1")  # seconds-long runs: no merges to learn
    assert recipe_tokenizer("modern") == "char"


def test_train_without_tokenizer_flag_follows_the_recipe(tmp_path, full_size, capsys):
    code, out, err = run_cli(["train", "--vocab-size", 280, *TINY_MODEL,
                              "--out", tmp_path / "m.pt"], capsys)  # fmt: skip
    assert code == 0, err
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.tokenizer.to_dict()["type"] == "bpe" and ckpt.tokenizer.vocab_size == 280
    assert "nats/token = " in out  # the summary speaks in the model's units
    code, out, err = run_cli(["train", "--recipe", "classic", *TINY_MODEL,
                              "--out", tmp_path / "c.pt"], capsys)  # fmt: skip
    assert code == 0, err
    assert load_checkpoint(tmp_path / "c.pt").tokenizer.to_dict()["type"] == "char"
    code, out, err = run_cli(["train", "--recipe", "classic", "--vocab-size", 280, *TINY_MODEL,
                              "--out", tmp_path / "v.pt"], capsys)  # fmt: skip
    assert code == 2 and "--vocab-size needs --tokenizer bpe" in err
    code, out, err = run_cli(["train", "--tokenizer", "char", *TINY_MODEL,
                              "--out", tmp_path / "x.pt"], capsys)  # fmt: skip
    assert code == 0, err
    assert load_checkpoint(tmp_path / "x.pt").tokenizer.to_dict()["type"] == "char"


def test_resume_keeps_the_checkpoints_tokenizer_not_the_recipes(tmp_path, full_size, capsys):
    code, _, err = run_cli(["train", "--tokenizer", "char", *TINY_MODEL,
                            "--out", tmp_path / "m.pt"], capsys)  # fmt: skip
    assert code == 0, err
    more = [*TINY_MODEL, "--max-iters", 4, "--resume", "--out", tmp_path / "m.pt"]
    code, out, err = run_cli(["train", *more], capsys)
    assert code == 0 and "(step 4, " in out, err
    assert load_checkpoint(tmp_path / "m.pt").tokenizer.to_dict()["type"] == "char"


def test_run_trains_on_bpe_tokens_when_the_recipe_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shared.data, "load_corpus", lambda *a, **k: tiny_corpus())
    monkeypatch.setattr(shared.engine.train_config, "recipe_tokenizer", lambda name: "bpe")
    merges = BPETokenizer.train(TEXT, 280)
    monkeypatch.setattr(
        shared.bpe_corpus, "load_bpe_corpus", lambda *a, **k: bpe_corpus(TEXT, merges)
    )
    code, out, err = run_cli(
        ["run", "--checkpoint", tmp_path / "gpt.pt", "--outputs-dir", tmp_path / "out",
         "--time-budget", 1, "--max-new-chars", 30, "--no-gif", "--quiet",
         "--prompt", "Rocinante 🐴 "],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "280 BPE tokens (lesson 09)" in out
    assert load_checkpoint(tmp_path / "gpt.pt").tokenizer.merges == merges.merges
    sample = (tmp_path / "out" / "sample.txt").read_text(encoding="utf-8")
    assert sample.startswith("Rocinante 🐴 ")  # BPE: no character is unknown
