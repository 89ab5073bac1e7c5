"""Checks for lesson 06: one training step, and estimating the loss without touching the model."""

from __future__ import annotations

import copy

import torch

from shared.checks._core import Exercise, attempt, fail, passed, require_callable, seeded
from shared.checks._tiny_lm import TinyLM, V

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


def _params(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b, strict=True))


def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(V, (3, 7), generator=g)
    return seq[:, :-1], seq[:, 1:]  # x, and y = x shifted by one


def _gradient(model, xb, yb) -> list[torch.Tensor]:
    """This batch's gradient at the model's current weights (the model is not changed)."""
    model = copy.deepcopy(model)
    model.zero_grad()
    model(xb, yb)[1].backward()
    return [p.grad.detach().clone() for p in model.parameters()]


def _step_scale(before, after, grad, lr) -> float | None:
    """c such that after = before - c * grad (0 < c <= lr), else None.

    c == lr is one plain SGD step; c < lr is the same step on a gradient clipped by its norm
    (clip_grad_norm_ before the step is a correct variant, and keeps the direction)."""
    delta = torch.cat([(b - a).flatten() for b, a in zip(before, after, strict=True)])
    g = torch.cat([x.flatten() for x in grad])
    c = float(delta @ g / (g @ g))
    if not (0 < c <= lr * (1 + 1e-4)):
        return None
    return c if torch.allclose(delta, c * g, atol=1e-5, rtol=1e-3) else None


def _no_targets_hint(model):
    def hint(exc: Exception) -> str | None:
        if model.calls and model.calls[-1]["targets"] is None:
            return (f"train_step raised {type(exc).__name__}: {exc}. The model was called without "
                    "targets, so it returned no loss to call backward() on.")  # fmt: skip
        return None

    return hint


def _check_one_step(name, train_step, counts, model, optimizer, before, stale, xb, yb, lr):
    __tracebackhide__ = True
    grad = _gradient(model, xb, yb)
    counts.update(step=0, backward=0)
    model.calls.clear()
    what = "train_step(model, optimizer, xb, yb)"
    loss = attempt(name, train_step, model, optimizer, xb, yb, what=what,
                   hint=_no_targets_hint(model))  # fmt: skip
    now = _params(model)
    if not model.calls:
        fail(name, "the model passed in was never called, so there is no loss to learn from.")
    if not any(torch.equal(c["idx"], xb) for c in model.calls):
        fail(name, "the model was never called on the xb passed in (a notebook batch instead?): "
             "each step must learn from the batch it is given.")  # fmt: skip
    if not model.calls[-1]["training"]:
        fail(name, "the forward pass ran in eval mode: dropout was off while training. The "
             "model arrives in training mode; a training step keeps it there (no model.eval()).")  # fmt: skip
    if not model.training:
        fail(name, "train_step leaves the model in eval mode: every later step would train "
             "without dropout. Leave the model in training mode.")  # fmt: skip
    targets = model.calls[-1]["targets"]
    if targets is not None and torch.equal(targets, xb):
        fail(name, "xb is used as the targets: the targets are yb, the next characters.")
    if targets is not None and not torch.equal(targets, yb):
        fail(name, "the targets are not the yb passed in.")
    if counts["backward"] == 0:
        fail(name, "loss.backward() was never called, so there are no gradients to step with.")
    if counts["step"] == 0:
        if not _same(now, before):
            fail(name, "the weights changed, but not through the optimizer passed in (a notebook "
                 "optimizer instead?): step the one the caller gives.")  # fmt: skip
        fail(name, "the optimizer passed in never took a step, so the weights never change.")
    if counts["step"] > 1:
        fail(name, f"optimizer.step() ran {counts['step']} times in one train_step; one batch is "
             "one step.")  # fmt: skip
    if _same(now, before):
        fail(name, "the weights did not change although the optimizer stepped: the gradients "
             "were zeroed between loss.backward() and optimizer.step().")  # fmt: skip
    if _step_scale(before, now, grad, lr) is None:
        stale_plus = [g + s for g, s in zip(grad, stale, strict=True)]
        if _step_scale(before, now, stale_plus, lr) is not None:
            if all(p.grad is None or not p.grad.any() for p in model.parameters()):
                fail(name, "the gradients are cleared after the step instead of before it: "
                     "gradients already there when train_step starts (from any earlier "
                     "backward) were added into this step.")  # fmt: skip
            fail(name, "the old gradients were not cleared (optimizer.zero_grad()): PyTorch adds "
                 "new gradients to the old ones, so the step also replays earlier steps.")  # fmt: skip
        fail(name, "the weights moved, but not along this batch's gradient: one optimizer step "
             "on the loss of (xb, yb) is expected.")  # fmt: skip
    return loss, now


def check_train_step(train_step) -> None:
    """Two SGD steps on a tiny model, with a stale gradient left over from 'a previous step'."""
    __tracebackhide__ = True
    name = "train_step"
    require_callable(name, train_step, "the train_step function")
    model = TinyLM(seed=1)
    lr = 0.5
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    counts = {"step": 0, "backward": 0}
    real_step = optimizer.step

    def counting_step(*args, **kwargs):
        counts["step"] += 1
        return real_step(*args, **kwargs)

    optimizer.step = counting_step
    model.emb.weight.register_hook(
        lambda grad: counts.__setitem__("backward", counts["backward"] + 1)
    )
    stale = [
        torch.randn(p.shape, generator=torch.Generator().manual_seed(9)) for p in model.parameters()
    ]
    for p, g in zip(model.parameters(), stale, strict=True):
        p.grad = g.clone()
    before = _params(model)
    for xb, yb in (_batch(1), _batch(2)):
        with torch.no_grad():
            want = model(xb, yb)[1].item()
        model.calls.clear()
        loss, now = _check_one_step(
            name, train_step, counts, model, optimizer, before, stale, xb, yb, lr
        )
        stale = [torch.zeros_like(g) for g in stale]  # later steps: nothing stale expected
        if isinstance(loss, torch.Tensor):
            fail(name, "the loss comes back as a tensor: a tensor keeps the whole computation "
                 "graph alive, so a history of losses would grow in memory; return a Python "
                 "float.")  # fmt: skip
        if not isinstance(loss, (int, float)):
            fail(name, f"the batch loss should come back as a float, got {type(loss).__name__}.")
        if abs(float(loss) - want) > 1e-4:
            fail(name, f"returned {float(loss):.4f} but this batch's loss before the step is "
                 f"{want:.4f}: return the loss the gradients came from.")  # fmt: skip
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


def _vocabulary_hint(exc: Exception) -> str | None:
    if isinstance(exc, IndexError) and "index out of range" in str(exc):
        return (f"estimate_loss raised IndexError: {exc}. The model got token ids outside its "
                "vocabulary: the batches must come from the train_data and val_data passed in, "
                "not from notebook variables.")  # fmt: skip
    return None


def check_estimate_loss(estimate_loss) -> None:
    """Call ``estimate_loss`` on a dropout model; inspect every forward call it makes."""
    __tracebackhide__ = True
    name = "estimate_loss"
    require_callable(name, estimate_loss, "the estimate_loss function")
    g = torch.Generator().manual_seed(0)
    train_data = torch.randint(0, 8, (300,), generator=g)
    val_data = torch.randint(8, 16, (100,), generator=g)
    block_size, batch_size, eval_iters = 5, 4, 3
    model = TinyLM(seed=2, dropout=0.5)
    model.train()
    with seeded(0):
        out = attempt(
            name, estimate_loss, model, train_data, val_data, block_size, batch_size, eval_iters,
            what="estimate_loss(model, train_data, val_data, block_size=5, batch_size=4, "
            "eval_iters=3)", hint=_vocabulary_hint,
        )  # fmt: skip
    calls = model.calls
    if not calls:
        fail(name, "the model passed in was never called, so nothing was measured.")
    if any(c["grad"] for c in calls):
        fail(
            name,
            "gradients were being tracked while evaluating: nothing is learned here, so building "
            "the graph for backward only costs memory and time (torch.no_grad).",
        )
    if any(c["training"] for c in calls):
        fail(
            name,
            "the model was in training mode while evaluating: dropout was on, so the loss measured "
            "a randomly damaged model, not the real one (eval mode).",
        )
    if not model.training:
        fail(
            name,
            "the model is left in eval mode: training would continue without dropout; "
            "put it back in training mode at the end.",
        )
    for c in calls:
        if c["targets"] is None:
            fail(name, "the model was called without targets, so it returned no loss.")
        if torch.equal(c["targets"], c["idx"]):
            fail(
                name,
                "the targets are the inputs themselves: targets must be the *next* characters, "
                "the y of each batch (x shifted by one).",
            )
        if not torch.equal(c["targets"][:, :-1], c["idx"][:, 1:]):
            fail(name, "the targets are not the inputs shifted by one (each batch's y).")
        if tuple(c["idx"].shape) != (batch_size, block_size):
            fail(
                name,
                f"batches should be (batch_size, block_size) = {(batch_size, block_size)}, "
                f"got {tuple(c['idx'].shape)}: the batch shape must follow the block_size and "
                "batch_size arguments.",
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
        if not losses[split]:
            fail(name, f"no batch came from the {split}_data passed in: each split must be "
                 "measured on its own data.")  # fmt: skip
    for split in ("train", "val"):
        if len(losses[split]) != eval_iters:
            fail(
                name,
                f"expected eval_iters={eval_iters} batches from the {split} split, got "
                f"{len(losses[split])}: the number of batches must follow the eval_iters argument.",
            )
    for split, other in (("train", "val"), ("val", "train")):
        value = out[split]
        if isinstance(value, torch.Tensor):
            fail(name, f"out['{split}'] is a tensor; the spec asks for a plain Python float "
                 "(what .item() returns): a tensor in a loss history keeps its device memory, "
                 "prints as tensor(...), and does not go into JSON.")  # fmt: skip
        if not isinstance(value, (int, float)):
            fail(name, f"out['{split}'] should be a float, got {type(value).__name__}.")
        mean = sum(losses[split]) / eval_iters
        if abs(value - mean) < 1e-4:
            continue
        if abs(value - sum(losses[other]) / eval_iters) < 1e-4:
            fail(name, f"out['{split}'] holds the {other} loss: the splits are swapped.")
        if abs(value - losses[split][-1]) < 1e-4:
            fail(name, f"out['{split}'] is the last batch's loss, not the mean over all batches.")
        fail(
            name,
            f"out['{split}'] = {value:.4f}, but the mean of its batches' losses is {mean:.4f}.",
        )
    passed(name, "eval mode, no gradients, mean over eval_iters batches per split, mode restored.")
