"""Stretch check for lesson 10: the arithmetic coder's interval update (``narrow``).

The reference is ``shared.arithmetic_coding.narrow``. The check compares the learner's function
with it on small intervals a learner can follow by hand and on the coder's real sizes (32-bit
intervals, totals up to 2^24), where a float division rounds differently from ``//``.
"""

from __future__ import annotations

import random

from shared.arithmetic_coding import FULL, MAX_TOTAL, narrow
from shared.checks._calls import call
from shared.checks._core import Exercise, fail, passed, require_callable

EXERCISES = [
    Exercise(
        name="narrow",
        check="check_narrow",
        target="narrow",
        description="narrow(low, high, cum_low, cum_high, total): one symbol's slice of [low, high]",
        optional=True,
    ),
]


def _mistake(low, high, cum_low, cum_high, total, which):
    """Each classic mistake, written out (None where it cannot compute anything)."""
    width = high - low + 1
    if which == "width_without_one":
        width = high - low
    if which == "floats":
        return low + int(width * (cum_low / total)), low + int(width * (cum_high / total)) - 1
    if which == "no_low":
        return width * cum_low // total, width * cum_high // total - 1
    if which == "high_not_inclusive":
        return low + width * cum_low // total, low + width * cum_high // total
    if which == "swapped":
        return low + width * cum_high // total - 1, low + width * cum_low // total
    if which == "scaled_by_high":
        return low + high * cum_low // total, low + high * cum_high // total - 1
    return low + width * cum_low // total, low + width * cum_high // total - 1


_MISTAKES = {
    "width_without_one": "the width is high - low, but [low, high] holds high - low + 1 "
    "integers (both ends are included): the slices then miss the top of the interval",
    "high_not_inclusive": "the slices overlap: the new high is where the NEXT symbol's slice begins; both ends are "
    "included, so this symbol's slice ends one integer before it",
    "floats": "the result is off by one where the numbers are large: a float division "
    "(cum / total, then int) rounds differently from integer floor division (//). Use integers "
    "only, or the decoder will not find the same interval",
    "no_low": "the slice is counted from 0 instead of from low: add low to both ends",
    "swapped": "the two ends are returned as (high, low): return (new_low, new_high)",
    "scaled_by_high": "the slice is scaled by high instead of by the width (high - low + 1)",
}

# (low, high, cum_low, cum_high, total): a range a learner can follow by hand, then the coder's
# real sizes: a 32-bit interval and totals up to 2^24, where width * cum exceeds 2^53.
_SMALL = [(0, 99, 0, 1, 4), (0, 99, 1, 3, 4), (0, 99, 3, 4, 4), (10, 19, 2, 5, 10), (5, 5, 0, 1, 1)]
# Widths that are multiples of the total: the exact slice ends are integers, where a float
# division lands just below them and int() rounds down by one (found by search, checked exact).
_FLOAT_TRAPS = [(285568389, 3305936558, 7, 8, 10), (1973661107, 3536187806, 58, 70, 100),
                (2325478447, 3913283446, 142, 588, 1000), (765189647, 3657645862, 17524, 29975, 59049),
                (573843564, 3077851075, 26721, 263093, 1000003)]  # fmt: skip


def _large_cases(seed: int = 0, n: int = 200):
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        total = rng.randrange(2, MAX_TOTAL + 1)
        cum_low = rng.randrange(0, total)
        cum_high = rng.randrange(cum_low + 1, total + 1)
        low = rng.randrange(0, FULL // 2)
        high = rng.randrange(low + FULL // 4, FULL)  # the coder keeps the interval > 1/4 wide
        cases.append((low, high, cum_low, cum_high, total))
    return cases


def _as_pair(name, value, args):
    __tracebackhide__ = True
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        fail(name, f"narrow{args} should return a pair (new_low, new_high), got {value!r}.")
    new_low, new_high = value
    for end in (new_low, new_high):
        if hasattr(end, "item"):  # a 0-d tensor or numpy number
            end = end.item()
        if isinstance(end, float):
            fail(name, f"narrow{args} returned floats {value!r}: the coder works on integers "
                 "only (use // for the division), so that the encoder and the decoder compute "
                 "exactly the same interval.")  # fmt: skip
        if not isinstance(end, int):
            fail(name, f"narrow{args} should return two ints, got {value!r}.")
    return int(new_low), int(new_high)


def _diagnose(name, cases, results) -> None:
    """Name the mistake that computes every result (several agree on some inputs, e.g. at
    low = 0), else show the first input that differs."""
    __tracebackhide__ = True
    for which, message in _MISTAKES.items():
        if all(got == _mistake(*args, which) for args, got in zip(cases, results, strict=True)):
            fail(name, f"looks like {message}.")
    args, got = next((a, g) for a, g in zip(cases, results, strict=True) if g != narrow(*a))
    fail(name, f"narrow(low={args[0]}, high={args[1]}, cum_low={args[2]}, cum_high={args[3]}, "
         f"total={args[4]}) returned {got}, expected {narrow(*args)}: the symbol owns "
         "[cum_low, cum_high) of total, so its slice of the high - low + 1 integers starts "
         "width * cum_low // total above low and ends just before width * cum_high // total.")  # fmt: skip


def check_narrow(narrow_fn) -> None:
    """``narrow`` equals the reference on small intervals and on the coder's real sizes."""
    __tracebackhide__ = True
    name = "narrow"
    require_callable(name, narrow_fn, "the narrow function")
    cases = [*_SMALL, *_FLOAT_TRAPS, *_large_cases()]
    results = [_as_pair(name, call(name, narrow_fn, *a, what=f"narrow{a}"), a) for a in cases]
    if any(got != narrow(*args) for args, got in zip(cases, results, strict=True)):
        _diagnose(name, cases, results)
    passed(name, "each symbol gets its exact integer slice, also at 32-bit sizes")
