"""Checks for lesson 02: the bigram model's forward pass (logits + cross-entropy loss)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from shared.checks._calls import call, construct
from shared.checks._core import Exercise, close, fail, passed, require_callable

EXERCISES = [
    Exercise(
        name="bigram_forward",
        check="check_bigram_forward",
        target="BigramLanguageModel",
        description="BigramLanguageModel.forward: logits from the table, cross-entropy loss",
    ),
]

_NAME = "bigram_forward"
_V, _B, _T = 11, 3, 5  # T != V, so a forgotten reshape cannot line up by accident


def _wrong_losses(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the classic mistakes compute, from the same logits (B, T, V)."""
    B, T, V = logits.shape
    flat_logits, flat_targets = logits.reshape(B * T, V), targets.reshape(B * T)
    return {
        "softmax applied before cross_entropy: F.cross_entropy takes raw logits and applies "
        "log-softmax itself; pass the logits straight in": F.cross_entropy(
            F.softmax(flat_logits, dim=-1), flat_targets
        ),
        "logits and targets flattened in different orders (e.g. targets.T or a transpose): "
        "flatten both the same way, logits.view(B*T, C) and targets.view(B*T)": F.cross_entropy(
            flat_logits, targets.T.reshape(B * T)
        ),
        "logits flattened in a different order than the targets (a transpose before the "
        "view?): use logits.view(B*T, C) and targets.view(B*T)": F.cross_entropy(
            logits.transpose(0, 1).reshape(B * T, V), flat_targets
        ),
        "the loss is summed, not averaged: use the default reduction='mean'": F.cross_entropy(
            flat_logits, flat_targets, reduction="sum"
        ),
        "the loss only covers the last position: use every position, logits.view(B*T, C)": (
            F.cross_entropy(logits[:, -1, :], targets[:, -1])
        ),
    }


def _crash_hint(targets, what):
    def hint(exc: Exception) -> str | None:
        text = str(exc)
        if targets is None and "NoneType" in text:
            return (
                f"{what} raised {type(exc).__name__}: {exc}. When targets is None, return "
                "(logits, None) before computing the loss."
            )
        if isinstance(exc, RuntimeError) and any(w in text.lower() for w in ("target", "shape")):
            return (
                f"{what} raised: {text.splitlines()[0]}. F.cross_entropy wants logits of shape "
                "(B*T, C) and targets of shape (B*T,): flatten both with .view(B*T, C) / "
                ".view(B*T) before the call."
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
    torch.manual_seed(0)
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
    for mistake, wrong in _wrong_losses(expected_logits, targets).items():
        if close(loss.reshape(()), wrong):
            fail(_NAME, f"looks like {mistake}.")
    fail(
        _NAME,
        f"the loss is {loss.item():.4f}, expected {expected.item():.4f}: use "
        "F.cross_entropy(logits.view(B*T, C), targets.view(B*T)).",
    )


def _check_logits(logits, expected, what) -> None:
    __tracebackhide__ = True
    if not isinstance(logits, torch.Tensor):
        fail(_NAME, f"{what}: logits should be a tensor, got {type(logits).__name__}.")
    if logits.shape != expected.shape:
        B, T, V = expected.shape
        hint = ""
        if tuple(logits.shape) == (B * T, V):
            hint = (
                " Reshape only the copy you pass to F.cross_entropy; return the (B, T, C) logits."
            )
        fail(_NAME, f"{what}: logits have shape {tuple(logits.shape)}, expected {(B, T, V)}.{hint}")
    if close(logits, F.softmax(expected, dim=-1)):
        fail(_NAME, f"{what}: return the raw logits, not softmax probabilities.")
    if not close(logits, expected):
        fail(_NAME, f"{what}: logits should be the table rows self.token_embedding_table(idx).")
