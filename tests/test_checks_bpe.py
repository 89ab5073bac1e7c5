"""Lesson 09's checks: the stub, our solution, a differently written correct one, and the classic
BPE mistakes, each rejected with its own hint."""

from __future__ import annotations

from collections import Counter

import pytest
from checkhelpers import assert_fails, assert_passes, stub

from shared import bpe
from shared.bpe import split_chunks
from shared.checks import (
    EXERCISES,
    check_decode,
    check_encode,
    check_merge_pair,
    check_pair_counts,
    check_train_merges,
)
from shared.checks import _bpe_hints as hints
from shared.checks import _bpe_mistakes as bug
from shared.checks import bpe as checks


def test_exercises_are_registered():
    assert [(e.check, e.target) for e in EXERCISES["09_tokenizer"]] == [
        ("check_pair_counts", "pair_counts"),
        ("check_merge_pair", "merge_pair"),
        ("check_train_merges", "train_merges"),
        ("check_encode", "encode"),
        ("check_decode", "decode"),
    ]


# ----------------------------------------------------------------------------- correct versions
# "Ours" is what the lesson's solution cells hold; "other" is written differently.


def our_pair_counts(ids):
    counts = {}
    for pair in zip(ids, ids[1:], strict=False):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def other_pair_counts(ids):
    return Counter((ids[i], ids[i + 1]) for i in range(len(ids) - 1))


def our_merge_pair(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def other_merge_pair(ids, pair, new_id):
    out = list(ids)
    i = 0
    while i < len(out) - 1:  # in place on a copy, scanning left to right
        if out[i] == pair[0] and out[i + 1] == pair[1]:
            out[i : i + 2] = [new_id]
        i += 1
    return out


def our_train_merges(text, vocab_size):
    chunks = [list(chunk.encode("utf-8")) for chunk in split_chunks(text)]
    merges = {}
    for new_id in range(256, vocab_size):
        counts = {}
        for ids in chunks:
            for pair, n in our_pair_counts(ids).items():
                counts[pair] = counts.get(pair, 0) + n
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges[pair] = new_id
        chunks = [our_merge_pair(ids, pair, new_id) for ids in chunks]
    return merges


def other_train_merges(text, vocab_size):
    words = Counter(tuple(c.encode("utf-8")) for c in split_chunks(text))  # distinct chunks
    merges = {}
    while 256 + len(merges) < vocab_size:
        counts = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:], strict=False):
                counts[pair] += n
        if not counts:
            break
        top = max(counts.values())
        pair = sorted(p for p, c in counts.items() if c == top)[0]
        new_id = 256 + len(merges)
        merges[pair] = new_id
        words = Counter({tuple(other_merge_pair(list(w), pair, new_id)): n
                         for w, n in words.items()})  # fmt: skip
    return merges


def our_encode(text, merges):
    ids = []
    for chunk in split_chunks(text):
        chunk_ids = list(chunk.encode("utf-8"))
        while len(chunk_ids) >= 2:
            pairs = [p for p in zip(chunk_ids, chunk_ids[1:], strict=False) if p in merges]
            if not pairs:
                break
            pair = min(pairs, key=lambda p: merges[p])
            chunk_ids = our_merge_pair(chunk_ids, pair, merges[pair])
        ids.extend(chunk_ids)
    return ids


def other_encode(text, merges):
    out = []
    for chunk in split_chunks(text):
        ids = list(chunk.encode("utf-8"))
        for pair, new_id in merges.items():  # replaying the merges in training order
            ids = other_merge_pair(ids, pair, new_id)
        out += ids
    return out


def our_decode(ids, merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for (a, b), new_id in merges.items():
        vocab[new_id] = vocab[a] + vocab[b]
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


def other_decode(ids, merges):
    parts = {new_id: pair for pair, new_id in merges.items()}

    def expand(i):
        return [i] if i < 256 else expand(parts[i][0]) + expand(parts[i][1])

    return bytes(b for i in ids for b in expand(i)).decode("utf-8", "replace")


ALL = [
    (check_pair_counts, our_pair_counts, other_pair_counts),
    (check_merge_pair, our_merge_pair, other_merge_pair),
    (check_train_merges, our_train_merges, other_train_merges),
    (check_encode, our_encode, other_encode),
    (check_decode, our_decode, other_decode),
]


@pytest.mark.parametrize("check, ours, other", ALL, ids=lambda x: getattr(x, "__name__", ""))
def test_stub_fails_and_correct_versions_pass(check, ours, other, capsys):
    assert_fails(check, stub, "not implemented yet")
    assert_passes(check, ours, capsys)
    assert_passes(check, other, capsys)


def test_the_reference_passes(capsys):
    assert_passes(check_pair_counts, bpe.pair_counts, capsys)
    assert_passes(check_merge_pair, bpe.merge_pair, capsys)
    assert_passes(check_train_merges, bpe.train_merges, capsys)


# ----------------------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    "mistake, fragment",
    [
        (bug.counts_without_overlap, "overlapping pairs are not all counted"),
        (bug.counts_missing_last, "the last pair is missing"),
        (bug.counts_reversed, "the pairs are reversed"),
        (bug.counts_presence, "every pair has count 1"),
        (bug.counts_stride_two, "only every other position starts a pair"),
        (bug.counts_skip_after_repeat, "jumps past a run's pair"),
        (bug.counts_missing_first, "the first pair is missing"),
        (bug.counts_wrapping, "not a ring"),
        (bug.counts_plus_one, "one too high"),
        (lambda ids: {(ids[i], ids[i + 1]): 1 for i in range(len(ids))}, "no id after it"),
        (lambda ids: {[a, b]: 1 for a, b in zip(ids, ids[1:], strict=False)}, "not a list"),
        (lambda ids: {f"{a},{b}": n for (a, b), n in bpe.pair_counts(ids).items()}, "tuples"),
        (lambda ids: list(bpe.pair_counts(ids).items()), "expected a dict"),
    ],
)
def test_pair_count_mistakes(mistake, fragment):
    assert_fails(check_pair_counts, mistake, fragment)


def list_compare_merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if [ids[i], ids[i + 1] if i + 1 < len(ids) else None] == pair:  # never a tuple
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def index_error_merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def in_place_merge(ids, pair, new_id):
    ids[:] = bpe.merge_pair(ids, pair, new_id)
    return ids


@pytest.mark.parametrize(
    "mistake, fragment",
    [
        (bug.merge_reusing_ids, "the middle 7 can join the first or the last"),
        (bug.merge_from_the_right, "scans from the right"),
        (bug.merge_first_only, "only the first occurrence"),
        (bug.merge_dropping_last, "the last id is lost"),
        (bug.merge_either_id, "only one of its two ids matched"),
        (bug.merge_first_id_only, "only one of its two ids matched"),
        (bug.merge_unordered, "(b, a) was merged too"),
        (bug.merge_step_one, "moves on by one id"),
        (bug.merge_skipping_first, "the first id is lost"),
        (list_compare_merge, "a list [a, b] never equals a tuple"),
        (index_error_merge, "no next id"),
        (lambda ids, pair, new_id: [pair if i == pair[0] else i for i in ids], "one id, an int"),
        (in_place_merge, "changed its input in place"),
        (lambda ids, pair, new_id: None, "returned None"),
    ],
)
def test_merge_mistakes(mistake, fragment):
    assert_fails(check_merge_pair, mistake, fragment)


def no_break_train(text, vocab_size):
    chunks = [list(c.encode("utf-8")) for c in split_chunks(text)]
    merges = {}
    for new_id in range(256, vocab_size):
        counts = Counter(p for ids in chunks for p in zip(ids, ids[1:], strict=False))
        pair = min(counts, key=lambda p: (-counts[p], p))  # ValueError once nothing is left
        merges[pair] = new_id
        chunks = [bpe.merge_pair(ids, pair, new_id) for ids in chunks]
    return merges


def train(**kw):
    return lambda text, vocab_size: bug.train_variant(text, vocab_size, **kw)


@pytest.mark.parametrize(
    "mistake, fragment",
    [
        (train(chunks=False), "counted across chunk boundaries"),
        (train(code_points=True), "Unicode code points (ord)"),
        (train(tie="largest"), "ties go to the largest pair"),
        (train(tie="first seen"), "ties go to the pair seen first"),
        (train(recount=False), "counted once, before any merge"),
        (train(merge=bug.merge_reusing_ids), "reuse an id in overlapping runs"),
        (train(first_id=257), "start at 257"),
        (train(first_id=255), "start at 255"),
        (lambda text, v: dict(reversed(bpe.train_merges(text, v).items())), "wrong order"),
        (train(chunks=str.split), "split with str.split"),
        (train(chunks=lambda t: t.split(" ")), "split with str.split"),
        (train(summed=False), "counts were not added up"),
        (train(tie="least"), "least frequent pair"),
        (train(tie="least, smallest"), "least frequent pair"),
        (train(tie="pair only"), "whatever its count"),
        (train(merge=bug.merge_nothing), "not updated after a merge"),
        (train(first_id=257, extra=-1), "start at 257"),
        (train(extra=1), "one merge too many"),
        (train(extra=-1), "one merge too few"),
        (no_break_train, "stop early when the counts are empty"),
        (lambda text, v: {i: p for p, i in bpe.train_merges(text, v).items()}, "wrong way round"),
        (lambda text, v: {**bpe.train_merges(text, v), (1, 1): v + 5}, "merge"),
    ],
)
def test_train_mistakes(mistake, fragment):
    assert_fails(check_train_merges, mistake, fragment)


def test_each_training_mistake_is_told_apart():
    mistakes = hints.train_mistakes(checks.TRAIN_TEXT, checks.VOCAB_SIZE)
    expected = repr(list(bpe.train_merges(checks.TRAIN_TEXT, checks.VOCAB_SIZE).items()))
    results = {message: {repr(list(f().items())) for f in (fs if isinstance(fs, list) else [fs])}
               for message, fs in mistakes.items()}  # fmt: skip
    assert all(expected not in r for r in results.values())
    for a in results:  # no result is shared by two messages
        assert all(not (results[a] & results[b]) for b in results if b != a), a


def per_chunk_encode(text, merges):
    return [our_encode(chunk, merges) for chunk in split_chunks(text)]


def enc(**kw):
    return lambda text, merges: bug.encode_variant(text, merges, **kw)


@pytest.mark.parametrize(
    "mistake, fragment",
    [
        (enc(code_points=True), "Unicode code points"),
        (enc(apply=False), "no merges were applied"),
        (enc(chunks=False), "not split into chunks"),
        (enc(order="reverse"), "reverse order"),
        (enc(order="once"), "only one merge was applied"),
        (enc(order="latest"), "latest-learned first"),
        (enc(order="frequent"), "most frequent in the chunk"),
        (enc(order="frequent, smallest"), "most frequent in the chunk"),
        (enc(order="frequent, earliest"), "most frequent in the chunk"),
        (enc(order="smallest pair"), "smallest pair (min of the tuples)"),
        (enc(chunks=str.split), "split with str.split"),
        (per_chunk_encode, "one per chunk"),
    ],
)
def test_encode_mistakes(mistake, fragment):
    assert_fails(check_encode, mistake, fragment)


def pair_bytes_decode(ids, merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for (a, b), new_id in merges.items():
        vocab[new_id] = bytes([a, b])  # a part above 255 is not a byte
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


def merged_only_decode(ids, merges):
    vocab = {}
    for (a, b), new_id in merges.items():
        vocab[new_id] = vocab.get(a, bytes([a % 256])) + vocab.get(b, bytes([b % 256]))
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


def no_byte_255_decode(ids, merges):
    vocab = {i: bytes([i]) for i in range(255)}  # off by one: byte 255 has no entry
    for (a, b), new_id in merges.items():
        vocab[new_id] = vocab[a] + vocab[b]
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


def strict_decode(ids, merges):
    return b"".join(bpe.token_bytes(merges)[i] for i in ids).decode("utf-8")


@pytest.mark.parametrize(
    "mistake, fragment",
    [
        (lambda ids, m: bug.decode_variant(ids, m, per_token=True), "decoded on its own"),
        (lambda ids, m: bug.decode_variant(ids, m, swapped=True), "not b + a"),
        (lambda ids, m: bug.decode_variant(ids, m, latin1=True), "Latin-1"),
        (strict_decode, "errors='replace'"),
        (lambda ids, m: list(our_decode(ids, m)), "expected a str"),
        (lambda ids, m: bug.decode_variant(ids, m, errors="ignore"), "errors='ignore'"),
        (lambda ids, m: our_decode(ids, m).encode("utf-8"), "still have to be decoded"),
        (pair_bytes_decode, "bytes([a, b]) only takes single bytes"),
        (merged_only_decode, "Every id needs its bytes"),
        (no_byte_255_decode, "Every id needs its bytes"),
        (lambda ids, m: bug.decode_variant(ids, m, part=0), "kept only one part's bytes"),
        (lambda ids, m: bug.decode_variant(ids, m, part=1), "kept only one part's bytes"),
    ],
)
def test_decode_mistakes(mistake, fragment):
    assert_fails(check_decode, mistake, fragment)
