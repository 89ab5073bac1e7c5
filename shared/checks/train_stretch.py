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

# (max_lr, min_lr, warmup_steps, max_steps): small numbers to read, the course's recipe, and
# the shortest decay (one step: max_lr at warmup_steps, min_lr at max_steps = warmup_steps + 1).
_SETTINGS = ((1.0, 0.1, 4, 20), (3e-3, 3e-4, 100, 1000), (1.0, 0.1, 3, 4))


def _schedule(step, max_lr, min_lr, warmup, max_steps, mistake=None):
    """The spec, and each classic mistake, written out."""
    if mistake == "no_warmup":
        warmup = 0
    if step < warmup:
        if mistake == "warmup_one_late":
            return max_lr * (step + 1) / (warmup + 1)
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
    "warmup_one_late": "off by one in the warmup: it reaches max_lr one step late; step "
    "warmup_steps - 1 should already get the full max_lr",
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


def _phases(setting):
    """(phase, its steps, the mistakes that show there)."""
    warmup, max_steps = setting[2], setting[3]
    return (
        ("the warmup", range(0, warmup), ("warmup_from_zero", "warmup_one_late", "no_warmup")),
        ("the decay", range(warmup, max_steps + 1),
         ("decay_from_zero", "divide_by_max_steps", "linear", "full_cosine", "to_zero")),
        ("after max_steps", range(max_steps + 1, max_steps + 10), ("no_clamp", "to_zero")),
    )  # fmt: skip


def _diagnose(name, setting, values, want) -> None:
    """Name the mistake of the first phase that differs, judged on that phase alone (so two
    mistakes in different phases are found one after the other), else the first wrong step."""
    __tracebackhide__ = True
    for phase, steps, mistakes in _phases(setting):
        got = [values[s] for s in steps]
        if _matches(got, [want[s] for s in steps]):
            continue
        for mistake in mistakes:
            if _matches(got, [_schedule(s, *setting, mistake=mistake) for s in steps]):
                fail(name, f"looks like {_MISTAKES[mistake]} (in {phase}).")
        first = next(s for s in steps if not math.isclose(values[s], want[s], rel_tol=1e-6))
        fail(name, f"with (max_lr, min_lr, warmup_steps, max_steps) = {setting}, step {first} "
             f"(in {phase}) should give {want[first]:.6g}, got {values[first]:.6g}.")  # fmt: skip


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
        if not _matches(values, want):
            _diagnose(name, setting, values, want)
    passed(name, "linear warmup, half a cosine down to min_lr, flat after max_steps")
