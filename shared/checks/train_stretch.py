"""Stretch check for lesson 06: the learning-rate schedule, linear warmup then cosine decay."""

from __future__ import annotations

import math

from shared.checks._calls import call
from shared.checks._core import Exercise, fail, passed, require_callable

EXERCISES = [
    Exercise(
        name="get_lr",
        check="check_get_lr",
        target="get_lr",
        description="get_lr(step, max_lr, min_lr, warmup_steps, max_steps): warmup + cosine",
        optional=True,
    ),
]

# (max_lr, min_lr, warmup_steps, max_steps): small numbers to read, and the course's recipe
_SETTINGS = ((1.0, 0.1, 4, 20), (3e-3, 3e-4, 100, 1000))


def _schedule(step, max_lr, min_lr, warmup, max_steps, mistake=None):
    """The spec, and each classic mistake, written out."""
    if mistake == "no_warmup":
        warmup = 0
    if step < warmup:
        return max_lr * (step if mistake == "warmup_from_zero" else step + 1) / warmup
    if mistake == "decay_from_zero":
        progress = step / max_steps
    elif mistake == "divide_by_max_steps":
        progress = (step - warmup) / max_steps
    else:
        progress = (step - warmup) / max(1, max_steps - warmup)
    if mistake != "no_clamp":
        progress = min(1.0, progress)
    if mistake == "linear":
        return max_lr - progress * (max_lr - min_lr)
    if mistake == "full_cosine":
        return min_lr + math.cos(math.pi * progress) * (max_lr - min_lr)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    if mistake == "to_zero":
        return cosine * max_lr
    return min_lr + cosine * (max_lr - min_lr)


_MISTAKES = {
    "warmup_from_zero": "off by one in the warmup: step 0 should already get max_lr / "
    "warmup_steps (not 0), and step warmup_steps - 1 the full max_lr",
    "no_warmup": "there is no warmup: the first warmup_steps steps should climb linearly to max_lr",
    "decay_from_zero": "the cosine starts at step 0 instead of at the end of the warmup: "
    "measure the progress from warmup_steps",
    "divide_by_max_steps": "the progress is divided by max_steps: the cosine covers "
    "max_steps - warmup_steps steps, so it reaches min_lr exactly at max_steps",
    "no_clamp": "after max_steps the learning rate goes back up: stay at min_lr",
    "linear": "the decay is a straight line: use half a cosine, 0.5 * (1 + cos(pi * progress))",
    "full_cosine": "cos(pi * progress) runs from 1 to -1, so the rate drops below min_lr: "
    "rescale it to run from 1 to 0, 0.5 * (1 + cos(pi * progress))",
    "to_zero": "the rate decays to 0: it should end at min_lr",
}


def _curve(fn, setting, steps):
    return [fn(step, *setting) for step in steps]


def _matches(values, want) -> bool:
    return all(
        math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12) for a, b in zip(values, want, strict=True)
    )


def check_get_lr(get_lr) -> None:
    """Compare ``get_lr`` with the spec at every step of two settings, past max_steps too."""
    __tracebackhide__ = True
    name = "get_lr"
    require_callable(name, get_lr, "the get_lr function")
    for setting in _SETTINGS:
        steps = range(setting[3] + 10)
        values = []
        for step in steps:
            value = call(
                name, get_lr, step, *setting, what=f"get_lr({step}, {', '.join(map(str, setting))})"
            )
            if hasattr(value, "item"):  # a 0-d tensor is fine too
                value = value.item()
            if not isinstance(value, (int, float)):
                fail(name, f"return the learning rate as a float, got {type(value).__name__}.")
            values.append(float(value))
        want = [_schedule(s, *setting) for s in steps]
        if _matches(values, want):
            continue
        for mistake, hint in _MISTAKES.items():
            if _matches(values, [_schedule(s, *setting, mistake=mistake) for s in steps]):
                fail(name, f"looks like {hint}.")
        first = next(
            s
            for s, a, b in zip(steps, values, want, strict=True)
            if not math.isclose(a, b, rel_tol=1e-6)
        )
        fail(
            name,
            f"with (max_lr, min_lr, warmup_steps, max_steps) = {setting}, step {first} should give "
            f"{want[first]:.6g}, got {values[first]:.6g}.",
        )
    passed(name, "linear warmup, half a cosine down to min_lr, flat after max_steps")
