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
from shared.checks import _bpe_hints as hints
from shared.checks._calls import call
from shared.checks._core import Exercise, fail, passed, require_callable
from shared.checks._hints import crash_hint

BASE = ref.BASE_VOCAB

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
    if (
        value
        and all(isinstance(k, int) for k in value)
        and all(isinstance(v, tuple) for v in value.values())
    ):
        fail(name, f"{what} returned the dict the wrong way round, {{new_id: pair}}: the keys "
             "are the pairs (a, b) and the values the new ids, so encode can look a pair up.")  # fmt: skip
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
    value = list(value)
    nested = [v for v in value if isinstance(v, (list, tuple))]
    if nested and name == "encode":
        fail(name, f"{what} returned a list of {len(value)} lists, one per chunk: return one "
             "flat list of ids, the chunks' ids one after the other (extend the result with "
             "each chunk's ids rather than append the chunk's list).")  # fmt: skip
    bad = [v for v in value if not hasattr(v, "__index__")]
    if bad:
        fail(name, f"{what} returned a list holding {bad[0]!r} ({type(bad[0]).__name__}): every "
             "entry must be one id, an int.")  # fmt: skip
    return [int(v) for v in value]


def _mistake(got, mistakes: dict, *args) -> str | None:
    """The first mistake whose ``compute(*args)`` (or any of a list of them) equals ``got``."""
    for message, computes in mistakes.items():
        for compute in computes if isinstance(computes, list) else [computes]:
            try:
                if got == compute(*args):
                    return message
            except Exception:  # the mistake's code does not apply to this input
                continue
    return None


# ----------------------------------------------------------------------------- pair_counts

# Pairs that repeat without overlap (each off-by-one gives its own counts), overlapping runs,
# ids > 255, a count of 3.
_COUNT_CASES = ([1, 2, 3, 4, 1, 2, 3], [7, 7, 7, 7, 1, 2, 1, 2, 9], [1, 2, 3, 1, 2], [104, 111, 108, 97],
                [300, 5, 5, 300, 5, 5, 300], [5], [])  # fmt: skip


def check_pair_counts(pair_counts) -> None:
    """``pair_counts(ids)`` -> ``{(a, b): count}`` of adjacent pairs, overlaps included."""
    __tracebackhide__ = True
    name = "pair_counts"
    require_callable(name, pair_counts, "your pair_counts function")
    for ids in _COUNT_CASES:
        what = f"pair_counts({ids})"
        got = call(name, pair_counts, list(ids), what=what,
                   hint=crash_hint(what, hints.COUNT_CRASHES))  # fmt: skip
        got = _as_dict(name, got, what)
        expected = ref.pair_counts(ids)
        if got == expected:
            continue
        mistake = _mistake(got, hints.COUNT_MISTAKES, ids)
        fail(name, f"{what} returned {got}, expected {expected}" +
             (f": {mistake}." if mistake else "."))  # fmt: skip
    passed(name, "adjacent pairs counted, overlapping runs included")


# ----------------------------------------------------------------------------- merge_pair

_MERGE_CASES = [
    ([1, 2, 3, 1, 2], (1, 2), 256),
    ([7, 7, 7], (7, 7), 300),
    ([7, 7, 7, 7, 7], (7, 7), 300),
    ([3, 1, 2, 9], (1, 2), 256),
    ([2, 1, 2, 1], (2, 1), 257),
    ([3, 2, 1, 2, 5], (1, 2), 256),  # 2 (the pair's second) follows another id first
    ([1, 3, 1, 2, 1], (1, 2), 256),  # 1 (the pair's first) followed by another id, and last
    ([2, 1, 3, 1, 2], (1, 2), 256),  # the reversed pair (2, 1) must stay
    ([5, 5, 6, 5, 5, 5, 6], (5, 6), 299),  # 5 5 6: the pair at the second 5 only
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
        got = call(name, merge_pair, list(ids), pair, new_id, what=what,
                   hint=crash_hint(what, hints.MERGE_CRASHES))  # fmt: skip
        got = _as_ids(name, got, what)
        expected = ref.merge_pair(ids, pair, new_id)
        if got == expected:
            continue
        mistake = _mistake(got, hints.MERGE_MISTAKES, ids, pair, new_id)
        fail(name, f"{what} returned {got}, expected {expected}" +
             (f": {mistake}." if mistake else "."))  # fmt: skip
    passed(name, "every occurrence merged left to right, overlapping runs included")


# ----------------------------------------------------------------------------- train_merges


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
        got = call(name, train_merges, text, vocab_size, what=what,
                   hint=crash_hint(what, hints.TRAIN_CRASHES))  # fmt: skip
        got = _as_dict(name, got, what)
        expected = ref.train_merges(text, vocab_size)
        if list(got.items()) == list(expected.items()):
            continue
        if got == expected:
            fail(name, f"{what}: the right merges in the wrong order; the dict must list them in "
                 "the order they were learned (256 first), because encode applies them in that "
                 "order.")  # fmt: skip
        mistake = _mistake(got, hints.train_mistakes(text, vocab_size))
        if not mistake and len(got) > len(expected) and vocab_size - BASE > len(expected):
            fail(name, f"{what} returned {len(got)} merges, expected {len(expected)}: stop when "
                 "no pair is left (every chunk is a single token).")  # fmt: skip
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
# In "abcbc" the most frequent pair, the smallest pair and the earliest-learned pair differ:
# each way of choosing the next pair to merge gives other ids here.
RANK_MERGES = {(99, 98): 256, (98, 99): 257, (97, 98): 258, (99, 97): 259}
RANK_TEXT = "abcbc cbcab"
ENCODE_TEXTS = ["Un año. aaa", " añoaaaa ¿qué?", "Rocinante 🐴 costó 5 €", "", "ñ"]


def check_encode(encode) -> None:
    """``encode(text, merges)`` -> ids: UTF-8 bytes per chunk, merges applied by rank."""
    __tracebackhide__ = True
    name = "encode"
    require_callable(name, encode, "your encode function")
    trained = ref.train_merges(TRAIN_TEXT, VOCAB_SIZE)
    cases = [(RANK_TEXT, RANK_MERGES)] + [(t, ENCODE_MERGES) for t in ENCODE_TEXTS]
    cases += [(TRAIN_TEXT, trained)]
    for text, merges in cases:
        what = f"encode({text!r}, merges)"
        got = _as_ids(name, call(name, encode, text, dict(merges), what=what), what)
        expected = ref.BPETokenizer(merges).encode(text)
        if got == expected:
            continue
        mistake = _mistake(got, hints.encode_mistakes(text, merges))
        fail(name, f"{what} returned {got[:20]}, expected {expected[:20]}" +
             (f": {mistake}." if mistake else "."))  # fmt: skip
    passed(name, "UTF-8 bytes of each chunk, merges applied earliest first")


# ----------------------------------------------------------------------------- decode


def check_decode(decode) -> None:
    """``decode(ids, merges)`` -> text: join every token's bytes, decode once (errors='replace')."""
    __tracebackhide__ = True
    name = "decode"
    require_callable(name, decode, "your decode function")
    merges = ENCODE_MERGES
    tok = ref.BPETokenizer(merges)
    cases = [tok.encode(t) for t in ENCODE_TEXTS[:3]]
    cases += [[32, 97, 195, 177, 111], [262, 195], [195], [32, 97, 261], [0, 255, 104], []]
    for ids in cases:
        what = f"decode({ids}, merges)"
        got = call(name, decode, list(ids), dict(merges), what=what, hint=hints.decode_hint(what))
        expected = tok.decode(ids)
        if isinstance(got, (bytes, bytearray)):
            fail(name, f"{what} returned bytes; expected a str: the joined bytes still have to "
                 "be decoded (UTF-8) into text.")  # fmt: skip
        if not isinstance(got, str):
            fail(name, f"{what} returned {type(got).__name__}; expected a str.")
        if got == expected:
            continue
        mistake = _mistake(got, hints.DECODE_MISTAKES, ids, merges)
        fail(name, f"{what} returned {got!r}, expected {expected!r}" +
             (f": {mistake}." if mistake else "."))  # fmt: skip
    passed(name, "bytes joined, decoded once as UTF-8, broken bytes as '\ufffd'")
