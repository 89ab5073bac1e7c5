"""Checks for lesson 07's stretch exercises: top-p (nucleus) filtering, and one KV-cache step."""

from __future__ import annotations

import math

import torch

from shared.checks._calls import call
from shared.checks._core import Exercise, close, fail, passed, require_callable

EXERCISES = [
    Exercise(
        name="top_p_filter",
        check="check_top_p_filter",
        target="top_p_filter",
        description="top_p_filter(logits, p) -> logits with all but the nucleus of each row at -inf",
        optional=True,
    ),
    Exercise(
        name="attend_with_cache",
        check="check_attend_with_cache",
        target="attend_with_cache",
        description="attend_with_cache(q, k, v, past) -> y, (k, v): one attention step with a cache",
        optional=True,
    ),
]

# ----------------------------------------------------------------------------- top-p

# Two distributions, each shuffled into a different vocabulary order per row (so sorting and
# unsorting matter), as logits shifted by +5 (softmax ignores a shift; cumulative sums of
# logits do not). Each case's p sits well between cumulative sums: no ties to argue about.
_PROBS = {
    "peaked": [0.62, 0.18, 0.10, 0.05, 0.03, 0.02],
    "flat": [0.40, 0.25, 0.15, 0.10, 0.06, 0.04],
}
_ORDERS = ([3, 0, 5, 1, 4, 2], [4, 2, 0, 5, 3, 1])  # where the i-th most likely token sits
_CASES = (0.5, 0.85)  # p = 0.5: the peaked row keeps only its top token


def _top_p_logits() -> torch.Tensor:
    rows = []
    for probs, order in zip(_PROBS.values(), _ORDERS, strict=True):
        row = torch.empty(len(probs))
        row[torch.tensor(order)] = torch.tensor(probs).log() + 5.0
        rows.append(row)
    return torch.stack(rows)  # (2, V=6)


def _keep_sorted(sorted_values: torch.Tensor, p: float, inclusive: bool) -> torch.Tensor:
    """Keep mask in sorted order from a cumulative sum of ``sorted_values``."""
    cumulative = sorted_values.cumsum(-1)
    if inclusive:  # compares the sum *including* the token itself
        return cumulative < p
    return (cumulative - sorted_values) < p  # the mass before the token has not reached p


def _top_p_candidates(logits: torch.Tensor, p: float) -> dict[str, torch.Tensor]:
    """What the correct filter and each classic mistake keep (bool (B, V) masks)."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    sorted_probs = sorted_logits.softmax(-1)
    keep_sorted = _keep_sorted(sorted_probs, p, inclusive=False)

    def unsort(mask_sorted):
        return torch.zeros_like(mask_sorted).scatter(-1, order, mask_sorted)

    probs = logits.softmax(-1)
    return {
        "correct": unsort(keep_sorted),
        "inclusive": unsort(_keep_sorted(sorted_probs, p, inclusive=True) | _first(order)),
        "inclusive, top dropped too": unsort(_keep_sorted(sorted_probs, p, inclusive=True)),
        "unsorted": _keep_sorted(probs, p, inclusive=False),
        "unsorted, inclusive": _keep_sorted(probs, p, inclusive=True),
        "cumsum of logits": unsort(_keep_sorted(sorted_logits, p, inclusive=False)),
        "cumsum of logits, inclusive": unsort(_keep_sorted(sorted_logits, p, inclusive=True)),
        "not unsorted": keep_sorted,
        "gather": keep_sorted.gather(-1, order),
    }


def _first(order: torch.Tensor) -> torch.Tensor:
    """True at the first sorted slot only (the top token kept on purpose)."""
    mask = torch.zeros_like(order, dtype=torch.bool)
    mask[..., 0] = True
    return mask


_TOP_P_HINTS = {
    "unsorted": "you summed the probabilities in vocabulary order. Sort them first (most likely "
    "first, torch.sort(..., descending=True)): the nucleus is the *most likely* tokens.",
    "cumsum of logits": "you took the cumulative sum of the logits; sum the *probabilities* "
    "(softmax of the sorted logits), so the running total reaches 1.",
    "not unsorted": "the keep/drop decisions are in *sorted* order but you applied them to the "
    "logits in vocabulary order: put them back with mask.scatter(-1, order, mask).",
    "gather": "you put the sorted decisions back with gather, which applies the inverse "
    "permutation: use mask_sorted.scatter(-1, order, mask_sorted) (or index with order).",
}


def _check_mass_exactly_p(name, top_p_filter) -> None:
    """Four equally likely tokens and p = 0.5: the first two sum to exactly 0.5 (exact in
    floats), so two are kept, whichever two the sort puts first."""
    __tracebackhide__ = True
    out = call(name, top_p_filter, torch.zeros(1, 4), 0.5,
               what="top_p_filter(four equal logits, p=0.5)")  # fmt: skip
    kept = int(torch.isfinite(out).sum()) if isinstance(out, torch.Tensor) else None
    if kept == 3:
        fail(name, "with four equally likely tokens and p=0.5 you kept 3: the third token's "
             "predecessors already sum to exactly p. A token is kept only while the mass "
             "*before* it is less than p (strictly).")  # fmt: skip
    if kept != 2:
        fail(name, f"with four equally likely tokens and p=0.5 you kept {kept} tokens, "
             "expected 2 (0.25 + 0.25 reaches p).")  # fmt: skip


def check_top_p_filter(top_p_filter) -> None:
    """Two shuffled rows (a peaked and a flat distribution), p = 0.5 and 0.85."""
    __tracebackhide__ = True
    name = "top_p_filter"
    require_callable(name, top_p_filter, "the top_p_filter function")
    logits = _top_p_logits()
    probs = logits.softmax(-1)
    runs = []  # (p, kept mask, candidates) per case; a bug is named when it explains every case
    for p in _CASES:
        original = logits.clone()
        out = call(name, top_p_filter, logits, p, what=f"top_p_filter(logits, p={p})")
        if not torch.equal(logits, original):
            fail(name, "your function changed the logits passed in: return a new tensor "
                       "(masked_fill, not the in-place masked_fill_).")  # fmt: skip
        if not isinstance(out, torch.Tensor) or out.shape != logits.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            fail(name, f"return logits of the same shape {tuple(logits.shape)}, got {got}.")
        out = out.detach().float()
        if (
            torch.isfinite(out).all()
            and (out >= 0).all()
            and torch.allclose(out.sum(-1), torch.ones(len(out)), atol=1e-4)
        ):
            fail(name, "you returned probabilities; return *logits*, with the removed ones set "
                       "to float('-inf') (sampling applies the softmax later).")  # fmt: skip
        kept = torch.isfinite(out)
        if kept.all() and (out == 0).any():
            fail(name, "set the removed logits to float('-inf'), not 0: after softmax a logit of "
                       "0 still has probability (e^0 = 1).")  # fmt: skip
        candidates = _top_p_candidates(logits, p)
        if torch.equal(kept, candidates["correct"]) and not torch.equal(out[kept], logits[kept]):
            fail(name, "the kept logits changed: leave them as they are (no softmax, no "
                       "scaling).")  # fmt: skip
        runs.append((p, kept, candidates))
    wrong = [(p, kept, c) for p, kept, c in runs if not torch.equal(kept, c["correct"])]
    if not wrong:
        _check_mass_exactly_p(name, top_p_filter)
        passed(name, "keeps the fewest most likely tokens reaching p (the top one always), "
                     "-inf elsewhere, in vocabulary order.")  # fmt: skip
        return

    def explains(bug: str) -> bool:  # some variant of ``bug`` gives what you kept in every case
        variants = [k for k in runs[0][2] if k == bug or k.startswith(bug + ",")]
        return any(all(torch.equal(kept, c[v]) for _, kept, c in runs) for v in variants)

    for bug in ("not unsorted", "gather", "unsorted", "cumsum of logits"):
        if explains(bug):
            fail(name, _TOP_P_HINTS[bug])
    if explains("inclusive"):
        fail(name, "you dropped the token whose probability carries the sum past p (so when "
             "the top token alone reaches p, nothing but it is left, or not even it): it "
             "belongs to the nucleus. Compare the mass *before* each token with p (cumulative "
             "minus its own probability), not the cumulative sum including it.")  # fmt: skip
    top = logits.argmax(-1)
    for p, kept, _ in runs:
        if not kept[torch.arange(len(kept)), top].all():
            fail(name, f"with p={p} the most likely token was removed (a row's top token has "
                 f"probability {float(probs.max(-1).values[0]):.2f} >= p). The top token must "
                 "always stay: keep a token when the tokens *before* it (in sorted order) sum to "
                 "less than p, i.e. compare cumulative - its own probability.")  # fmt: skip
    p, kept, candidates = wrong[0]
    fail(name, f"with p={p} you kept {kept.sum(-1).tolist()} tokens per row, expected "
         f"{candidates['correct'].sum(-1).tolist()}: the fewest most likely tokens whose "
         "probabilities sum to at least p.")  # fmt: skip


# ----------------------------------------------------------------------------- KV-cache step

_B, _NH, _T_PAST, _HS = 2, 3, 5, 4  # all different, so a wrong dimension shows


def _attend(q, k, v, scale):
    return torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1) @ v


def _cat_hint(exc: Exception) -> str | None:
    if "Sizes of tensors must match" in str(exc) or "same number of dimensions" in str(exc):
        return (
            "torch.cat failed: append along the *time* dimension. The cache is (B, nh, T, hs), "
            "so torch.cat([past_k, k], dim=2) (or dim=-2)."
        )
    return None


def _none_hint(exc: Exception) -> str | None:
    if "NoneType" in str(exc):
        return (
            "past is None for the first position (nothing cached yet): then there is nothing "
            "to append, and the cache is just (k, v)."
        )
    return _cat_hint(exc)


def _unpack(name: str, result, what: str):
    __tracebackhide__ = True
    try:
        y, (k_all, v_all) = result
    except (TypeError, ValueError):
        fail(name, f"{what} should return y, (k, v): the output and the extended cache, got "
             f"{type(result).__name__} of length {len(result) if hasattr(result, '__len__') else '?'}.")  # fmt: skip
    for label, t in (("y", y), ("k", k_all), ("v", v_all)):
        if not isinstance(t, torch.Tensor):
            fail(name, f"{what}: {label} should be a tensor, got {type(t).__name__}.")
    return y.detach().float(), k_all.detach().float(), v_all.detach().float()


def check_attend_with_cache(attend_with_cache) -> None:
    """One new position after 5 cached ones (B=2, nh=3, hs=4), then an empty cache."""
    __tracebackhide__ = True
    name = "attend_with_cache"
    require_callable(name, attend_with_cache, "the attend_with_cache function")
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(_B, _NH, 1, _HS, generator=g) * 1.5 for _ in range(3))
    past_k, past_v = (torch.randn(_B, _NH, _T_PAST, _HS, generator=g) * 1.5 for _ in range(2))
    inputs = [t.clone() for t in (q, k, v, past_k, past_v)]
    what = "attend_with_cache(q, k, v, (past_k, past_v))"
    result = call(name, attend_with_cache, q, k, v, (past_k, past_v), what=what, hint=_cat_hint)
    if not all(torch.equal(a, b) for a, b in zip(inputs, (q, k, v, past_k, past_v), strict=True)):
        fail(name, "your function changed its inputs: build new tensors (torch.cat) instead.")
    y, k_all, v_all = _unpack(name, result, what)

    want_k, want_v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
    want_shape = tuple(want_k.shape)
    if close(k_all, past_k) and close(v_all, past_v):
        fail(name, "you returned the old cache: return the cache *with* the new position's k "
                   "and v appended, so the next step can use them.")  # fmt: skip
    if close(k_all, k) and close(v_all, v):
        fail(name, "you returned only the new position's k and v: the cache must hold every "
                   "position so far, torch.cat([past_k, k], dim=2).")  # fmt: skip
    if close(k_all, torch.cat([k, past_k], dim=2)):
        fail(name, "the new position goes *after* the cached ones: torch.cat([past_k, k], "
                   "dim=2), so position t sits at index t.")  # fmt: skip
    if close(k_all, want_v) and close(v_all, want_k):
        fail(name, "the cached keys and values are swapped: return (k, v) in that order.")
    if not (close(k_all, want_k) and close(v_all, want_v)):
        fail(name, f"the extended cache should be (k, v), each of shape {want_shape} = "
             f"(B, nh, T_past + 1, hs): the cached keys/values with the new ones appended on "
             f"dim 2; got shapes {tuple(k_all.shape)} and {tuple(v_all.shape)}.")  # fmt: skip

    want_y = _attend(q, want_k, want_v, 1 / math.sqrt(_HS))
    if y.shape != want_y.shape:
        hint = ""
        if tuple(y.shape) == (_B, 1, _NH * _HS):
            hint = " Leave the heads apart: merging them and the output projection come after."
        fail(name, f"y should have shape {tuple(want_y.shape)} = (B, nh, 1, hs), got "
             f"{tuple(y.shape)}.{hint}")  # fmt: skip
    if not close(y, want_y):
        bugs = [
            (_attend(q, past_k, past_v, 1 / math.sqrt(_HS)), "the new position attended only "
             "to the cached ones: append its k and v to the cache *before* attending, so it "
             "can see itself too."),
            (want_v[:, :, :1], "the new position saw only the first key: a causal mask hides "
             "the cache (is_causal=True, or tril, aligns a single query with key 0). One new "
             "position may look at every cached one: use no mask."),
            (v, "the new position saw only itself: a mask hides the cache. One new position "
             "may look at every cached one: use no mask."),
        ]  # fmt: skip
        for scale, label in ((1.0, "no scaling"), (1 / _HS, "1/hs"),
                             (1 / math.sqrt(_NH * _HS), "1/sqrt(C)"), (math.sqrt(_HS), "sqrt(hs)")):  # fmt: skip
            bugs.append((_attend(q, want_k, want_v, scale), f"the scores are scaled wrong "
                         f"({label}): divide q @ k^T by sqrt(hs), hs = q.size(-1) = {_HS}, the "
                         "head size."))  # fmt: skip
        for wrong, hint in bugs:
            if close(y, wrong):
                fail(name, hint)
        fail(name, "y is not softmax(q @ k^T / sqrt(hs)) @ v over the cached and new positions.")

    # The first position: nothing cached yet.
    what = "attend_with_cache(q, k, v, None)"
    result = call(name, attend_with_cache, q, k, v, None, what=what, hint=_none_hint)
    y, k_all, v_all = _unpack(name, result, what)
    if not (close(k_all, k) and close(v_all, v) and close(y, v)):
        fail(name, "with past=None (nothing cached yet) the cache is just (k, v), and the one "
                   "position attends only to itself, so y = v.")  # fmt: skip
    passed(name, "appends k, v on the time dimension and attends to every cached position.")
