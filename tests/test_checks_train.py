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


def test_train_step_passes_correct_code(capsys):
    check_train_step(train_step)
    check_train_step(other_step)
    assert capsys.readouterr().out.count("PASSED train_step") == 2


@pytest.mark.parametrize(
    "buggy, hint",
    [
        (stub, "not implemented yet"),
        (no_zero_grad, "forgot optimizer.zero_grad"),
        (no_backward, "loss.backward() was never called"),
        (no_step, "optimizer.step() was never called"),
        (zero_grad_between, "between loss.backward() and optimizer.step()"),
        (returns_tensor, "return loss.item()"),
        (inputs_as_targets, "xb as the targets"),
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


def _make_estimate(
    *, no_grad=True, eval_mode=True, restore=True, targets="y", mean=True, swap=False
):
    def estimate(model, train_data, val_data, block_size, batch_size, eval_iters, device="cpu"):
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
        (_make_estimate(eval_mode=False), "model.eval"),
        (_make_estimate(restore=False), "model.train"),
        (_make_estimate(targets="x"), "targets are the inputs themselves"),
        (_make_estimate(mean=False), "last batch's loss"),
        (_make_estimate(swap=True), "swapped"),
    ],
)
def test_estimate_loss_names_the_mistake(buggy, hint):
    assert_fails(check_estimate_loss, buggy, hint)
