"""Checks for lesson 02: the bigram model's forward pass (logits + cross-entropy loss)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from shared.checks._calls import call, construct
from shared.checks._core import (
    Exercise,
    close,
    fail,
    matching_mistake,
    passed,
    require_callable,
    seeded,
)

EXERCISES = [
    Exercise(
        name="bigram_forward",
        check="check_bigram_forward",
        target="BigramLanguageModel",
        description="BigramLanguageModel.forward: logits from the table, cross-entropy loss",
    ),
]

_NAME = "bigram_forward"
_V, _B, _T = 11, 3, 5  # T != V != B, so a forgotten reshape cannot line up by accident


def _wrong_losses(logits, idx, targets) -> dict[str, torch.Tensor]:
    """What the classic mistakes compute, from the same logits (B, T, V)."""
    B, T, V = logits.shape
    flat_logits, flat_targets = logits.reshape(B * T, V), targets.reshape(B * T)
    return {
        "softmax applied before cross_entropy: F.cross_entropy takes raw logits and applies "
        "log-softmax itself, so the probabilities get squashed a second time": F.cross_entropy(
            F.softmax(flat_logits, dim=-1), flat_targets
        ),
        "logits and targets flattened in different orders (a transpose of the targets?): "
        "row i of the flat logits must meet the target of the same (b, t)": F.cross_entropy(
            flat_logits, targets.T.reshape(B * T)
        ),
        "logits flattened in a different order than the targets (a transpose before the "
        "flatten?): row i of the flat logits must meet the target of the same (b, t)": F.cross_entropy(
            logits.transpose(0, 1).reshape(B * T, V), flat_targets
        ),
        "the loss is summed, not averaged, so it grows with the batch size": F.cross_entropy(
            flat_logits, flat_targets, reduction="sum"
        ),
        "the loss only covers the last position: every position predicts its next token": (
            F.cross_entropy(logits[:, -1, :], targets[:, -1])
        ),
        "the loss compares the logits with idx (the inputs), not with targets": F.cross_entropy(
            flat_logits, idx.reshape(B * T)
        ),
        "the loss only covers the first sequence of the batch": F.cross_entropy(
            logits[0], targets[0]
        ),
    }


def _crash_hint(targets, what):
    def hint(exc: Exception) -> str | None:
        text = str(exc)
        if targets is None and "NoneType" in text:
            return (
                f"{what} raised {type(exc).__name__}: {exc}. Without targets there is nothing "
                "to compute a loss against: return (logits, None) in that case."
            )
        if isinstance(exc, RuntimeError) and any(w in text.lower() for w in ("target", "shape")):
            return (
                f"{what} raised: {text.splitlines()[0]}. F.cross_entropy wants the scores as "
                "(N, C) and the targets as (N,): the B and T dims must be flattened into one "
                "for both, with C taken from the logits' own shape."
            )
        return None

    return hint


def _call(model, idx, targets, what):
    __tracebackhide__ = True
    return call(_NAME, model, idx, targets, what=what, hint=_crash_hint(targets, what))


def _unpack(result, what):
    __tracebackhide__ = True
    if not (isinstance(result, tuple) and len(result) == 2):
        fail(_NAME, f"{what} should return a pair (logits, loss); got {type(result).__name__}.")
    return result


def check_bigram_forward(BigramLanguageModel) -> None:
    """Check ``BigramLanguageModel.forward`` (the ``__init__`` is the one given in the lesson)."""
    __tracebackhide__ = True
    require_callable(_NAME, BigramLanguageModel, "the BigramLanguageModel class")
    with seeded(0):
        model = construct(_NAME, BigramLanguageModel, _V)
    table = getattr(model, "token_embedding_table", None)
    if not isinstance(table, torch.nn.Embedding):
        fail(_NAME, "keep the given __init__: self.token_embedding_table must be an nn.Embedding.")
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, _V, (_B, _T), generator=g)
    targets = torch.randint(0, _V, (_B, _T), generator=g)
    expected_logits = table.weight[idx].detach()  # (B, T, V)

    what = "model(idx) without targets"
    logits, loss = _unpack(_call(model, idx, None, what), what)
    if loss is not None:
        fail(_NAME, f"{what} should return loss=None (there is nothing to compare against).")
    _check_logits(logits, expected_logits, what)

    what = "model(idx, targets)"
    logits, loss = _unpack(_call(model, idx, targets, what), what)
    _check_logits(logits, expected_logits, what)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        fail(_NAME, f"the loss should be a single-number tensor, got {loss!r:.60}.")
    B, T, V = expected_logits.shape
    expected = F.cross_entropy(expected_logits.view(B * T, V), targets.view(B * T))
    if close(loss.reshape(()), expected):
        if not loss.requires_grad:
            fail(_NAME, "the loss has no gradient: compute it from the logits with torch ops.")
        passed(_NAME, f"logits {tuple(logits.shape)}, loss matches F.cross_entropy")
        return
    mistake = matching_mistake(loss.reshape(()), _wrong_losses(expected_logits, idx, targets))
    if mistake:
        fail(_NAME, f"looks like {mistake}.")
    fail(
        _NAME,
        f"the loss is {loss.item():.4f}, expected {expected.item():.4f}, the mean cross-entropy "
        "of every position's logits against its target.",
    )


def _check_logits(logits, expected, what) -> None:
    __tracebackhide__ = True
    if not isinstance(logits, torch.Tensor):
        fail(_NAME, f"{what}: logits should be a tensor, got {type(logits).__name__}.")
    if logits.shape != expected.shape:
        B, T, V = expected.shape
        hint = ""
        if tuple(logits.shape) == (B * T, V):
            hint = " The flattened view is only for F.cross_entropy: return the (B, T, C) logits."
        fail(_NAME, f"{what}: logits have shape {tuple(logits.shape)}, expected {(B, T, V)}.{hint}")
    if close(logits, F.softmax(expected, dim=-1)):
        fail(_NAME, f"{what}: these are softmax probabilities; the model returns raw logits.")
    if not close(logits, expected):
        fail(_NAME, f"{what}: logits[b, t] should be the table's row for token idx[b, t].")
