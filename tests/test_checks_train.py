"""The lesson 06 checks pass correct code (ours and a different one) and name classic bugs."""

from __future__ import annotations

import pytest
import torch
from checkhelpers import assert_fails, stub

from shared.checks import check_estimate_loss, check_train_step
from shared.data import get_batch
from shared.train import estimate_loss, train_step


# ----------------------------------------------------------------------------- train_step
def other_step(model, optimizer, xb, yb):  # correct, written differently
    for p in model.parameters():
        p.grad = None
    loss = model(xb, targets=yb)[1]
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def no_zero_grad(model, optimizer, xb, yb):
    _, loss = model(xb, yb)
    loss.backward()
    optimizer.step()
    return loss.item()


def no_backward(model, optimizer, xb, yb):
    optimizer.zero_grad()
    _, loss = model(xb, yb)
    optimizer.step()
    return loss.item()


def no_step(model, optimizer, xb, yb):
    optimizer.zero_grad()
    _, loss = model(xb, yb)
    loss.backward()
    return loss.item()


def zero_grad_between(model, optimizer, xb, yb):
    _, loss = model(xb, yb)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def returns_tensor(model, optimizer, xb, yb):
    optimizer.zero_grad()
    _, loss = model(xb, yb)
    loss.backward()
    optimizer.step()
    return loss


def inputs_as_targets(model, optimizer, xb, yb):
    optimizer.zero_grad()
    _, loss = model(xb, xb)
    loss.backward()
    optimizer.step()
    return loss.item()


def clipped_step(model, optimizer, xb, yb):  # correct: clip the gradient norm before stepping
    optimizer.zero_grad(set_to_none=True)
    _, loss = model(xb, yb)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item()


_NOTEBOOK_MODEL = torch.nn.Linear(2, 2)
NOTEBOOK_OPTIMIZER = torch.optim.SGD(_NOTEBOOK_MODEL.parameters(), lr=0.1)
NOTEBOOK_XB, NOTEBOOK_YB = torch.randint(16, (3, 6)), torch.randint(16, (3, 6))


def global_optimizer(model, optimizer, xb, yb):
    NOTEBOOK_OPTIMIZER.zero_grad()
    _, loss = model(xb, yb)
    loss.backward()
    NOTEBOOK_OPTIMIZER.step()
    return loss.item()


def global_batch(model, optimizer, xb, yb):
    optimizer.zero_grad()
    _, loss = model(NOTEBOOK_XB, NOTEBOOK_YB)
    loss.backward()
    optimizer.step()
    return loss.item()


def no_targets(model, optimizer, xb, yb):
    optimizer.zero_grad()
    _, loss = model(xb)
    loss.backward()
    optimizer.step()
    return loss.item()


def steps_twice(model, optimizer, xb, yb):
    optimizer.zero_grad()
    _, loss = model(xb, yb)
    loss.backward()
    optimizer.step()
    optimizer.step()
    return loss.item()


def loss_after_step(model, optimizer, xb, yb):
    optimizer.zero_grad()
    _, loss = model(xb, yb)
    loss.backward()
    optimizer.step()
    return model(xb, yb)[1].item()


def zero_grad_at_the_end(model, optimizer, xb, yb):
    _, loss = model(xb, yb)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def tuple_as_loss(model, optimizer, xb, yb):
    optimizer.zero_grad()
    loss = model(xb, yb)
    loss.backward()
    optimizer.step()
    return loss.item()


def evaluates_inside(model, optimizer, xb, yb):  # eval mode for the forward: no dropout
    model.eval()
    return train_step(model, optimizer, xb, yb)


def leaves_eval_mode(model, optimizer, xb, yb):  # measured the loss afterwards, in eval mode
    loss = train_step(model, optimizer, xb, yb)
    model.eval()
    return loss


def test_train_step_passes_correct_code(capsys):
    check_train_step(train_step)
    check_train_step(other_step)
    check_train_step(clipped_step)
    assert capsys.readouterr().out.count("PASSED train_step") == 3


@pytest.mark.parametrize(
    "buggy, hint",
    [
        (stub, "not implemented yet"),
        (no_zero_grad, "old gradients were not cleared"),
        (no_backward, "loss.backward() was never called"),
        (no_step, "never took a step"),
        (zero_grad_between, "between loss.backward() and optimizer.step()"),
        (returns_tensor, "comes back as a tensor"),
        (inputs_as_targets, "xb is used as the targets"),
        (global_optimizer, "the optimizer passed in never took a step"),
        (global_batch, "never called on the xb passed in"),
        (no_targets, "without targets"),
        (steps_twice, "ran 2 times"),
        (loss_after_step, "return the loss the gradients came from"),
        (zero_grad_at_the_end, "cleared after the step instead of before"),
        (tuple_as_loss, "has to be unpacked"),
        (evaluates_inside, "forward pass ran in eval mode"),
        (leaves_eval_mode, "leaves the model in eval mode"),
        (None, "expected the train_step function"),
    ],
)
def test_train_step_names_the_mistake(buggy, hint):
    assert_fails(check_train_step, buggy, hint)


# ----------------------------------------------------------------------------- estimate_loss
def other_estimate(model, train_data, val_data, block_size, batch_size, eval_iters, device="cpu"):
    model.eval()
    result = {}
    with torch.no_grad():
        for split, data in {"val": val_data, "train": train_data}.items():
            total = 0.0
            for _ in range(eval_iters):
                x, y = get_batch(data, block_size, batch_size, device)
                total += model(x, y)[1].item()
            result[split] = total / eval_iters
    model.train()
    return result


NOTEBOOK_TRAIN_DATA = torch.arange(100) % 90  # real text has ids beyond the check model's 16


def _make_estimate(
    *, no_grad=True, eval_mode=True, restore=True, targets="y", mean=True, swap=False,
    train_override=None, iters=None, block=None, val_from_train=False, as_tensor=False,
):  # fmt: skip
    def estimate(model, train_data, val_data, block_size, batch_size, eval_iters, device="cpu"):
        train_data = train_data if train_override is None else train_override
        val_data = train_data if val_from_train else val_data
        eval_iters = iters or eval_iters
        block_size = block or block_size
        if eval_mode:
            model.eval()
        out = {}
        with torch.set_grad_enabled(not no_grad):
            for split, data in (("train", train_data), ("val", val_data)):
                losses = []
                for _ in range(eval_iters):
                    x, y = get_batch(data, block_size, batch_size, device)
                    _, loss = model(x, y if targets == "y" else x)
                    losses.append(loss.item())
                out[split] = sum(losses) / len(losses) if mean else losses[-1]
                out[split] = torch.tensor(out[split]) if as_tensor else out[split]
        if restore:
            model.train()
        if swap:
            out = {"train": out["val"], "val": out["train"]}
        return out

    return estimate


def test_estimate_loss_passes_correct_code(capsys):
    check_estimate_loss(estimate_loss)
    check_estimate_loss(other_estimate)
    check_estimate_loss(_make_estimate())
    assert capsys.readouterr().out.count("PASSED estimate_loss") == 3


@pytest.mark.parametrize(
    "buggy, hint",
    [
        (stub, "not implemented yet"),
        (_make_estimate(no_grad=False), "torch.no_grad"),
        (_make_estimate(eval_mode=False), "eval mode"),
        (_make_estimate(restore=False), "left in eval mode"),
        (_make_estimate(train_override=NOTEBOOK_TRAIN_DATA), "not from notebook variables"),
        (_make_estimate(iters=10), "follow the eval_iters argument"),
        (_make_estimate(val_from_train=True), "no batch came from the val_data passed in"),
        (_make_estimate(block=8), "follow the block_size and batch_size arguments"),
        (_make_estimate(targets="x"), "targets are the inputs themselves"),
        (_make_estimate(mean=False), "last batch's loss"),
        (_make_estimate(swap=True), "swapped"),
        (_make_estimate(as_tensor=True), "plain Python float"),
    ],
)
def test_estimate_loss_names_the_mistake(buggy, hint):
    assert_fails(check_estimate_loss, buggy, hint)
