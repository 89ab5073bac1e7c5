"""What the classic BPE mistakes compute, so lesson 09's checks can name one only when the
learner's result equals it (``shared.checks.bpe``). Each function is a small, deliberately wrong
variant of the reference in ``shared.bpe``."""

from __future__ import annotations

from itertools import pairwise

from shared.bpe import BASE_VOCAB, merge_pair, pair_counts, split_chunks, token_bytes


def merge_reusing_ids(ids, pair, new_id):
    """The overlap bug: every matching position merges, so [7, 7, 7] -> [X, X] (the middle 7
    is used twice)."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
            if i + 2 == len(ids) or (ids[i + 1], ids[i + 2]) != tuple(pair):
                i += 2
            else:
                i += 1
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_from_the_right(ids, pair, new_id):
    return merge_pair(ids[::-1], tuple(pair)[::-1], new_id)[::-1]


def merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == tuple(pair):
            return [*ids[:i], new_id, *ids[i + 2 :]]
    return list(ids)


def _merge_where(ids, new_id, matches):
    """Left to right, replace each adjacent (a, b) with ``matches(a, b)`` by new_id."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and matches(ids[i], ids[i + 1]):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_first_id_only(ids, pair, new_id):
    """Merges wherever the first id matches, whatever follows it."""
    return _merge_where(ids, new_id, lambda a, b: a == pair[0])


def merge_either_id(ids, pair, new_id):
    """Merges when the first id *or* the second matches."""
    return _merge_where(ids, new_id, lambda a, b: a == pair[0] or b == pair[1])


def merge_unordered(ids, pair, new_id):
    """Merges (b, a) as well as (a, b)."""
    swapped = tuple(pair)[::-1]
    return _merge_where(ids, new_id, lambda a, b: (a, b) in (tuple(pair), swapped))


def merge_step_one(ids, pair, new_id):
    """After a merge the scan moves on by one, so the pair's second id is read again."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
        else:
            out.append(ids[i])
        i += 1
    return out


def merge_skipping_first(ids, pair, new_id):
    """The scan starts at index 1: the first id is lost."""
    return merge_pair(ids[1:], tuple(pair), new_id)


def merge_nothing(ids, pair, new_id):
    return list(ids)


def merge_dropping_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def counts_without_overlap(ids):
    counts, i = {}, 0
    while i < len(ids) - 1:
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
        i += 2 if i + 2 < len(ids) and (ids[i + 1], ids[i + 2]) == pair else 1
    return counts


def counts_stride_two(ids):
    """Pairs taken two ids at a time (0-1, 2-3, ...), as if pairs could not overlap."""
    counts = {}
    for pair in zip(ids[::2], ids[1::2], strict=False):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def counts_skip_after_repeat(ids):
    """After a pair of two equal ids the scan jumps past both (a merge's rule, not a count's)."""
    counts, i = {}, 0
    while i < len(ids) - 1:
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
        i += 2 if ids[i] == ids[i + 1] else 1
    return counts


def counts_missing_first(ids):
    return pair_counts(ids[1:])


def counts_wrapping(ids):
    """The last id paired with the first, as if the list were a ring."""
    return pair_counts([*ids, ids[0]]) if len(ids) > 1 else {}


def counts_plus_one(ids):
    """A new pair starts at 1 and is then incremented: every count one too high."""
    return {p: n + 1 for p, n in pair_counts(ids).items()}


def counts_missing_last(ids):
    return pair_counts(ids[:-1])


def counts_reversed(ids):
    return {(b, a): n for (a, b), n in pair_counts(ids).items()}


def counts_presence(ids):
    return dict.fromkeys(pairwise(ids), 1)


# ----------------------------------------------------------------------------- training


def _pick(counts, tie):
    if tie == "least":  # min of the counts: the rarest pair
        return min(counts, key=counts.get)
    if tie == "least, smallest":  # the minus sign dropped from the rule's key
        return min(counts, key=lambda p: (counts[p], p))
    if tie == "pair only":  # min(counts): the smallest pair, whatever its count
        return min(counts)
    if tie == "largest":
        return max(counts, key=lambda p: (counts[p], p))
    if tie == "first seen":  # max() keeps the first of equal counts: dict (text) order
        return max(counts, key=counts.get)
    return min(counts, key=lambda p: (-counts[p], p))


def _pieces(text, chunks):
    if callable(chunks):  # another splitter, e.g. str.split
        return chunks(text)
    return split_chunks(text) if chunks else [text]


def train_variant(
    text, vocab_size, *, chunks=True, tie="smallest", merge=merge_pair, code_points=False,
    recount=True, first_id=BASE_VOCAB, extra=0, summed=True,
):  # fmt: skip
    """The plain trainer with one thing changed (see the keyword arguments): ``extra`` merges
    more (or fewer) than ``vocab_size`` allows; ``summed=False`` keeps each pair's count from
    the last chunk that holds it (``dict.update``)."""
    pieces = _pieces(text, chunks)
    if code_points:
        seqs = [[ord(ch) for ch in piece] for piece in pieces]
    else:
        seqs = [list(piece.encode("utf-8")) for piece in pieces]
    merges = {}
    frozen = None
    for k in range(vocab_size - BASE_VOCAB + extra):
        counts = {}
        for ids in seqs:
            if summed:
                pair_counts(ids, counts)
            else:
                counts.update(pair_counts(ids))
        if not counts:
            break
        if not recount:  # the counts of the raw bytes, ranked once
            frozen = frozen or sorted(counts, key=lambda p: (-counts[p], p))
            if k >= len(frozen):
                break
            pair = frozen[k]
        else:
            pair = _pick(counts, tie)
        merges[pair] = first_id + k
        seqs = [merge(ids, pair, first_id + k) for ids in seqs]
    return merges


# ----------------------------------------------------------------------------- encode / decode


_CHOOSE = {  # how the pair to merge next is picked among the chunk's pairs that have a merge
    "rank": lambda found, merges, counts: min(found, key=merges.get),
    "latest": lambda found, merges, counts: max(found, key=merges.get),
    "smallest pair": lambda found, merges, counts: min(found),
    "frequent": lambda found, merges, counts: max(found, key=counts.get),  # first seen on ties
    "frequent, smallest": lambda found, merges, counts: min(found, key=lambda p: (-counts[p], p)),
    "frequent, earliest": lambda found, merges, counts: min(
        found, key=lambda p: (-counts[p], merges[p])
    ),
}


def encode_variant(text, merges, *, chunks=True, code_points=False, order="rank", apply=True):
    """The reference encoder with one thing changed; ``order`` names how the next pair is
    chosen (``_CHOOSE``), or ``"reverse"`` / ``"once"``."""
    merges = {tuple(p): i for p, i in merges.items()}
    out = []
    for piece in _pieces(text, chunks):
        ids = [ord(ch) for ch in piece] if code_points else list(piece.encode("utf-8"))
        if apply and order in _CHOOSE:
            while len(ids) >= 2:
                counts = pair_counts(ids)
                found = [p for p in counts if p in merges]
                if not found:
                    break
                pair = _CHOOSE[order](found, merges, counts)
                ids = merge_pair(ids, pair, merges[pair])
        elif apply and order == "reverse":
            for pair, new_id in reversed(merges.items()):
                ids = merge_pair(ids, pair, new_id)
        elif apply and order == "once":  # the earliest merge present, then stop
            ranked = [p for p in pairwise(ids) if p in merges]
            if ranked:
                pair = min(ranked, key=merges.get)
                ids = merge_pair(ids, pair, merges[pair])
        out += ids
    return out


def decode_variant(
    ids, merges, *, per_token=False, swapped=False, latin1=False, errors="replace", part=None
):
    """The reference decoder with one thing changed; ``part`` 0 or 1: a merged token keeps only
    its first or its second part's bytes."""
    merges = {tuple(p): i for p, i in merges.items()}
    if swapped or part is not None:
        vocab = {i: bytes([i]) for i in range(BASE_VOCAB)}
        for (a, b), new_id in merges.items():
            vocab[new_id] = vocab[b] + vocab[a] if part is None else vocab[(a, b)[part]]
    else:
        vocab = token_bytes(merges)
    if per_token:
        return "".join(vocab[i].decode("utf-8", errors=errors) for i in ids)
    data = b"".join(vocab[i] for i in ids)
    return data.decode("latin-1") if latin1 else data.decode("utf-8", errors=errors)
