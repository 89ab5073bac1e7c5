"""The reference byte-level BPE (shared.bpe): the rules, round trips, and the incremental
trainer agreeing with a plain recount-every-merge trainer."""

from __future__ import annotations

import math
import random

import pytest
import torch

from shared.bpe import (
    BPETokenizer,
    best_pair,
    merge_pair,
    pair_counts,
    recount_train_merges,
    split_chunks,
    token_stream,
    tokenizer_from_dict,
    train_merges,
)
from shared.bpe_corpus import bits_per_char, bpe_corpus, text_bits_per_char
from shared.data import CharTokenizer
from shared.engine.errors import CourseError

TEXT = (
    "En un lugar de la Mancha, de cuyo nombre no quiero acordarme, no ha mucho tiempo que vivía "
    "un hidalgo de los de lanza en astillero, adarga antigua, rocín flaco y galgo corredor. "
    "¿Qué dices, Sancho? ¡Señor! aaaa aaa año_2 niño  \n\n  fin.\n"
)


def slow_train(text, vocab_size):
    """The definition written out once more, with max() instead of best_pair."""
    chunks = [list(c.encode("utf-8")) for c in split_chunks(text)]
    merges = {}
    for new_id in range(256, vocab_size):
        counts = {}
        for ids in chunks:
            pair_counts(ids, counts)
        if not counts:
            break
        pair = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))
        merges[pair] = new_id
        chunks = [merge_pair(ids, pair, new_id) for ids in chunks]
    return merges


def test_pairs_overlap_in_counts_but_not_in_merges():
    assert pair_counts([7, 7, 7]) == {(7, 7): 2}
    assert pair_counts([1, 2, 1, 2]) == {(1, 2): 2, (2, 1): 1}
    assert merge_pair([7, 7, 7], (7, 7), 300) == [300, 7]
    assert merge_pair([7, 7, 7, 7], (7, 7), 300) == [300, 300]
    ids = [1, 2, 3]
    assert merge_pair(ids, (2, 3), 256) == [1, 256] and ids == [1, 2, 3]


def test_ties_go_to_the_smallest_pair():
    assert best_pair({(5, 1): 3, (2, 9): 3, (2, 4): 3, (0, 0): 1}) == (2, 4)
    # "ab", "bb" and "ba" all occur twice: (97, 98) is the smallest, so "ab" is merged first.
    assert list(train_merges("abba abba", 257)) == [(97, 98)]


def test_chunks_cover_every_character():
    for text in (TEXT, "a_b __ 12x \t\n ¿?¡! e\u0301 🐴🐴 中文 ３"):
        assert "".join(split_chunks(text)) == text
    assert split_chunks("En un lugar") == ["En", " un", " lugar"]


@pytest.mark.parametrize("vocab_size", [256, 260, 300, 400])
def test_incremental_training_equals_recounting(vocab_size):
    expected = slow_train(TEXT, vocab_size)
    assert list(train_merges(TEXT, vocab_size).items()) == list(expected.items())
    assert list(recount_train_merges(TEXT, vocab_size).items()) == list(expected.items())


def test_training_stops_when_every_chunk_is_one_token():
    merges = train_merges("ab ab", 1000)
    assert merges == {(97, 98): 256, (32, 256): 257}  # "ab", then " ab": nothing left


def test_any_string_round_trips():
    tok = BPETokenizer.train(TEXT, 330)
    rng = random.Random(0)
    alphabet = "aeiouñáé¿¡ _\n\t" + "🐴中文€\u0301\x00"
    for _ in range(200):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randrange(30)))
        assert tok.decode(tok.encode(s)) == s
    ids = tok.encode("niño")
    assert len(tok.encode("ñ")) == 2 or tok.decode(ids) == "niño"
    assert len(BPETokenizer({}).encode("ñá¿")) == 6  # two bytes each


def test_encode_replays_the_training_merges():
    merges = train_merges(TEXT, 320)
    tok = BPETokenizer(merges)
    # replaying every merge in training order on each chunk gives the same ids
    expected = []
    for chunk in split_chunks(TEXT):
        ids = list(chunk.encode("utf-8"))
        for pair, new_id in merges.items():
            ids = merge_pair(ids, pair, new_id)
        expected += ids
    assert tok.encode(TEXT) == expected and len(expected) < len(TEXT.encode("utf-8"))


def test_decode_tensor_and_bad_bytes():
    tok = BPETokenizer.train(TEXT, 300)
    assert tok.decode(torch.tensor(tok.encode("año"))) == "año"
    assert tok.decode([0xC3]) == "\ufffd"  # half a character
    with pytest.raises(CourseError, match="outside"):
        tok.decode([tok.vocab_size])


def test_save_load_and_dict(tmp_path):
    tok = BPETokenizer.train(TEXT, 300)
    tok.save(tmp_path / "t.json")
    again = BPETokenizer.load(tmp_path / "t.json")
    assert again.merges == tok.merges and again.encode(TEXT) == tok.encode(TEXT)
    assert isinstance(tokenizer_from_dict(tok.to_dict()), BPETokenizer)
    assert isinstance(tokenizer_from_dict(CharTokenizer("ab").to_dict()), CharTokenizer)
    with pytest.raises(CourseError, match="new ids"):
        BPETokenizer({(1, 2): 300})
    with pytest.raises(CourseError, match="not a saved BPETokenizer"):
        BPETokenizer.from_dict({"type": "char"})
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(CourseError, match="cannot read"):
        BPETokenizer.load(tmp_path / "bad.json")


def test_streaming_waits_for_whole_characters():
    tok = BPETokenizer({})
    out = []
    write = token_stream(tok, out.append)
    for i in "¿sí?".encode():
        write(i)
    assert "".join(out) == "¿sí?" and "\ufffd" not in out


def test_corpus_splits_the_same_characters_and_bits_per_char():
    text = TEXT * 20
    corpus = bpe_corpus(text, BPETokenizer.train(text, 300))
    cut = int(0.9 * len(text))
    assert corpus.tokenizer.decode(corpus.val_data) == text[cut:]
    assert corpus.tokenizer.decode(corpus.train_data) == text[:cut]
    ratio = corpus.chars_per_token["val"]
    assert ratio == pytest.approx(len(text[cut:]) / len(corpus.val_data)) and ratio > 1.5
    assert bits_per_char(2.0, corpus) == pytest.approx(2.0 / ratio / 0.6931471805599453)
    chars = CharTokenizer(text)  # a character corpus: one char per token
    assert bits_per_char(0.6931471805599453, chars) == pytest.approx(1.0)


class Uniform(torch.nn.Module):
    """Every token equally likely: log2(V) bits per predicted token."""

    def __init__(self, vocab_size, block_size):
        super().__init__()
        self.config = type("C", (), {"block_size": block_size})()
        self.vocab_size = vocab_size

    def forward(self, idx):
        assert idx.min() >= 0 and idx.size(1) <= self.config.block_size
        return torch.zeros(*idx.shape, self.vocab_size), None


@pytest.mark.parametrize("n, block_size", [(50, 7), (49, 7), (8, 7), (2, 7)])
def test_text_bits_per_char_predicts_every_token_but_the_first(n, block_size):
    ids = torch.arange(n) % 11
    got = text_bits_per_char(Uniform(11, block_size), ids, n_chars=100, batch_size=3)
    assert got == pytest.approx((n - 1) * math.log2(11) / 100)


def test_tie_rank_reorders_only_ties():
    merges = train_merges("abba abba", 257, tie_rank={97: 300})  # "a" now ranks after "b"
    assert list(merges) == [(98, 98)]


def test_same_merges_as_hugging_face_with_its_tie_order():
    """HF numbers its 256 byte tokens in the order of GPT-2's printable stand-ins; breaking ties
    in that order, our trainer learns exactly HF's merges, in order."""
    tokenizers = pytest.importorskip("tokenizers")
    import json

    from shared.bpe import token_bytes

    text = TEXT * 3 + "¿Qué? ¡Sí! niño año señor caballero Quijote Sancho " * 5
    hf = tokenizers.Tokenizer(tokenizers.models.BPE())
    byte_level = tokenizers.pre_tokenizers.ByteLevel
    hf.pre_tokenizer = byte_level(add_prefix_space=False, use_regex=True)
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=400, min_frequency=0, show_progress=False, special_tokens=[],
        initial_alphabet=byte_level.alphabet(),
    )  # fmt: skip
    hf.train_from_iterator([text], trainer=trainer)
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [b for b in range(256) if b not in keep]
    char_of = {**{b: chr(b) for b in keep}, **{b: chr(256 + k) for k, b in enumerate(others)}}
    byte_of = {ch: b for b, ch in char_of.items()}
    merges = json.loads(hf.to_str())["model"]["merges"]
    theirs = [tuple(bytes(byte_of[ch] for ch in part) for part in m) for m in merges]
    rank = {b: r for r, b in enumerate(sorted(range(256), key=char_of.get))}
    ours = train_merges(text, 400, tie_rank=rank)
    vocab = token_bytes(ours)
    assert [(vocab[a], vocab[b]) for a, b in ours] == theirs and len(theirs) == 144
