"""Cleaning, the character tokenizer, the train/val split, batches, and the real corpus."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from shared.data import (
    CharTokenizer,
    Corpus,
    clean_gutenberg,
    get_batch,
    load_corpus,
    split_data,
)
from shared.engine.config import default_data_dir
from shared.engine.download import CORPUS_FILENAME
from shared.engine.errors import CourseError

ROOT = Path(__file__).resolve().parent.parent
SPANISH = "¿Quién es? ¡Señor don Quijote! Años de niñería, pingüino, acción: «sí» — Fin.\n"


# ----------------------------------------------------------------------------- cleaning


def test_clean_gutenberg_keeps_only_the_book():
    raw = (
        "\ufeffThe Project Gutenberg eBook\r\nTitle: Don Quijote\r\n\r\n"
        "*** START OF THE PROJECT GUTENBERG EBOOK DON QUIJOTE ***\r\n\r\n\r\n"
        "En un lugar\r\nde la Mancha,\r\n\r\n  sangría  \r\n\r\n"
        "*** END OF THE PROJECT GUTENBERG EBOOK DON QUIJOTE ***\r\nLicence: *** START OF ... \r\n"
    )
    assert clean_gutenberg(raw) == "En un lugar\nde la Mancha,\n\n  sangría"


def test_clean_gutenberg_accepts_old_style_markers_and_lf():
    raw = "header\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\nbody\n***END OF THIS ***\n"
    assert clean_gutenberg(raw) == "body"


@pytest.mark.parametrize(
    "raw, missing",
    [("no markers at all", "START OF"), ("*** START OF X ***\nbody without an end", "END OF")],
)
def test_clean_gutenberg_without_markers_says_what_to_do(raw, missing):
    with pytest.raises(CourseError, match=f"{missing}.*download it again"):
        clean_gutenberg(raw)


# ----------------------------------------------------------------------------- tokenizer


def test_vocabulary_is_sorted_distinct_characters():
    tok = CharTokenizer(SPANISH)
    assert tok.chars == sorted(set(SPANISH))
    assert tok.vocab_size == len(tok) == len(set(SPANISH))
    assert all(tok.stoi[ch] == i and tok.itos[i] == ch for i, ch in enumerate(tok.chars))
    # Same text in another order -> the same vocabulary (ids must not depend on set order).
    assert CharTokenizer(SPANISH[::-1]).chars == tok.chars


def test_encode_decode_round_trip_with_spanish_characters():
    tok = CharTokenizer(SPANISH)
    ids = tok.encode(SPANISH)
    assert len(ids) == len(SPANISH) and all(isinstance(i, int) for i in ids)
    assert tok.decode(ids) == SPANISH
    assert tok.decode(torch.tensor(ids)) == SPANISH  # a 1-D tensor works too
    assert tok.encode("") == [] and tok.decode([]) == ""
    assert tok.decode(tok.encode("ñ¿")) == "ñ¿"


def test_unknown_characters_are_listed():
    tok = CharTokenizer("abc")
    with pytest.raises(CourseError, match=r"2 character\(s\) not in the vocabulary: 'x', 'ñ'"):
        tok.encode("abxñxa")


def test_decode_rejects_ids_outside_the_vocabulary():
    with pytest.raises(CourseError, match="outside 0..2"):
        CharTokenizer("abc").decode([0, 3])


def test_save_and_load_json(tmp_path):
    tok = CharTokenizer(SPANISH)
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved == {"type": "char", "chars": tok.chars}
    assert "ñ" in path.read_text(encoding="utf-8")  # readable UTF-8, not \\u escapes
    loaded = CharTokenizer.load(path)
    assert loaded.chars == tok.chars and loaded.encode(SPANISH) == tok.encode(SPANISH)
    assert CharTokenizer.from_dict(json.loads(json.dumps(tok.to_dict()))).stoi == tok.stoi


def test_from_chars_keeps_the_given_order_and_validates():
    tok = CharTokenizer.from_chars("cab")
    assert tok.encode("abc") == [1, 2, 0]
    for bad in (["a", "a"], ["ab"], [1]):
        with pytest.raises(CourseError):
            CharTokenizer.from_chars(bad)


@pytest.mark.parametrize("content", ["not json", '{"type": "bpe", "merges": []}', "[1, 2]"])
def test_load_rejects_other_files(tmp_path, content):
    path = tmp_path / "tok.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CourseError):
        CharTokenizer.load(path)


# ----------------------------------------------------------------------------- split + batches


def test_split_is_first_90_percent_then_the_rest():
    data = torch.arange(1000)
    train, val = split_data(data)
    assert len(train) == 900 and len(val) == 100
    assert torch.equal(torch.cat([train, val]), data)  # contiguous, in order, nothing lost
    train, val = split_data(torch.arange(11), train_frac=0.5)
    assert train.tolist() == [0, 1, 2, 3, 4] and val[0].item() == 5
    with pytest.raises(ValueError):
        split_data(data, train_frac=1.0)


def test_get_batch_shapes_and_shift():
    data = torch.arange(100, 200)  # ids equal to positions + 100: windows are easy to read
    x, y = get_batch(data, block_size=8, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8)
    assert x.dtype == y.dtype == torch.long
    assert x.device.type == "cpu" and y.device.type == "cpu"
    assert torch.equal(y[:, :-1], x[:, 1:])  # targets are the inputs shifted left by one
    assert torch.equal(y[:, -1], x[:, -1] + 1)
    # Each row is a window of consecutive ids taken from the data.
    assert torch.equal(x - x[:, :1], torch.arange(8).expand(4, 8))


def test_get_batch_samples_every_window_and_never_runs_past_the_end():
    data = torch.arange(10)
    block_size = 4  # valid starts: 0..5 (the window at 5 has its last target at index 9)
    x, y = get_batch(data, block_size, 2000, generator=torch.Generator().manual_seed(1))
    assert set(x[:, 0].tolist()) == set(range(6))
    assert y.max().item() == 9


def test_get_batch_is_reproducible_with_a_generator_and_random_without():
    data = torch.arange(10_000)
    a = get_batch(data, 16, 8, generator=torch.Generator().manual_seed(3))
    b = get_batch(data, 16, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = get_batch(data, 16, 8, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(a[0], c[0])


def test_get_batch_needs_more_data_than_block_size():
    with pytest.raises(CourseError, match="more than block_size=8"):
        get_batch(torch.arange(8), block_size=8, batch_size=2)


# ----------------------------------------------------------------------------- the real corpus

REAL_CORPUS = default_data_dir() / CORPUS_FILENAME
needs_real_corpus = pytest.mark.skipif(
    not REAL_CORPUS.is_file(), reason=f"no cached corpus at {REAL_CORPUS} (CI seeds it)"
)
# The release we measured ("Most recently updated: January 17, 2021"); Gutenberg may update it.
KNOWN_RELEASE = "Most recently updated: January 17, 2021"


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return load_corpus()


@needs_real_corpus
def test_real_corpus(corpus):
    text = corpus.text
    assert text.startswith("El ingenioso hidalgo don Quijote de la Mancha")
    assert "En un lugar de la Mancha" in text[:50_000]
    assert "\r" not in text and "\ufeff" not in text and "PROJECT GUTENBERG" not in text
    assert set("ñáéíóú¿¡") <= set(corpus.tokenizer.chars)
    assert len(corpus.train_data) + len(corpus.val_data) == len(text)
    assert len(corpus.train_data) == int(0.9 * len(text))
    assert corpus.tokenizer.decode(corpus.val_data[-20:]) == text[-20:]
    if KNOWN_RELEASE in REAL_CORPUS.read_text(encoding="utf-8")[:2000]:
        assert len(text) == 2_110_726 and corpus.vocab_size == 92
    else:  # a newer release: same book, give or take a few characters
        assert 2_000_000 < len(text) < 2_300_000 and 80 <= corpus.vocab_size <= 110


@needs_real_corpus
def test_cli_prints_the_corpus_statistics(corpus):
    result = subprocess.run(
        [sys.executable, "-m", "shared", "data", "--url", "http://127.0.0.1:9/offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    n, n_train = len(corpus.text), len(corpus.train_data)
    assert f"corpus: {n:,} characters" in result.stdout
    assert f"vocab size: {corpus.vocab_size}\n" in result.stdout
    assert f"train: {n_train:,} tokens, val: {n - n_train:,} tokens" in result.stdout
    assert f"cached at: {REAL_CORPUS}" in result.stdout
