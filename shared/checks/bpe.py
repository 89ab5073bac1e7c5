"""Checks for lesson 09 (byte-level BPE): ``pair_counts``, ``merge_pair``, ``train_merges``,
``encode`` and ``decode``.

The inputs are small and chosen so that every classic mistake gives a different answer: runs
like ``7 7 7 7`` (overlapping pairs), texts whose most frequent pairs tie, a text where the most
frequent pair straddles two chunks (``"x."``), Spanish letters of two bytes and characters the
book never uses. The right answers come from the reference, ``shared.bpe``; a mistake is named
only when the learner's result equals what that mistake computes (``_bpe_mistakes``).
"""

from __future__ import annotations

from shared import bpe as ref
from shared.checks import _bpe_mistakes as bug
from shared.checks._calls import call
from shared.checks._core import Exercise, fail, passed, require_callable

EXERCISES = [
    Exercise(name="pair_counts", check="check_pair_counts", target="pair_counts",
             description="pair_counts(ids) -> {(a, b): count} of adjacent pairs"),
    Exercise(name="merge_pair", check="check_merge_pair", target="merge_pair",
             description="merge_pair(ids, pair, new_id) -> ids with the pair merged, left to right"),
    Exercise(name="train_merges", check="check_train_merges", target="train_merges",
             description="train_merges(text, vocab_size) -> {(a, b): new_id}, in training order"),
    Exercise(name="encode", check="check_encode", target="encode",
             description="encode(text, merges) -> ids: UTF-8 bytes of each chunk, merges by rank"),
    Exercise(name="decode", check="check_decode", target="decode",
             description="decode(ids, merges) -> text: the tokens' bytes, decoded once"),
]  # fmt: skip

# The most frequent pair counted across chunks is ("x", "."); inside chunks it is (" ", "x").
# "abba abba" ties ab/bb/ba; the runs of "a" overlap; ñ and ¿ are two bytes each.
TRAIN_TEXT = "x. x. x. x. ¿año? ¡año! aaaa aaa niño señor abba abba dd cc dd cc"
VOCAB_SIZE = ref.BASE_VOCAB + 14


def _as_dict(name, value, what):
    __tracebackhide__ = True
    if not isinstance(value, dict):
        fail(name, f"{what} returned {type(value).__name__}; expected a dict {{(a, b): ...}}.")
    bad = [k for k in value if not (isinstance(k, tuple) and len(k) == 2)]
    if bad:
        fail(name, f"{what} has the key {bad[0]!r}; keys must be pairs of ids, tuples (a, b) "
             "(a list cannot be a dict key, and a string is not an id).")  # fmt: skip
    return {k: v for k, v in value.items() if v != 0}  # a Counter may keep zeros


def _as_ids(name, value, what):
    __tracebackhide__ = True
    if value is None:
        fail(name, f"{what} returned None: build a new list and return it.")
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        fail(name, f"{what} returned {type(value).__name__} {value!r:.60}; expected a list of ids.")
    return [int(i) for i in value]


def _mistake(got, mistakes: dict, *args) -> str | None:
    """The first mistake whose ``compute(*args)`` equals ``got``, else None."""
    for message, compute in mistakes.items():
        try:
            if got == compute(*args):
                return message
        except Exception:  # the mistake's code does not apply to this input
            continue
    return None


# ----------------------------------------------------------------------------- pair_counts

_COUNT_MISTAKES = {
    "overlapping pairs are not all counted: [7, 7, 7, 7] holds three adjacent (7, 7) pairs "
    "(positions 0-1, 1-2, 2-3). Count at every position; the overlap only matters when "
    "merging": bug.counts_without_overlap,
    "the last pair is missing: a list of n ids has n - 1 adjacent pairs": bug.counts_missing_last,
    "the pairs are reversed: (a, b) means a comes first, then b": bug.counts_reversed,
    "every pair has count 1: count how many times each pair occurs, not just whether it does":
        bug.counts_presence,
}  # fmt: skip


def check_pair_counts(pair_counts) -> None:
    """``pair_counts(ids)`` -> ``{(a, b): count}`` of adjacent pairs, overlaps included."""
    __tracebackhide__ = True
    name = "pair_counts"
    require_callable(name, pair_counts, "your pair_counts function")
    for ids in ([7, 7, 7, 7, 1, 2, 1, 2, 9], [1, 2, 3, 1, 2], [104, 111, 108, 97], [5], []):
        what = f"pair_counts({ids})"
        got = _as_dict(name, call(name, pair_counts, list(ids), what=what), what)
        expected = ref.pair_counts(ids)
        if got == expected:
            continue
        mistake = _mistake(got, _COUNT_MISTAKES, ids)
        fail(name, f"{what} returned {got}, expected {expected}" +
             (f": {mistake}." if mistake else "."))  # fmt: skip
    passed(name, "adjacent pairs counted, overlapping runs included")


# ----------------------------------------------------------------------------- merge_pair

_MERGE_MISTAKES = {
    "an id was used by two merges: in [7, 7, 7] the middle 7 can join the first or the last, "
    "not both. After a merge, jump past both ids": bug.merge_reusing_ids,
    "the merge scans from the right; the rule is left to right, so [7, 7, 7] -> [X, 7]":
        bug.merge_from_the_right,
    "only the first occurrence was merged: replace every occurrence": bug.merge_first_only,
    "the last id is lost when it is not part of a merge: copy it to the output too":
        bug.merge_dropping_last,
}  # fmt: skip

_MERGE_CASES = [
    ([1, 2, 3, 1, 2], (1, 2), 256),
    ([7, 7, 7], (7, 7), 300),
    ([7, 7, 7, 7, 7], (7, 7), 300),
    ([3, 1, 2, 9], (1, 2), 256),
    ([2, 1, 2, 1], (2, 1), 257),
    ([4], (4, 4), 256),
    ([], (1, 2), 256),
]


def check_merge_pair(merge_pair) -> None:
    """``merge_pair(ids, pair, new_id)``: every occurrence, left to right, each id used once."""
    __tracebackhide__ = True
    name = "merge_pair"
    require_callable(name, merge_pair, "your merge_pair function")
    for ids, pair, new_id in _MERGE_CASES:
        what = f"merge_pair({ids}, {pair}, {new_id})"
        got = _as_ids(name, call(name, merge_pair, list(ids), pair, new_id, what=what), what)
        expected = ref.merge_pair(ids, pair, new_id)
        if got == expected:
            continue
        mistake = _mistake(got, _MERGE_MISTAKES, ids, pair, new_id)
        fail(name, f"{what} returned {got}, expected {expected}" +
             (f": {mistake}." if mistake else "."))  # fmt: skip
    passed(name, "every occurrence merged left to right, overlapping runs included")


# ----------------------------------------------------------------------------- train_merges


def _train_mistakes(text, vocab_size):
    def variant(**kw):
        return lambda: bug.train_variant(text, vocab_size, **kw)

    return {
        "the pairs were counted across chunk boundaries (here ('x', '.') wins that way): split "
        "the text with split_chunks and count pairs inside each chunk only": variant(chunks=False),
        "the ids are Unicode code points (ord), not UTF-8 bytes: 'ñ' must start as the two "
        "bytes 195, 177, so the base vocabulary is 0..255": variant(code_points=True),
        "ties go to the largest pair; the rule is the smallest pair (compare the first ids, "
        "then the second)": variant(tie="largest"),
        "ties go to the pair seen first in the text (max keeps the first of equal counts); the "
        "rule is the smallest pair, so the result never depends on order": variant(tie="first seen"),
        "the pairs were counted once, before any merge: after each merge the counts change "
        "(new pairs appear, merged ones vanish), so count again": variant(recount=False),
        "the merges reuse an id in overlapping runs like 'aaa' (see merge_pair)":
            variant(merge=bug.merge_reusing_ids),
        "the new ids start at 257; the first merge gets id 256, right after the bytes":
            variant(first_id=ref.BASE_VOCAB + 1),
        "the new ids start at 255, which is already a byte; the first merge gets 256":
            variant(first_id=ref.BASE_VOCAB - 1),
    }  # fmt: skip


def _first_difference(got: dict, expected: dict) -> str:
    g, e = list(got.items()), list(expected.items())
    for k, (mine, right) in enumerate(zip(g, e, strict=False)):
        if mine != right:
            return f"merge {k + 1} is {mine[0]} -> {mine[1]}, expected {right[0]} -> {right[1]}"
    return f"{len(g)} merges, expected {len(e)}"


def check_train_merges(train_merges) -> None:
    """``train_merges(text, vocab_size)`` -> ``{(a, b): new_id}`` in the order learned."""
    __tracebackhide__ = True
    name = "train_merges"
    require_callable(name, train_merges, "your train_merges function")
    cases = [(TRAIN_TEXT, VOCAB_SIZE), ("abba abba", 257), ("dd cc dd cc", 258),
             ("ab ab", 300), ("¿Qué?", 256)]  # fmt: skip
    for text, vocab_size in cases:
        what = f"train_merges({text!r}, vocab_size={vocab_size})"
        got = _as_dict(name, call(name, train_merges, text, vocab_size, what=what), what)
        expected = ref.train_merges(text, vocab_size)
        if list(got.items()) == list(expected.items()):
            continue
        if got == expected:
            fail(name, f"{what}: the right merges in the wrong order; the dict must list them in "
                 "the order they were learned (256 first), because encode applies them in that "
                 "order.")  # fmt: skip
        if len(got) > len(expected) and vocab_size - ref.BASE_VOCAB > len(expected):
            fail(name, f"{what} returned {len(got)} merges, expected {len(expected)}: stop when "
                 "no pair is left (every chunk is a single token).")  # fmt: skip
        mistakes = _train_mistakes(text, vocab_size)
        mistake = _mistake(got, mistakes)
        detail = _first_difference(got, expected)
        fail(name, f"{what}: {detail}" + (f"; {mistake}." if mistake else "."))
    passed(name, "most frequent pair inside chunks, smallest pair on ties, ids from 256")


# ----------------------------------------------------------------------------- encode

# Hand-made merges: "ñ" is merged from its bytes, then " a"+"ñ"; ". " straddles two chunks;
# "aa" merges early and "a"+"aa" later, so the order of the merges matters.
ENCODE_MERGES = {
    (195, 177): 256,  # ñ
    (97, 97): 257,  # aa
    (32, 97): 258,  # " a"
    (258, 256): 259,  # " añ"
    (46, 32): 260,  # ". " (a pair no chunk holds)
    (97, 257): 261,  # a + aa
    (259, 111): 262,  # " año"
}
ENCODE_TEXTS = ["Un año. aaa", " añoaaaa ¿qué?", "Rocinante 🐴 costó 5 €", "", "ñ"]


def _encode_mistakes(text, merges):
    def variant(**kw):
        return lambda: bug.encode_variant(text, merges, **kw)

    return {
        "the ids are Unicode code points (ord), not UTF-8 bytes (text.encode('utf-8'))":
            variant(code_points=True),
        "no merges were applied: after taking the bytes, apply the merges": variant(apply=False),
        "the text was not split into chunks first, so a merge joined two chunks: use "
        "split_chunks(text) and encode each chunk on its own": variant(chunks=False),
        "the merges were applied in reverse order; apply the earliest-learned (lowest id) "
        "first": variant(order="reverse"),
        "only one merge was applied per chunk; keep merging until no learned pair is left":
            variant(order="once"),
    }  # fmt: skip


def check_encode(encode) -> None:
    """``encode(text, merges)`` -> ids: UTF-8 bytes per chunk, merges applied by rank."""
    __tracebackhide__ = True
    name = "encode"
    require_callable(name, encode, "your encode function")
    trained = ref.train_merges(TRAIN_TEXT, VOCAB_SIZE)
    cases = [(t, ENCODE_MERGES) for t in ENCODE_TEXTS] + [(TRAIN_TEXT, trained)]
    for text, merges in cases:
        what = f"encode({text!r}, merges)"
        got = _as_ids(name, call(name, encode, text, dict(merges), what=what), what)
        expected = ref.BPETokenizer(merges).encode(text)
        if got == expected:
            continue
        mistake = _mistake(got, _encode_mistakes(text, merges))
        fail(name, f"{what} returned {got[:20]}, expected {expected[:20]}" +
             (f": {mistake}." if mistake else "."))  # fmt: skip
    passed(name, "UTF-8 bytes of each chunk, merges applied earliest first")


# ----------------------------------------------------------------------------- decode


def _decode_hint(what):
    def hint(exc: Exception) -> str | None:
        if isinstance(exc, UnicodeDecodeError):
            return (f"{what} raised UnicodeDecodeError: a token can hold half a character "
                    "(ñ is two bytes), and a model can write bytes that are not UTF-8. Join the "
                    "bytes of all tokens first, then decode once with errors='replace'.")  # fmt: skip
        return None

    return hint


_DECODE_MISTAKES = {
    "each token was decoded on its own, which breaks a character whose two bytes sit in two "
    "tokens: join all the bytes first, then decode once":
        lambda ids, merges: bug.decode_variant(ids, merges, per_token=True),
    "a merged token's bytes are the first part's then the second's (a + b), not b + a":
        lambda ids, merges: bug.decode_variant(ids, merges, swapped=True),
    "the bytes were read as Latin-1 (chr of each byte): decode them as UTF-8":
        lambda ids, merges: bug.decode_variant(ids, merges, latin1=True),
}  # fmt: skip


def check_decode(decode) -> None:
    """``decode(ids, merges)`` -> text: join every token's bytes, decode once (errors='replace')."""
    __tracebackhide__ = True
    name = "decode"
    require_callable(name, decode, "your decode function")
    merges = ENCODE_MERGES
    tok = ref.BPETokenizer(merges)
    cases = [tok.encode(t) for t in ENCODE_TEXTS[:3]]
    cases += [[32, 97, 195, 177, 111], [262, 195], [195], [32, 97, 261], []]
    for ids in cases:
        what = f"decode({ids}, merges)"
        got = call(name, decode, list(ids), dict(merges), what=what, hint=_decode_hint(what))
        expected = tok.decode(ids)
        if not isinstance(got, str):
            fail(name, f"{what} returned {type(got).__name__}; expected a str.")
        if got == expected:
            continue
        mistake = _mistake(got, _DECODE_MISTAKES, ids, merges)
        fail(name, f"{what} returned {got!r}, expected {expected!r}" +
             (f": {mistake}." if mistake else "."))  # fmt: skip
    passed(name, "bytes joined, decoded once as UTF-8, broken bytes as '\ufffd'")
