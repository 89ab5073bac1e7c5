"""Helpers shared by the tests of the exercise checks (tests/test_checks_*.py)."""

from __future__ import annotations

import pytest

from shared.checks import ExerciseFailed


def stub(*args, **kwargs):
    """What the lesson hands out in place of the solution."""
    raise NotImplementedError("not implemented yet: replace this line with your code")


def assert_passes(check, target, capsys):
    """The check accepts ``target`` and prints exactly one ``PASSED ...`` line."""
    check(target)
    out = capsys.readouterr().out
    assert out.startswith("PASSED") and out.count("\n") == 1, out


def assert_fails(check, target, *fragments) -> ExerciseFailed:
    """The check rejects ``target`` with a message containing every fragment; returns the error."""
    with pytest.raises(ExerciseFailed) as info:
        check(target)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return info.value
