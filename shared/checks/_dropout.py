"""One check for dropout, shared by every exercise whose module takes a ``dropout`` argument.

Dropout is easy to get subtly wrong in ways a single eval-mode comparison cannot see: never
applied, applied in the wrong place, a hard-coded rate that ignores the argument, or
``F.dropout`` without ``training=`` (still on in eval mode). ``check_dropout`` runs the module in
training mode at several rates (0 included) and in eval mode, with every global RNG seeded the
same way for the learner's call and for each candidate, so a candidate that draws the same
dropout masks in the same place reproduces the learner's output exactly; a mistake is named only
when its output matches.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

from shared.checks._calls import call
from shared.checks._core import close, fail, matching_mistake, seeded

# Reference(module, x, drop) -> the output with ``drop`` applied where dropout belongs.
Reference = Callable[
    [torch.nn.Module, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]], torch.Tensor
]

_COMMON_RATES = (0.1, 0.2, 0.25, 0.3, 0.5)  # what a hard-coded rate usually is
_SEED = 11


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def _drop(p: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda t: F.dropout(t, p, training=True)


def _seeded_output(fn, seed: int = _SEED):
    with seeded(seed), torch.no_grad():
        return fn()


def check_dropout(
    exercise: str,
    build: Callable[[float], torch.nn.Module],
    x: torch.Tensor,
    reference: Reference,
    wrong_places: dict[str, Reference],
    where: str,
    what: str = "the module",
) -> None:
    """Fail unless ``build(p)`` applies dropout at rate p ``where`` the reference does, in
    training mode only. ``wrong_places``: mistake -> reference with dropout elsewhere."""
    __tracebackhide__ = True

    def run(module, seed=_SEED):
        return _seeded_output(lambda: call(exercise, module, x, what=what), seed)

    # Rate 0 in training mode: nothing may be random.
    module = build(0.0).train()
    out = run(module)
    if not close(out, _seeded_output(lambda: reference(module, x, _identity))):
        if not close(out, run(module, seed=_SEED + 1)):
            fail(exercise, f"with dropout=0.0 {what} is still random in training mode: the "
                 "dropout rate does not follow the `dropout` argument (is it hard-coded?).")  # fmt: skip
        fail(exercise, f"with dropout=0.0 in training mode {what} differs from its eval-mode "
             "result: only dropout may differ between the modes.")  # fmt: skip
    for p in (0.6, 0.3):
        module = build(p).train()
        _check_rate(exercise, module, p, run(module), x, reference, wrong_places, where, what)
    module.eval()
    out = run(module)
    if not close(out, _seeded_output(lambda: reference(module, x, _identity))):
        fail_if_random_in_eval(exercise, module, x, what)
        fail(exercise, f"in eval mode {what} with dropout={p} differs from the same module "
             "without dropout: eval mode must not drop anything.")  # fmt: skip


def _check_rate(exercise, module, p, out, x, reference, wrong_places, where, what) -> None:
    """In training mode at rate p: the reference's dropout masks, or the named mistake's."""
    __tracebackhide__ = True

    def with_drop(fn, drop):
        return lambda: _seeded_output(lambda: fn(module, x, drop))

    if close(out, with_drop(reference, _drop(p))()):
        return
    candidates = {
        f"dropout is never applied in training mode: with dropout={p} the output is the same as "
        "without it": with_drop(reference, _identity),
    }
    for rate in _COMMON_RATES:
        candidates[f"the dropout rate is {rate}, not the `dropout` argument ({p}): a hard-coded "
                   "rate ignores what the caller asks for"] = with_drop(reference, _drop(rate))  # fmt: skip
    for mistake, wrong in wrong_places.items():
        candidates[mistake] = with_drop(wrong, _drop(p))
    candidates["dropout is applied twice"] = with_drop(reference, lambda t: _drop(p)(_drop(p)(t)))
    mistake = matching_mistake(out, candidates)
    if mistake:
        fail(exercise, f"in training mode with dropout={p}: {mistake}.")
    fail(exercise, f"in training mode with dropout={p}, {what} does not match dropout at rate {p} "
         f"applied {where} (and nowhere else).")  # fmt: skip


def fail_if_random_in_eval(exercise: str, module: torch.nn.Module, x: torch.Tensor, what: str):
    """Fail when an eval-mode module gives different outputs under different seeds."""
    __tracebackhide__ = True
    first = _seeded_output(lambda: call(exercise, module, x, what=what), _SEED)
    if not close(first, _seeded_output(lambda: call(exercise, module, x, what=what), _SEED + 1)):
        fail(exercise, f"{what} is random in eval mode: dropout must switch off in eval mode "
             "(nn.Dropout follows the module's mode; F.dropout only does with "
             "training=self.training; a layer created inside forward is always in training "
             "mode).")  # fmt: skip
