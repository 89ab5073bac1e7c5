"""The lesson 06 stretch check (get_lr) passes correct schedules and names classic mistakes."""

from __future__ import annotations

import math

import pytest
import torch
from checkhelpers import assert_fails, assert_passes, stub

from shared.checks import check_get_lr
from shared.train import warmup_cosine_lr


def other_lr(step, max_lr, min_lr, warmup_steps, max_steps):  # correct, written differently
    if step >= max_steps:
        return min_lr
    if step < warmup_steps:
        return (step + 1) / warmup_steps * max_lr
    t = (step - warmup_steps) / (max_steps - warmup_steps)
    return min_lr + (max_lr - min_lr) * (1 + math.cos(t * math.pi)) / 2


def tensor_lr(step, max_lr, min_lr, warmup_steps, max_steps):  # a 0-d tensor is accepted
    return torch.tensor(
        warmup_cosine_lr(step, max_lr, min_lr, warmup_steps, max_steps), dtype=torch.float64
    )


def _buggy(mistake):
    from shared.checks.train_stretch import _schedule

    def get_lr(step, max_lr, min_lr, warmup_steps, max_steps):
        return _schedule(step, max_lr, min_lr, warmup_steps, max_steps, mistake=mistake)

    return get_lr


def test_correct_schedules_pass(capsys):
    for fn in (warmup_cosine_lr, other_lr, tensor_lr):
        assert_passes(check_get_lr, fn, capsys)


def test_the_check_leaves_the_global_rng_alone():
    torch.manual_seed(3)
    before = torch.get_rng_state()
    check_get_lr(warmup_cosine_lr)
    assert torch.equal(before, torch.get_rng_state())


def warmup_written_by_hand(step, max_lr, min_lr, warmup_steps, max_steps):  # independent bug
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    return warmup_cosine_lr(step, max_lr, min_lr, warmup_steps, max_steps)


def no_clamp_by_hand(step, max_lr, min_lr, warmup_steps, max_steps):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / (max_steps - warmup_steps)
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))


def two_mistakes(step, max_lr, min_lr, warmup_steps, max_steps):  # each phase wrong its own way
    if step < warmup_steps:
        return max_lr * step / warmup_steps  # off by one
    progress = min(1.0, (step - warmup_steps) / (max_steps - warmup_steps))
    return max_lr * 0.5 * (1 + math.cos(math.pi * progress))  # decays to 0


def only_decay_to_zero(step, max_lr, min_lr, warmup_steps, max_steps):
    return (
        two_mistakes(step, max_lr, min_lr, warmup_steps, max_steps)
        if step >= warmup_steps
        else (max_lr * (step + 1) / warmup_steps)
    )


def whole_run_cosine(step, max_lr, min_lr, warmup_steps, max_steps):  # progress over the run,
    if step < warmup_steps:  # and no clamp either: the first wrong phase is named
        return max_lr * (step + 1) / warmup_steps
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * step / max_steps))


def late_warmup(step, max_lr, min_lr, warmup_steps, max_steps):
    if step < warmup_steps:
        return max_lr * (step + 1) / (warmup_steps + 1)
    return warmup_cosine_lr(step, max_lr, min_lr, warmup_steps, max_steps)


def decay_guard(at_least):
    """The reference with the decay's length guarded by ``max(at_least, ...)``."""

    def get_lr(step, max_lr, min_lr, warmup_steps, max_steps):
        if step < warmup_steps:
            return max_lr * (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(at_least, max_steps - warmup_steps))
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)

    return get_lr


@pytest.mark.parametrize(
    "buggy, hint",
    [
        (stub, "not implemented yet"),
        (None, "expected the get_lr function"),
        (
            decay_guard(2),
            "with (max_lr, min_lr, warmup_steps, max_steps) = (1.0, 0.1, 3, 4), step 4",
        ),
        (warmup_written_by_hand, "off by one in the warmup"),
        (no_clamp_by_hand, "goes back up"),
        (_buggy("no_warmup"), "there is no warmup"),
        (_buggy("decay_from_zero"), "starts at step 0"),
        (_buggy("divide_by_max_steps"), "divided by max_steps"),
        (_buggy("linear"), "straight line"),
        (_buggy("full_cosine"), "drops below min_lr"),
        (_buggy("to_zero"), "decays to 0"),
        (two_mistakes, "step 0 should already get max_lr / warmup_steps (not 0), and step "),
        (two_mistakes, "(in the warmup)"),
        (only_decay_to_zero, "should end at min_lr (in the decay)"),
        (whole_run_cosine, "the progress from warmup_steps (in the decay)"),
        (late_warmup, "reaches max_lr one step late"),
        (lambda *args: "0.1", "as a float"),
        (lambda step, *args: 1.0, "step 0 (in the warmup) should give 0.25, got 1"),
    ],
)
def test_classic_mistakes_get_their_own_hint(buggy, hint):
    assert_fails(check_get_lr, buggy, hint)


def test_get_lr_uses_the_pure_schedule():
    from _tiny import tiny_config

    from shared.train import get_lr

    config = tiny_config(learning_rate=1e-2, min_lr=1e-3, warmup_iters=4, max_iters=20)
    for step in range(25):
        assert get_lr(step, config) == warmup_cosine_lr(step, 1e-2, 1e-3, 4, 20)
