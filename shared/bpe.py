"""Lesson 09: byte-level BPE (byte-pair encoding), the tokenizer real GPTs use.

Text -> UTF-8 bytes (ids 0..255: the base vocabulary, so no character is ever unknown; ``ñ``,
``á``, ``¿`` are two bytes each) -> ``split_chunks`` (words with their leading space, numbers,
punctuation, whitespace: GPT-2's rule, so no token spans two words) -> ``train_merges``: count
the adjacent pairs inside every chunk, merge the most frequent pair into a new id (256, 257, ...),
repeat. ``BPETokenizer`` applies the merges (``encode``) and undoes them (``decode``).

Two rules every implementation must agree on:

- **Overlapping runs** (``"aaa"`` and the pair ``(a, a)``): there are two adjacent ``(a, a)``
  pairs to count, but a merge scans left to right and a byte is used once: ``[a, a, a]`` ->
  ``[aa, a]``.
- **Ties**: among pairs with the same count, the smallest pair wins (compare the first ids, then
  the second): the result never depends on the order of a dict or of the text.

Training is incremental: a merge changes only the chunks that contain the pair, so only their
pair counts are subtracted and added back (not a recount of the whole book per merge). Vocabulary
1024 on the book's training split takes seconds (``benchmarks/bench_bpe.py``).
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import torch

from shared.data import read_tokenizer_file
from shared.engine.errors import CourseError

# GPT-2's pre-tokenizer, in Python's `re`: contractions, a word with its leading space,
# a number, punctuation, whitespace (a run of spaces leaves its last one to the next word).
# `[^\W\d_]` is "a letter"; `_` and every other symbol count as punctuation, so every character
# of every string falls in exactly one chunk (nothing is dropped).
SPLIT_PATTERN = re.compile(r"'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")
BASE_VOCAB = 256  # one id per byte value


def split_chunks(text: str) -> list[str]:
    """``"En un lugar"`` -> ``["En", " un", " lugar"]``; ``"".join(chunks) == text``."""
    return SPLIT_PATTERN.findall(text)


def pair_counts(ids: list[int], counts: dict | None = None, weight: int = 1) -> dict:
    """How often each adjacent pair occurs in ``ids``, added (times ``weight``) to ``counts``.

    ``[1, 2, 1, 2]`` -> ``{(1, 2): 2, (2, 1): 1}``; ``[7, 7, 7]`` -> ``{(7, 7): 2}`` (overlapping
    pairs both count: either one could be merged).
    """
    counts = {} if counts is None else counts
    for pair in pairwise(ids):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, scanning left to right.

    ``merge_pair([7, 7, 7], (7, 7), 300)`` -> ``[300, 7]``: an id is used by one merge only.
    Returns a new list; ``ids`` is left alone.
    """
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2  # both ids are used up
        else:
            out.append(ids[i])
            i += 1
    return out


def best_pair(counts: dict, tie_rank: dict | None = None) -> tuple[int, int]:
    """The most frequent pair; ties go to the smallest pair (first id, then second).

    ``tie_rank``: compare ids by ``tie_rank.get(id, id)`` instead (another library's id order).
    """
    if tie_rank is None:
        return min(counts, key=lambda pair: (-counts[pair], pair))
    return min(
        counts, key=lambda p: (-counts[p], tie_rank.get(p[0], p[0]), tie_rank.get(p[1], p[1]))
    )


def recount_train_merges(text: str, vocab_size: int) -> dict[tuple[int, int], int]:
    """The definition, slowly: recount every pair of every chunk after each merge. Lesson 09's
    exercise; ``train_merges`` learns the same merges incrementally (tested)."""
    chunks = [list(chunk.encode("utf-8")) for chunk in split_chunks(text)]
    merges = {}
    for new_id in range(BASE_VOCAB, vocab_size):
        counts: dict = {}
        for ids in chunks:
            pair_counts(ids, counts)
        if not counts:
            break
        pair = best_pair(counts)
        merges[pair] = new_id
        chunks = [merge_pair(ids, pair, new_id) for ids in chunks]
    return merges


def train_merges(
    text: str,
    vocab_size: int,
    progress: Callable[[int, int], None] | None = None,
    tie_rank: dict | None = None,
) -> dict[tuple[int, int], int]:
    """Learn ``vocab_size - 256`` merges on ``text``: ``{(a, b): new_id}`` in the order learned.

    Stops early when no pair is left (every chunk is a single token). Incremental: each distinct
    chunk is stored once with its count, and a merge updates only the chunks that contain it.
    ``tie_rank``: see ``best_pair`` (lesson 09 uses it to reproduce Hugging Face's tie order).
    """
    if vocab_size < BASE_VOCAB:
        raise CourseError(
            f"`vocab_size` must be at least {BASE_VOCAB} (the bytes), got {vocab_size}"
        )
    chunk_counts = Counter(split_chunks(text))
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]  # each distinct chunk once
    weights = list(chunk_counts.values())
    counts: dict = {}
    where = defaultdict(set)  # pair -> indices of the words that contain it
    for w, ids in enumerate(words):
        pair_counts(ids, counts, weights[w])
        for pair in pairwise(ids):
            where[pair].add(w)
    merges = {}
    for new_id in range(BASE_VOCAB, vocab_size):
        if not counts:
            break
        pair = best_pair(counts, tie_rank)
        merges[pair] = new_id
        for w in where.pop(pair):
            old = words[w]
            new = merge_pair(old, pair, new_id)
            for p in pairwise(old):  # take this word's old pairs out ...
                counts[p] -= weights[w]
                if counts[p] == 0:
                    del counts[p]
            pair_counts(new, counts, weights[w])  # ... and put its new pairs in
            for p in pairwise(new):
                where[p].add(w)
            words[w] = new
        if progress is not None:
            progress(len(merges), vocab_size - BASE_VOCAB)
    return merges


def token_bytes(merges: dict[tuple[int, int], int]) -> dict[int, bytes]:
    """id -> the bytes it stands for: 0..255 themselves, then each merge's two parts joined."""
    vocab = {i: bytes([i]) for i in range(BASE_VOCAB)}
    for (a, b), new_id in merges.items():  # in training order: a and b already exist
        vocab[new_id] = vocab[a] + vocab[b]
    return vocab


def encode_chunk(chunk_ids: list[int], ranks: dict[tuple[int, int], int]) -> list[int]:
    """Apply the merges to one chunk: always the earliest-learned merge present first."""
    ids = list(chunk_ids)
    while len(ids) >= 2:
        pair = min(pairwise(ids), key=lambda p: ranks.get(p, math.inf))
        if pair not in ranks:
            break  # no learned merge left in this chunk
        ids = merge_pair(ids, pair, ranks[pair])
    return ids


class BPETokenizer:
    """Byte-level BPE with the interface of ``shared.data.CharTokenizer``: ``vocab_size``,
    ``encode``, ``decode``, ``itos`` (id -> a printable label), ``to_dict``/``save``/``load``."""

    byte_level = True  # any text encodes: no character is unknown

    def __init__(self, merges: dict[tuple[int, int], int]):
        self.merges = {tuple(pair): int(new_id) for pair, new_id in merges.items()}
        expected = list(range(BASE_VOCAB, BASE_VOCAB + len(self.merges)))
        ok = list(self.merges.values()) == expected and all(
            a < new_id and b < new_id for (a, b), new_id in self.merges.items()
        )
        if not ok:
            raise CourseError(
                "merges must give the new ids 256, 257, ... in order, each made of earlier ids"
            )
        self.vocab = token_bytes(self.merges)  # id -> bytes
        self.itos = {i: b.decode("utf-8", errors="replace") for i, b in self.vocab.items()}
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def train(cls, text: str, vocab_size: int, progress=None) -> BPETokenizer:
        return cls(train_merges(text, vocab_size, progress))

    @property
    def vocab_size(self) -> int:
        return BASE_VOCAB + len(self.merges)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"

    def encode(self, text: str) -> list[int]:
        """Any string -> ids; each distinct chunk is encoded once and remembered."""
        if not isinstance(text, str):
            raise CourseError(f"encode takes a string, got {type(text).__name__}")
        ids = []
        for chunk in split_chunks(text):
            cached = self._cache.get(chunk)
            if cached is None:
                data = chunk.encode("utf-8", errors="surrogatepass")
                cached = self._cache[chunk] = encode_chunk(list(data), self.merges)
            ids.extend(cached)
        return ids

    def decode(self, ids) -> str:
        """ids (a list or a 1-D tensor) -> text; bytes that are not valid UTF-8 become '�'."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        try:
            data = b"".join(self.vocab[int(i)] for i in ids)
        except KeyError as exc:
            raise CourseError(
                f"token id {exc.args[0]} is outside 0..{self.vocab_size - 1}"
            ) from None
        return data.decode("utf-8", errors="replace")

    def token_labels(self, ids) -> tuple[str, ...]:
        """One printable label per token (for attention pictures): what each token reads as."""
        return tuple(self.itos[int(i)] for i in ids)

    def to_dict(self) -> dict:
        return {"type": "bpe", "merges": [[a, b] for a, b in self.merges]}

    @classmethod
    def from_dict(cls, data: dict) -> BPETokenizer:
        pairs = data.get("merges") if isinstance(data, dict) else None
        if data.get("type") != "bpe" or not isinstance(pairs, list):
            raise CourseError(
                "not a saved BPETokenizer (expected {'type': 'bpe', 'merges': [...]})"
            )
        try:
            merges = {(int(a), int(b)): BASE_VOCAB + k for k, (a, b) in enumerate(pairs)}
        except (TypeError, ValueError):
            raise CourseError("a saved BPETokenizer's merges must be pairs of ids") from None
        return cls(merges)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        return cls.from_dict(read_tokenizer_file(path))


def tokenizer_from_dict(data: dict):
    """A saved tokenizer of either kind (``{"type": "char" | "bpe", ...}``)."""
    from shared.data import CharTokenizer

    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "bpe":
        return BPETokenizer.from_dict(data)
    return CharTokenizer.from_dict(data)


def token_stream(tokenizer, write: Callable[[str], None]) -> Callable[[int], None]:
    """id -> ``write(text)`` as tokens arrive; a character split across two byte tokens is
    written once it is complete (an incremental UTF-8 decoder holds the first byte)."""
    if not getattr(tokenizer, "byte_level", False):
        return lambda i: write(tokenizer.itos[i])
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return lambda i: write(decoder.decode(tokenizer.vocab[i]))
