"""The named mistakes of lesson 09's checks (``shared.checks.bpe``): each message goes with what
that mistake computes (``_bpe_mistakes``), so a mistake is named only when the learner's result
equals it; and the crash hints for the errors these exercises raise most."""

from __future__ import annotations

from shared.bpe import BASE_VOCAB
from shared.checks import _bpe_mistakes as bug
from shared.checks._hints import crash_hint

# ----------------------------------------------------------------------------- pair_counts

COUNT_MISTAKES = {
    "only every other position starts a pair (0-1, 2-3, ...): a pair starts at every position, "
    "so [7, 7, 7, 7] holds three (7, 7) pairs, overlapping": bug.counts_stride_two,
    "overlapping pairs are not all counted: the scan jumps past a run's pair (merge_pair's "
    "rule, not pair_counts'), but [7, 7, 7, 7] holds three (7, 7) pairs (positions 0-1, 1-2, "
    "2-3): count at every position": [
        bug.counts_skip_after_repeat, bug.counts_without_overlap],
    "the last pair is missing: a list of n ids has n - 1 adjacent pairs": bug.counts_missing_last,
    "the first pair is missing: a list of n ids has n - 1 adjacent pairs, the first at "
    "positions 0-1": bug.counts_missing_first,
    "the last id is paired with the first: the list is not a ring": bug.counts_wrapping,
    "the pairs are reversed: (a, b) means a comes first, then b": bug.counts_reversed,
    "every pair has count 1: count how many times each pair occurs, not just whether it does":
        bug.counts_presence,
    "every count is one too high: a pair seen once has count 1 (start a new pair at 0, then "
    "add 1)": bug.counts_plus_one,
}  # fmt: skip

COUNT_CRASHES = [
    (("IndexError",), "index out of range",
     "The last id has no id after it: a list of n ids has n - 1 pairs, so stop one before the "
     "end (lists of 0 or 1 ids have none)."),
    (("TypeError",), "unhashable",
     "A dict key must be hashable: a pair is the tuple (a, b), not a list [a, b]."),
]  # fmt: skip

# ----------------------------------------------------------------------------- merge_pair

MERGE_MISTAKES = {
    "a pair was merged when only one of its two ids matched: (a, b) merges only where a is "
    "followed by b": [bug.merge_either_id, bug.merge_first_id_only],
    "the pair (b, a) was merged too: (a, b) is ordered, a first": bug.merge_unordered,
    "an id was used by two merges: in [7, 7, 7] the middle 7 can join the first or the last, "
    "not both. After a merge, jump past both ids": bug.merge_reusing_ids,
    "after a merge the scan moves on by one id, so the pair's second id is read again (and "
    "copied or merged a second time): after a merge, jump past both ids": bug.merge_step_one,
    "the merge scans from the right; the rule is left to right, so [7, 7, 7] -> [X, 7]":
        bug.merge_from_the_right,
    "only the first occurrence was merged: replace every occurrence": bug.merge_first_only,
    "the last id is lost when it is not part of a merge: copy it to the output too":
        bug.merge_dropping_last,
    "the first id is lost: the scan starts at index 0": bug.merge_skipping_first,
    "nothing was merged, the ids came back as they were: the pair is a tuple, and a list "
    "[a, b] never equals a tuple (a, b) in Python": bug.merge_nothing,
}  # fmt: skip

MERGE_CRASHES = [
    (("IndexError",), "index out of range",
     "Near the end there is no next id: look at ids[i + 1] only while i + 1 < len(ids), and "
     "copy the last id when it is not part of a merge."),
]  # fmt: skip

# ----------------------------------------------------------------------------- train_merges


def train_mistakes(text, vocab_size):
    def variant(**kw):
        return lambda: bug.train_variant(text, vocab_size, **kw)

    n = vocab_size - BASE_VOCAB
    return {
        "the pairs were counted across chunk boundaries (here ('x', '.') wins that way): split "
        "the text with split_chunks and count pairs inside each chunk only": variant(chunks=False),
        "the text was split with str.split, which drops the spaces: split_chunks keeps each "
        "space with the word after it (' año'), so pairs with a space are learned too": [
            variant(chunks=str.split), variant(chunks=lambda t: t.split(" "))],
        "the ids are Unicode code points (ord), not UTF-8 bytes: 'ñ' must start as the two "
        "bytes 195, 177, so the base vocabulary is 0..255": variant(code_points=True),
        "the chunks' counts were not added up: dict.update replaces a pair's count by the last "
        "chunk's, so the totals are wrong; add each chunk's counts to the total":
            variant(summed=False),
        "ties go to the largest pair; the rule is the smallest pair (compare the first ids, "
        "then the second)": variant(tie="largest"),
        "ties go to the pair seen first in the text (max keeps the first of equal counts); the "
        "rule is the smallest pair, so the result never depends on order": variant(tie="first seen"),
        "the least frequent pair was merged (min of the counts): merge the most frequent": [
            variant(tie="least"), variant(tie="least, smallest")],
        "the smallest pair was merged whatever its count (min of the pairs): merge the most "
        "frequent pair, and use the smallest only to break ties": variant(tie="pair only"),
        "the pairs were counted once, before any merge: after each merge the counts change "
        "(new pairs appear, merged ones vanish), so count again": variant(recount=False),
        "the chunks were not updated after a merge, so the same pair wins every round (each "
        "new id replaces it in the dict): merge the chosen pair in every chunk before counting "
        "again": variant(merge=bug.merge_nothing),
        "the merges reuse an id in overlapping runs like 'aaa' (see merge_pair)":
            variant(merge=bug.merge_reusing_ids),
        "the new ids start at 257; the first merge gets id 256, right after the bytes": [
            variant(first_id=BASE_VOCAB + 1, extra=-1), variant(first_id=BASE_VOCAB + 1)],
        "the new ids start at 255, which is already a byte; the first merge gets 256": [
            variant(first_id=BASE_VOCAB - 1), variant(first_id=BASE_VOCAB - 1, extra=1)],
        f"one merge too many ({n + 1}): vocab_size counts the 256 bytes too, so there are "
        f"vocab_size - 256 = {n} merges, ids 256 .. vocab_size - 1": variant(extra=1),
        f"one merge too few ({n - 1}): there are vocab_size - 256 = {n} merges, ids 256 .. "
        "vocab_size - 1 (range's end is excluded)": variant(extra=-1),
    }  # fmt: skip


TRAIN_CRASHES = [
    (("ValueError",), "empty",
     "No pair was left to count (every chunk is one token; 'ab ab' runs out after two merges): "
     "stop early when the counts are empty."),
    (("TypeError",), "unhashable",
     "A dict key must be hashable: a pair is the tuple (a, b), not a list [a, b]."),
]  # fmt: skip

# ----------------------------------------------------------------------------- encode


def encode_mistakes(text, merges):
    def variant(**kw):
        return lambda: bug.encode_variant(text, merges, **kw)

    return {
        "the ids are Unicode code points (ord), not UTF-8 bytes (text.encode('utf-8'))":
            variant(code_points=True),
        "no merges were applied: after taking the bytes, apply the merges": variant(apply=False),
        "the text was not split into chunks first, so a merge joined two chunks: use "
        "split_chunks(text) and encode each chunk on its own": variant(chunks=False),
        "the text was split with str.split, which drops the spaces (decode could not give the "
        "text back): use split_chunks(text)": [
            variant(chunks=str.split), variant(chunks=lambda t: t.split(" "))],
        "the pair merged next is the most frequent in the chunk; the rule is the pair *learned* "
        "earliest (the lowest new id), whatever its count here, because training merged in "
        "that order": [variant(order="frequent"), variant(order="frequent, smallest"),
                       variant(order="frequent, earliest")],
        "the pair merged next is the smallest pair (min of the tuples); the rule is the pair "
        "learned earliest: compare the new ids merges[pair]": variant(order="smallest pair"),
        "the merges were applied latest-learned first (the highest new id, or the merges in "
        "reverse order); the rule is the earliest-learned, the lowest new id, first": [
            variant(order="latest"), variant(order="reverse")],
        "only one merge was applied per chunk; keep merging until no learned pair is left":
            variant(order="once"),
    }  # fmt: skip


# ----------------------------------------------------------------------------- decode

DECODE_MISTAKES = {
    "bytes that are not UTF-8 were dropped (errors='ignore'): the spec turns them into "
    "'\ufffd' (errors='replace'), so the reader sees that something was there":
        lambda ids, merges: bug.decode_variant(ids, merges, errors="ignore"),
    "each token was decoded on its own, which breaks a character whose two bytes sit in two "
    "tokens: join all the bytes first, then decode once": [
        lambda ids, merges: bug.decode_variant(ids, merges, per_token=True),
        lambda ids, merges: bug.decode_variant(ids, merges, per_token=True, errors="ignore")],
    "a merged token's bytes are the first part's then the second's (a + b), not b + a":
        lambda ids, merges: bug.decode_variant(ids, merges, swapped=True),
    "a merged token kept only one part's bytes: its bytes are its first part's followed by its "
    "second part's": [lambda ids, merges: bug.decode_variant(ids, merges, part=0),
                      lambda ids, merges: bug.decode_variant(ids, merges, part=1)],
    "the bytes were read as Latin-1 (chr of each byte): decode them as UTF-8":
        lambda ids, merges: bug.decode_variant(ids, merges, latin1=True),
}  # fmt: skip


def decode_hint(what):
    return crash_hint(what, [
        (("UnicodeDecodeError",), "",
         "A token can hold half a character (ñ is two bytes), and a model can write bytes that "
         "are not UTF-8. Join the bytes of all tokens first, then decode once with "
         "errors='replace'."),
        (("ValueError",), "bytes must be in range",
         "A merged id's parts can be merged ids themselves (above 255), and bytes([a, b]) only "
         "takes single bytes: a merged token's bytes are its first part's bytes followed by its "
         "second part's."),
        (("KeyError",), "",
         "Every id needs its bytes: 0..255 are the single bytes, and each merged id the bytes "
         "of its pair, built in training order (the parts come first)."),
    ])  # fmt: skip
