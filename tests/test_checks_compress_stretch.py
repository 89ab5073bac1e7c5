"""The lesson 10 stretch check (narrow, the arithmetic coder's interval update): correct versions
pass, each classic mistake fails with its own hint, written here independently of the check."""

from __future__ import annotations

import pytest
from checkhelpers import assert_fails, assert_passes, stub

from shared.arithmetic_coding import narrow as reference
from shared.checks import check_narrow


def other_narrow(low, high, cum_low, cum_high, total):  # correct, written differently
    size = high + 1 - low
    start = low + (size * cum_low) // total
    end = low + (size * cum_high) // total
    return [start, end - 1]


def divmod_narrow(low, high, cum_low, cum_high, total):  # correct, with divmod
    width = high - low + 1
    return low + divmod(width * cum_low, total)[0], low + divmod(width * cum_high, total)[0] - 1


def width_without_one(low, high, cum_low, cum_high, total):
    width = high - low
    return low + width * cum_low // total, low + width * cum_high // total - 1


def high_not_inclusive(low, high, cum_low, cum_high, total):
    width = high - low + 1
    return low + width * cum_low // total, low + width * cum_high // total


def with_floats(low, high, cum_low, cum_high, total):
    width = high - low + 1
    return low + int(width * (cum_low / total)), low + int(width * (cum_high / total)) - 1


def float_result(low, high, cum_low, cum_high, total):
    width = high - low + 1
    return low + width * cum_low / total, low + width * cum_high / total - 1


def from_zero(low, high, cum_low, cum_high, total):
    width = high - low + 1
    return width * cum_low // total, width * cum_high // total - 1


def swapped(low, high, cum_low, cum_high, total):
    width = high - low + 1
    return low + width * cum_high // total - 1, low + width * cum_low // total


def by_high(low, high, cum_low, cum_high, total):
    return low + high * cum_low // total, low + high * cum_high // total - 1


def one_end_only(low, high, cum_low, cum_high, total):
    return low + (high - low + 1) * cum_low // total


def cum_high_twice(low, high, cum_low, cum_high, total):  # no named cause: the generic hint
    width = high - low + 1
    return low + width * cum_high // total, low + width * cum_high // total - 1


def test_correct_versions_pass(capsys):
    for fn in (reference, other_narrow, divmod_narrow):
        assert_passes(check_narrow, fn, capsys)


def test_the_stub_is_not_implemented_yet():
    assert_fails(check_narrow, stub, "not implemented yet")


@pytest.mark.parametrize(
    "fn, hint",
    [
        (width_without_one, "holds high - low + 1"),
        (high_not_inclusive, "slices overlap"),
        (with_floats, "float division"),
        (float_result, "integers only"),
        (from_zero, "add low to both ends"),
        (swapped, "(high, low)"),
        (by_high, "scaled by high"),
        (one_end_only, "should return a pair"),
        (cum_high_twice, "starts width * cum_low // total above low"),
    ],
)
def test_each_mistake_gets_its_own_hint(fn, hint):
    assert_fails(check_narrow, fn, hint)
