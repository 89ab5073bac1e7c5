"""Checks for lesson 06: one training step, and estimating the loss without touching the model."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.nn import functional as F

from shared.checks._core import Exercise, attempt, fail, passed, require_callable

EXERCISES = [
    Exercise(
        name="train_step",
        check="check_train_step",
        target="train_step",
        description="train_step(model, optimizer, xb, yb) -> float: zero_grad, forward, backward, step",
    ),
    Exercise(
        name="estimate_loss",
        check="check_estimate_loss",
        target="estimate_loss",
        description="estimate_loss(...) -> {'train', 'val'}: eval mode, no_grad, mean over batches",
    ),
]

_V, _C = 16, 8


class _TinyLM(nn.Module):
    """A bigram-sized language model with dropout that records how it is called."""

    def __init__(self, seed: int = 0, dropout: float = 0.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = nn.Embedding(_V, _C)
        self.head = nn.Linear(_C, _V)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.drop = nn.Dropout(dropout)
        self.calls: list[dict] = []

    def forward(self, idx, targets=None):
        logits = self.head(self.drop(self.emb(idx)))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, _V), targets.reshape(-1))
        self.calls.append(
            {
                "training": self.training,
                "grad": torch.is_grad_enabled(),
                "idx": idx.detach().clone(),
                "targets": None if targets is None else targets.detach().clone(),
                "loss": None if loss is None else loss.item(),
            }
        )
        return logits, loss


def _params(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b, strict=True))


def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(_V, (3, 7), generator=g)
    return seq[:, :-1], seq[:, 1:]  # x, and y = x shifted by one


def _reference_steps(model, batches, stale_grads, zero_grad=True):
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for p, g in zip(model.parameters(), stale_grads, strict=True):
        p.grad = g.clone()
    states, losses = [], []
    for xb, yb in batches:
        if zero_grad:
            optimizer.zero_grad()
        _, loss = model(xb, yb)
        loss.backward()
        optimizer.step()
        states.append(_params(model))
        losses.append(loss.item())
    return states, losses


def check_train_step(train_step) -> None:
    """Two SGD steps on a tiny model, with a stale gradient left over from 'a previous step'."""
    __tracebackhide__ = True
    name = "train_step"
    require_callable(name, train_step, "the train_step function")
    model = _TinyLM(seed=1)
    batches = [_batch(1), _batch(2)]
    stale = [
        torch.randn(p.shape, generator=torch.Generator().manual_seed(9)) for p in model.parameters()
    ]
    want_states, want_losses = _reference_steps(model, batches, stale)
    accumulated, _ = _reference_steps(model, batches, stale, zero_grad=False)

    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    counts = {"step": 0, "backward": 0}
    real_step = optimizer.step

    def counting_step(*args, **kwargs):
        counts["step"] += 1
        return real_step(*args, **kwargs)

    optimizer.step = counting_step
    model.emb.weight.register_hook(
        lambda grad: counts.__setitem__("backward", counts["backward"] + 1)
    )
    for p, g in zip(model.parameters(), stale, strict=True):
        p.grad = g.clone()
    before = _params(model)

    for i, (xb, yb) in enumerate(batches):
        counts.update(step=0, backward=0)
        model.calls.clear()
        loss = attempt(
            name, train_step, model, optimizer, xb, yb, what="train_step(model, optimizer, xb, yb)"
        )
        now = _params(model)
        if not model.calls:
            fail(name, "the model was never called: compute `logits, loss = model(xb, yb)`.")
        if model.calls[-1]["targets"] is not None and torch.equal(model.calls[-1]["targets"], xb):
            fail(name, "you passed xb as the targets: the targets are yb (the next characters).")
        if counts["backward"] == 0:
            fail(name, "loss.backward() was never called, so there are no gradients to step with.")
        if counts["step"] == 0:
            fail(name, "optimizer.step() was never called, so the weights never change.")
        if counts["step"] > 1:
            fail(
                name,
                f"optimizer.step() ran {counts['step']} times in one train_step; once is right.",
            )
        if _same(now, before):
            fail(
                name,
                "the weights did not change: you zeroed the gradients between loss.backward() and "
                "optimizer.step(). Zero them first: zero_grad -> forward -> backward -> step.",
            )
        if not _same(now, want_states[i]):
            if _same(now, accumulated[i]):
                fail(
                    name,
                    "you forgot optimizer.zero_grad(): PyTorch adds new gradients to the old ones, "
                    "so every step also replays the previous steps' gradients.",
                )
            fail(
                name,
                "the weights after the step differ from one plain optimizer step on this batch.",
            )
        if isinstance(loss, torch.Tensor):
            fail(
                name,
                "return loss.item() (a Python float), not the tensor: a tensor keeps the whole "
                "computation graph alive and the history would grow in memory.",
            )
        if not isinstance(loss, (int, float)):
            fail(
                name, f"return the batch loss as a float (loss.item()), got {type(loss).__name__}."
            )
        if abs(float(loss) - want_losses[i]) > 1e-4:
            fail(
                name,
                f"returned {float(loss):.4f} but this batch's loss before the step is "
                f"{want_losses[i]:.4f}: return the loss you called backward() on.",
            )
        before = now
    passed(name, "zero_grad -> forward -> backward -> step, and the loss comes back as a float.")


# ----------------------------------------------------------------------------- estimate_loss
_TRAIN_TOKENS = range(0, 8)  # the check's train split uses ids 0-7, val uses 8-15:
_VAL_TOKENS = range(8, 16)  # every batch tells which split it came from


def _split_of(idx: torch.Tensor) -> str:
    if int(idx.max()) < 8:
        return "train"
    if int(idx.min()) >= 8:
        return "val"
    return "mixed"


def check_estimate_loss(estimate_loss) -> None:
    """Call ``estimate_loss`` on a dropout model; inspect every forward call it makes."""
    __tracebackhide__ = True
    name = "estimate_loss"
    require_callable(name, estimate_loss, "the estimate_loss function")
    g = torch.Generator().manual_seed(0)
    train_data = torch.randint(0, 8, (300,), generator=g)
    val_data = torch.randint(8, 16, (100,), generator=g)
    block_size, batch_size, eval_iters = 5, 4, 3
    model = _TinyLM(seed=2, dropout=0.5)
    model.train()
    torch.manual_seed(0)
    out = attempt(
        name, estimate_loss, model, train_data, val_data, block_size, batch_size, eval_iters,
        what="estimate_loss(model, train_data, val_data, block_size=5, batch_size=4, eval_iters=3)",
    )  # fmt: skip
    calls = model.calls
    if not calls:
        fail(name, "the model was never called: compute `_, loss = model(x, y)` for each batch.")
    if any(c["grad"] for c in calls):
        fail(
            name,
            "gradients were being tracked while evaluating: wrap the loop in `with torch.no_grad():` "
            "(or decorate the function with @torch.no_grad()) -- it saves memory and time.",
        )
    if any(c["training"] for c in calls):
        fail(
            name,
            "the model was in training mode while evaluating: call model.eval() first, so dropout "
            "is off and the loss measures the real model.",
        )
    if not model.training:
        fail(name, "the model is left in eval mode: call model.train() at the end to restore it.")
    for c in calls:
        if c["targets"] is None:
            fail(name, "the model was called without targets, so it returned no loss: model(x, y).")
        if torch.equal(c["targets"], c["idx"]):
            fail(
                name,
                "the targets are the inputs themselves (model(x, x)): targets must be the *next* "
                "characters -- use the y that get_batch returns (x shifted by one).",
            )
        if not torch.equal(c["targets"][:, :-1], c["idx"][:, 1:]):
            fail(name, "the targets are not the inputs shifted by one: use get_batch's (x, y).")
        if tuple(c["idx"].shape) != (batch_size, block_size):
            fail(
                name,
                f"batches should be (batch_size, block_size) = {(batch_size, block_size)}, "
                f"got {tuple(c['idx'].shape)}: pass block_size and batch_size to get_batch.",
            )
    if not isinstance(out, dict) or set(out) != {"train", "val"}:
        got = sorted(out) if isinstance(out, dict) else type(out).__name__
        fail(name, f"return a dict with keys 'train' and 'val', got {got}.")
    losses = {"train": [], "val": [], "mixed": []}
    for c in calls:
        losses[_split_of(c["idx"])].append(c["loss"])
    if losses["mixed"]:
        fail(name, "a batch mixed both splits: draw each split's batches from its own data.")
    for split in ("train", "val"):
        if len(losses[split]) != eval_iters:
            fail(
                name,
                f"expected eval_iters={eval_iters} batches from the {split} split, got "
                f"{len(losses[split])}: loop eval_iters times for each split.",
            )
    for split, other in (("train", "val"), ("val", "train")):
        value = out[split]
        if isinstance(value, torch.Tensor):
            if value.requires_grad or value.numel() != 1:
                fail(name, f"out['{split}'] should be one number (use .item()).")
            value = value.item()
        if not isinstance(value, (int, float)):
            fail(name, f"out['{split}'] should be a float, got {type(value).__name__}.")
        mean = sum(losses[split]) / eval_iters
        if abs(value - mean) < 1e-4:
            continue
        if abs(value - sum(losses[other]) / eval_iters) < 1e-4:
            fail(name, f"out['{split}'] holds the {other} loss: the splits are swapped.")
        if abs(value - losses[split][-1]) < 1e-4:
            fail(
                name, f"out['{split}'] is the last batch's loss: return the mean over all batches."
            )
        fail(
            name,
            f"out['{split}'] = {value:.4f}, but the mean of its batches' losses is {mean:.4f}.",
        )
    passed(name, "eval mode, no gradients, mean over eval_iters batches per split, mode restored.")
