"""BPE through the course: train, checkpoint, generate, viz and the CLI (shared.bpe wiring)."""

from __future__ import annotations

import pytest
import torch
from _cli import run_cli
from _tiny import TEXT, tiny_config, tiny_corpus

import shared.data
from shared.bpe import BPETokenizer
from shared.bpe_corpus import bits_per_char, bpe_corpus, load_bpe_corpus
from shared.engine.checkpoint import load_checkpoint
from shared.engine.errors import CourseError
from shared.generate import generate
from shared.train import train
from shared.viz import attention_steps

UNSEEN = "Rocinante 🐴 costó 5 € "  # characters Don Quijote never uses


@pytest.fixture(scope="module")
def bpe_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("bpe") / "gpt.pt"
    corpus = bpe_corpus(TEXT, BPETokenizer.train(TEXT, 300))
    train(corpus, tiny_config(max_iters=5), out=path, progress=False)
    return path, corpus


def test_the_checkpoint_stores_the_tokenizer_and_resumes(bpe_checkpoint):
    path, corpus = bpe_checkpoint
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt.tokenizer, BPETokenizer)
    assert ckpt.tokenizer.merges == corpus.tokenizer.merges
    assert ckpt.model.config.vocab_size == 300
    result = train(corpus, tiny_config(max_iters=7), out=path, resume=True, progress=False)
    assert result.step == 7
    other = bpe_corpus(TEXT, BPETokenizer.train(TEXT, 299))  # other merges: no resume
    with pytest.raises(CourseError, match="different vocabulary or tokenizer"):
        train(other, tiny_config(max_iters=9), out=path, resume=True,
              progress=False)  # fmt: skip


def test_unseen_characters_work_with_bpe_and_fail_clearly_with_characters(bpe_checkpoint, tmp_path):
    ckpt = load_checkpoint(bpe_checkpoint[0])
    out = generate(ckpt.model, ckpt.tokenizer, UNSEEN, max_new_chars=5, seed=0)
    assert out.startswith(UNSEEN)
    chars = tmp_path / "chars.pt"
    train(tiny_corpus(), tiny_config(max_iters=2), out=chars, progress=False)
    char_ckpt = load_checkpoint(chars)
    with pytest.raises(CourseError, match="never saw"):
        generate(char_ckpt.model, char_ckpt.tokenizer, UNSEEN, max_new_chars=5, seed=0)


def test_streaming_writes_what_generate_returns(bpe_checkpoint):
    ckpt = load_checkpoint(bpe_checkpoint[0])
    pieces = []
    out = generate(ckpt.model, ckpt.tokenizer, "año", 20, seed=1, stream=pieces.append)
    assert "año" + "".join(pieces) == out


def test_viz_labels_tokens(bpe_checkpoint):
    ckpt = load_checkpoint(bpe_checkpoint[0])
    steps = attention_steps(ckpt.model, ckpt.tokenizer, "En un lugar", 3)
    prompt_tokens = len(ckpt.tokenizer.encode("En un lugar"))
    for k, step in enumerate(steps):
        assert isinstance(step.context, tuple) and isinstance(step.new_char, str)
        assert len(step.context) == len(step.weights) == prompt_tokens + k
    assert "".join(steps[0].context) == "En un lugar"
    assert len(steps[0].context) < len("En un lugar")  # tokens, not characters


def test_bits_per_char_in_the_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shared.data, "load_corpus", lambda *a, **k: tiny_corpus())
    argv = ["train", "--tokenizer", "bpe", "--vocab-size", 280, "--max-iters", 3,
            "--time-budget", "none", "--eval-interval", 2, "--eval-iters", 1, "--n-layer", 1,
            "--n-embd", 16, "--n-head", 2, "--block-size", 8, "--batch-size", 2,
            "--out", tmp_path / "b.pt"]  # fmt: skip
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    evals = [line for line in out.splitlines() if line.startswith("step ")]
    assert evals and all("bits/char" in line for line in evals)
    assert "nats/token = " in out.splitlines()[-2]  # the summary: "saved ... = x bits/char"
    assert "final val loss" in out and "nats/token = " in out.split("final val loss")[1]
    ckpt = load_checkpoint(tmp_path / "b.pt")
    assert ckpt.tokenizer.vocab_size == ckpt.model.config.vocab_size == 280
    code, out, err = run_cli(["generate", "--checkpoint", tmp_path / "b.pt", "--prompt", UNSEEN,
                              "--max-new-chars", 3], capsys)  # fmt: skip
    assert code == 0 and out.startswith(UNSEEN), err
    code, out, err = run_cli(["generate", "--checkpoint", tmp_path / "b.pt", "--prompt", "",
                              "--max-new-chars", 40, "--seed", 1], capsys)  # fmt: skip
    assert code == 0 and len(out) == 40 + 1, err  # 40 characters, not 40 tokens; then "\n"
    # --resume continues the BPE model without being told --tokenizer bpe again
    sizes = argv[7:]  # --time-budget none ... --out b.pt
    code, out, err = run_cli(["train", "--tokenizer", "char", "--resume", *sizes], capsys)
    assert code == 2 and "leave out --tokenizer to continue this one" in err
    assert "--out a new file name" in err and "drop" not in err
    code, out, err = run_cli(["train", "--max-iters", 5, "--resume", *sizes], capsys)
    assert code == 0 and "(step 5, " in out and not list(tmp_path.glob("b.*.pt")), err
    assert load_checkpoint(tmp_path / "b.pt").tokenizer.vocab_size == 280


def test_vocab_size_without_bpe_is_one_error_line(capsys):
    code, out, err = run_cli(["train", "--vocab-size", 300], capsys)
    assert code == 2 and err.strip() == (
        "error: --vocab-size needs --tokenizer bpe (characters have a fixed vocabulary)"
    )


def test_bits_per_char_is_the_same_scale_for_both_tokenizers():
    corpus = bpe_corpus(TEXT, BPETokenizer.train(TEXT, 300))
    val = TEXT[int(0.9 * len(TEXT)) :]
    loss = 1.7  # nats per token -> total nats over the val text / its characters, in bits
    total_bits = loss * len(corpus.val_data) / torch.log(torch.tensor(2.0)).item()
    assert bits_per_char(loss, corpus) == pytest.approx(total_bits / len(val))


def test_the_merges_are_learned_on_the_train_split_once_and_cached(tmp_path, monkeypatch):
    book = tmp_path / "pg2000.txt"
    book.write_text("raw", encoding="utf-8")
    corpus = tiny_corpus()
    corpus.path = book
    monkeypatch.setattr(shared.data, "load_corpus", lambda *a, **k: corpus)
    first = load_bpe_corpus(280)
    cached = list(tmp_path.glob("bpe-280-*.json"))
    assert len(cached) == 1
    train_text = TEXT[: len(corpus.train_data)]
    assert first.tokenizer.merges == BPETokenizer.train(train_text, 280).merges  # train split only
    assert first.tokenizer.decode(first.val_data) == TEXT[len(corpus.train_data) :]
    cached[0].write_text('{"type": "bpe", "merges": [[32, 32]]}', encoding="utf-8")
    assert load_bpe_corpus(280).tokenizer.vocab_size == 257  # read back, not trained again
