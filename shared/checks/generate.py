"""Checks for lesson 07: sampling with a temperature, and top-k filtering."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from shared.checks._calls import call
from shared.checks._core import (
    Exercise,
    attempt,
    fail,
    passed,
    require_callable,
    seeded,
    shape_of,
)

EXERCISES = [
    Exercise(
        name="sample_with_temperature",
        check="check_sample_with_temperature",
        target="sample_with_temperature",
        description="sample_with_temperature(logits, temperature, generator) -> (B, 1) ids",
    ),
    Exercise(
        name="top_k_filter",
        check="check_top_k_filter",
        target="top_k_filter",
        description="top_k_filter(logits, k) -> logits with all but the k largest per row at -inf",
    ),
]

_LOGITS = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0], [-1.0, 0.0, 3.0, 1.0, 0.5]])  # (2, V=5)
_N = 10_000  # samples per row: frequencies within ~0.01 of the true probabilities


def _frequencies(ids: torch.Tensor, rows: int) -> torch.Tensor:
    """(rows*N, 1) ids -> (rows, V) empirical probabilities."""
    ids = ids.reshape(rows, _N)
    return torch.stack([torch.bincount(r, minlength=_LOGITS.size(1)).float() / _N for r in ids])


def _draw(name, sample_with_temperature, logits, temperature, seed):
    __tracebackhide__ = True
    what = f"sample_with_temperature(logits, temperature={temperature}, generator)"
    return attempt(name, sample_with_temperature, logits, temperature,
                   torch.Generator().manual_seed(seed), what=what)  # fmt: skip


_HINTS = {  # mistake -> (its probabilities at temperature T, the hint)
    "softmax before temperature": (
        lambda T: F.softmax(F.softmax(_LOGITS, -1) / T, -1),
        "the temperature divides the probabilities after a softmax, not the logits",
    ),
    "temperature ignored": (
        lambda T: F.softmax(_LOGITS, dim=-1),
        "the temperature has no effect on the samples: it must scale the *logits* before the "
        "softmax (dividing probabilities after the softmax changes nothing: multinomial "
        "renormalizes them)",
    ),
    "multiplied": (
        lambda T: F.softmax(_LOGITS * T, dim=-1),
        "the logits are multiplied by T instead of divided (T < 1 should sharpen, T > 1 flatten)",
    ),
}
_TOLERANCE = 0.06  # total variation of 10 000 draws from their distribution stays well below


def _name_the_global_rng(name, sample_with_temperature, logits) -> None:
    """The draws ignore the generator: name the global RNG they follow, when one explains them."""
    __tracebackhide__ = True
    draws = []
    for torch_seed in (5, 5, 6):  # numpy and random seeded 5 each time; torch's seed varies
        with seeded(5):
            torch.manual_seed(torch_seed)
            draws.append(_draw(name, sample_with_temperature, logits, 1.0, seed=3))
    if not torch.equal(draws[0], draws[1]):
        return
    if torch.equal(draws[0], draws[2]):
        fail(name, "the draws follow Python's `random` or numpy's random state, not the generator "
             "passed in: the spec names torch.multinomial with generator=generator.")  # fmt: skip
    fail(name, "the draws follow torch's global random state, not the generator passed in: "
         "pass generator=generator to torch.multinomial.")  # fmt: skip


def check_sample_with_temperature(sample_with_temperature) -> None:
    """Draw many samples and compare the frequencies with softmax(logits / T); name a mistake
    only when the frequencies match that mistake's distribution."""
    __tracebackhide__ = True
    name = "sample_with_temperature"
    require_callable(name, sample_with_temperature, "the sample_with_temperature function")
    logits = _LOGITS.repeat_interleave(_N, dim=0)  # (2N, V): each row's logits N times
    for temperature in (0.5, 2.0, 1.0):
        ids = _draw(name, sample_with_temperature, logits, temperature, seed=0)
        if not isinstance(ids, torch.Tensor) or tuple(ids.shape) != (len(logits), 1):
            fail(name, f"expected ids of shape (B, 1) = {(len(logits), 1)}, one id per row, got "
                 f"{shape_of(ids)}.")  # fmt: skip
        if ids.dtype not in (torch.long, torch.int64, torch.int32):
            fail(name, f"expected integer token ids, got {ids.dtype}: the result is drawn ids, "
                 "not probabilities.")  # fmt: skip
        if int(ids.min()) < 0 or int(ids.max()) >= logits.size(1):
            fail(name, "the ids are not valid token ids (0 .. vocab_size-1).")
        freq = _frequencies(ids, 2)
        if all(freq[r].max() == 1 and freq[r].argmax() == _LOGITS[r].argmax() for r in range(2)):
            fail(name, "every draw returned the most likely token: that is argmax (greedy), "
                 "not sampling from the distribution.")  # fmt: skip
        correct = F.softmax(_LOGITS / temperature, dim=-1)
        if (freq - correct).abs().sum(-1).max() < _TOLERANCE:
            continue
        for probs, hint in _HINTS.values():
            if (freq - probs(temperature)).abs().sum(-1).max() < _TOLERANCE:
                fail(name, f"at temperature {temperature}: {hint}.")
        fail(name, f"at temperature {temperature} the samples do not follow softmax(logits / T): "
             f"row 0's frequencies are {[round(f, 3) for f in freq[0].tolist()]}, expected "
             f"{[round(p, 3) for p in correct[0].tolist()]}.")  # fmt: skip
    few = logits[::200]  # (100, V): 50 rows of each
    same = [_draw(name, sample_with_temperature, few, 1.0, seed=3) for _ in range(2)]
    if not torch.equal(same[0], same[1]):
        _name_the_global_rng(name, sample_with_temperature, few)
        fail(name, "the same generator seed gave different samples: the draw must use the "
             "generator passed in, so a seed reproduces the text.")  # fmt: skip
    other = _draw(name, sample_with_temperature, few, 1.0, seed=4)
    if torch.equal(same[0], other):
        fail(name, "different generator seeds gave the same samples: the generator passed in "
             "is ignored (a fixed seed or generator of its own?).")  # fmt: skip
    passed(name, "probabilities follow softmax(logits / T), drawn with the generator.")


def check_top_k_filter(top_k_filter) -> None:
    """Rows of distinct logits, several k (including k > vocab size)."""
    __tracebackhide__ = True
    name = "top_k_filter"
    require_callable(name, top_k_filter, "the top_k_filter function")
    g = torch.Generator().manual_seed(0)
    base = torch.randperm(8, generator=g).float()  # distinct values 0..7
    # Row 1 lives on a higher scale, so a top-k over the whole batch instead of per row shows.
    logits = torch.stack([base, torch.randperm(8, generator=g).float() + 10.0])  # (2, V=8)
    V = logits.size(1)
    for k in (3, 1, V, V + 5):
        what = f"top_k_filter(logits, k={k})"
        hint = None
        if k > V:  # a missing clamp usually crashes inside torch.topk
            hint = lambda exc, k=k: (  # noqa: E731
                f"with k={k} > vocab size {V} it raised {type(exc).__name__}: a k larger than "
                "the vocabulary must keep every logit, so it has to be clamped to the vocab size."
                if "out of range" in str(exc)
                else None
            )
        out = call(name, top_k_filter, logits, k, what=what, hint=hint)
        if not isinstance(out, torch.Tensor) or out.shape != logits.shape:
            fail(
                name,
                f"{what} should return logits of the input's shape "
                f"{tuple(logits.shape)}, with the removed ones at -inf; got {shape_of(out)}.",
            )
        want_k = min(k, V)
        kept = torch.isfinite(out)
        if not torch.isinf(out).any() and want_k < V:
            top = torch.zeros_like(logits, dtype=torch.bool)
            top.scatter_(-1, torch.topk(logits, want_k).indices, True)
            if torch.equal(out, logits.masked_fill(~top, 0.0)):
                fail(name, "the removed logits are set to 0, not -inf: after softmax a logit of 0 "
                           "still has probability (e^0 = 1).")  # fmt: skip
            if torch.allclose(out.sum(-1), torch.ones(len(out)), atol=1e-4) and (out >= 0).all():
                fail(name, "the rows sum to 1: these are probabilities, but top_k_filter returns "
                           "logits (the softmax comes later).")  # fmt: skip
            fail(name, f"with k={k} some logits must become -inf (probability 0); none did.")
        counts = kept.sum(-1).tolist()
        for row, count in enumerate(counts):
            top = torch.topk(logits[row], want_k).indices
            if count == want_k and kept[row, top].all():
                continue
            if count == 0:
                fail(name, f"row {row} lost every logit: the top k must be taken *per row*, not "
                           "over the whole batch.")  # fmt: skip
            if (
                count == want_k
                and kept[row, torch.topk(logits[row], want_k, largest=False).indices].all()
            ):
                fail(name, f"with k={k} the k *smallest* logits were kept; top-k keeps the "
                           "largest.")  # fmt: skip
            if count == want_k - 1:
                fail(name, f"with k={k} {count} logits were kept, one too few (k-1): the k-th "
                           "largest itself must stay.")  # fmt: skip
            if count == want_k + 1:
                fail(name, f"with k={k} {count} logits were kept, one too many (k+1): the "
                           "threshold is the k-th largest value, not the (k+1)-th.")  # fmt: skip
            fail(name, f"with k={k} row {row} kept {count} logits; expected {want_k}.")
        if not torch.equal(out[kept], logits[kept]):
            fail(
                name,
                "the kept logits changed: top-k only removes logits; the kept ones stay as "
                "they are (no softmax, no scaling).",
            )
    passed(name, "keeps the k largest logits per row, -inf elsewhere, k clamped to the vocab size.")
