"""benchmarks/bench_default.py: the candidate syntax and the whole-split score of a checkpoint,
for characters and BPE alike (no timed test: the timings live in benchmarks/RESULTS.md)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import torch
from _tiny import TEXT, tiny_config, tiny_corpus

import shared.data
import shared.engine.checkpoint
from shared.bpe import BPETokenizer
from shared.bpe_corpus import bpe_corpus, text_bits_per_char
from shared.compress import loss_on_text
from shared.train import train

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_default.py"
spec = importlib.util.spec_from_file_location("bench_default", PATH)
bench_default = importlib.util.module_from_spec(spec)
sys.modules["bench_default"] = bench_default
spec.loader.exec_module(bench_default)


def test_a_candidate_is_a_label_and_cli_flags():
    assert bench_default.parse("base") == ("base", [])
    assert bench_default.parse("b:--tokenizer bpe --batch-size 16") == (
        "b",
        ["--tokenizer", "bpe", "--batch-size", "16"],
    )


def test_the_score_is_every_validation_character_for_both_tokenizers(tmp_path, monkeypatch):
    monkeypatch.setattr(shared.data, "load_corpus", lambda *a, **k: tiny_corpus())
    monkeypatch.setattr(bench_default, "load_corpus", lambda *a, **k: tiny_corpus())
    chars = tiny_corpus()
    train(chars, tiny_config(max_iters=3), out=tmp_path / "c.pt", progress=False)
    nats, n_chars, steps = bench_default.score(tmp_path / "c.pt", None)
    model = shared.engine.checkpoint.load_checkpoint(tmp_path / "c.pt").model
    assert (n_chars, steps) == (len(chars.val_data) - 1, 3)
    assert nats == loss_on_text(model, chars.val_data)
    bpe = bpe_corpus(TEXT, BPETokenizer.train(TEXT, 280))
    train(bpe, tiny_config(max_iters=2), out=tmp_path / "b.pt", progress=False)
    nats, n_chars, _ = bench_default.score(tmp_path / "b.pt", None)
    model = shared.engine.checkpoint.load_checkpoint(tmp_path / "b.pt").model
    val = TEXT[len(chars.train_data) :]  # the same characters, the first token given
    first = bpe.tokenizer.decode(bpe.val_data[:1])
    assert n_chars == len(val) - len(first)
    expected = text_bits_per_char(model, bpe.val_data, n_chars) * math.log(2)
    assert math.isclose(nats, expected, rel_tol=1e-9) and torch.isfinite(torch.tensor(nats))
