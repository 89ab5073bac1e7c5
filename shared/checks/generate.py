"""Checks for lesson 07: sampling with a temperature, and top-k filtering."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from shared.checks._core import Exercise, attempt, fail, passed, require_callable

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


def check_sample_with_temperature(sample_with_temperature) -> None:
    """Draw many samples and compare the frequencies with what each classic bug would give."""
    __tracebackhide__ = True
    name = "sample_with_temperature"
    require_callable(name, sample_with_temperature, "the sample_with_temperature function")
    logits = _LOGITS.repeat_interleave(_N, dim=0)  # (2N, V): each row's logits N times
    for temperature in (0.5, 2.0, 1.0):
        what = f"sample_with_temperature(logits, temperature={temperature}, generator)"
        ids = attempt(
            name, sample_with_temperature, logits.clone(), temperature,
            torch.Generator().manual_seed(0), what=what,
        )  # fmt: skip
        if not isinstance(ids, torch.Tensor) or tuple(ids.shape) != (len(logits), 1):
            got = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
            fail(name, f"expected ids of shape (B, 1) = {(len(logits), 1)}, got {got}.")
        if ids.dtype not in (torch.long, torch.int64, torch.int32):
            fail(name, f"expected integer token ids, got {ids.dtype}: use torch.multinomial.")
        if int(ids.min()) < 0 or int(ids.max()) >= logits.size(1):
            fail(name, "the ids are not valid token ids (0 .. vocab_size-1).")
        freq = _frequencies(ids, 2)
        if all((freq[r] == freq[r].max()).sum() == 1 and freq[r].max() == 1 for r in range(2)):
            fail(
                name,
                "every draw returned the most likely token: that is argmax (greedy), not "
                "sampling. Draw with torch.multinomial(probs, num_samples=1).",
            )
        candidates = {
            "correct": F.softmax(_LOGITS / temperature, dim=-1),
            "softmax before temperature": F.softmax(F.softmax(_LOGITS, -1) / temperature, -1),
            "temperature ignored": F.softmax(_LOGITS, dim=-1),
            "multiplied by the temperature": F.softmax(_LOGITS * temperature, dim=-1),
            "no softmax (logits used as probabilities)": _LOGITS.clamp(min=0)
            / _LOGITS.clamp(min=0).sum(-1, keepdim=True),
        }
        distance = {k: (freq - p).abs().sum(-1).max().item() for k, p in candidates.items()}
        if distance["correct"] < 0.06:
            continue
        bug = min(distance, key=distance.get)
        hints = {
            "softmax before temperature": "you applied softmax before dividing by the "
            "temperature: divide the *logits* by T, then softmax.",
            "temperature ignored": "the temperature has no effect on the samples: divide the "
            "*logits* by T before the softmax (dividing probabilities after the softmax changes "
            "nothing: multinomial renormalizes them).",
            "multiplied by the temperature": "you multiplied the logits by T: divide them by T "
            "(T < 1 should sharpen, T > 1 flatten).",
            "no softmax (logits used as probabilities)": "turn the scaled logits into "
            "probabilities with F.softmax(..., dim=-1) before sampling.",
        }
        if bug in hints:
            fail(name, f"at temperature {temperature}: {hints[bug]}")
        fail(
            name,
            f"at temperature {temperature} the samples do not follow softmax(logits / T) "
            f"(frequencies {freq[0].tolist()} vs {candidates['correct'][0].tolist()}).",
        )
    again = [
        attempt(
            name,
            sample_with_temperature,
            logits[:50].clone(),
            1.0,
            torch.Generator().manual_seed(3),
        )  # fmt: skip
        for _ in range(2)
    ]
    if not torch.equal(again[0], again[1]):
        fail(
            name,
            "the same generator seed gave different samples: pass generator=generator to "
            "torch.multinomial so a seed reproduces the text.",
        )
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
        original = logits.clone()
        if k > V:  # a missing clamp usually crashes inside torch.topk
            try:
                out = top_k_filter(logits, k)
            except Exception as exc:
                fail(name, f"with k={k} > vocab size {V} it raised {type(exc).__name__}: clamp "
                           "k first, k = min(k, logits.size(-1)).")  # fmt: skip
        else:
            out = attempt(name, top_k_filter, logits, k, what=f"top_k_filter(logits, k={k})")
        if not torch.equal(logits, original):
            fail(name, "your function changed the logits passed in: return a new tensor "
                       "(masked_fill, not the in-place masked_fill_).")  # fmt: skip
        if not isinstance(out, torch.Tensor) or out.shape != logits.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            fail(name, f"return logits of the same shape {tuple(logits.shape)}, got {got}.")
        want_k = min(k, V)
        kept = torch.isfinite(out)
        if not torch.isinf(out).any() and want_k < V:
            if (out == 0).any():
                fail(name, "set the removed logits to float('-inf'), not 0: after softmax a "
                           "logit of 0 still has probability (e^0 = 1).")  # fmt: skip
            fail(name, f"with k={k} some logits must become float('-inf'); none did.")
        counts = kept.sum(-1).tolist()
        for row, count in enumerate(counts):
            top = torch.topk(logits[row], want_k).indices
            if count == want_k and kept[row, top].all():
                continue
            if count == 0:
                fail(name, f"row {row} lost every logit: take the top k *per row* (dim=-1), not "
                           "over the whole batch.")  # fmt: skip
            if (
                count == want_k
                and kept[row, torch.topk(logits[row], want_k, largest=False).indices].all()
            ):
                fail(name, f"with k={k} you kept the k *smallest* logits: keep the largest "
                           "(torch.topk returns the largest by default).")  # fmt: skip
            if count == want_k - 1:
                fail(name, f"with k={k} you kept {count} logits, one too few (k-1): keep values "
                           ">= the k-th largest (compare with <, not <=).")  # fmt: skip
            if count == want_k + 1:
                fail(name, f"with k={k} you kept {count} logits, one too many (k+1): the k-th "
                           "largest is topk(...).values[..., -1], i.e. index k-1.")  # fmt: skip
            fail(name, f"with k={k} row {row} kept {count} logits; expected {want_k}.")
        if not torch.equal(out[kept], logits[kept]):
            fail(name, "the kept logits changed: leave them as they are (no softmax, no scaling).")
    passed(name, "keeps the k largest logits per row, -inf elsewhere, k clamped to the vocab size.")
