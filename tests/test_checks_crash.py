"""``_crash.explain_crash``: the crashes a wrong argument causes get their likely cause.

The cases are crashes the mutation harness (tests/mutation.py) met as raw "raised X: ..." lines.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shared.checks._crash import explain_crash


def _crash(action) -> BaseException:
    try:
        action()
    except Exception as exc:  # the crash under test
        return exc
    raise AssertionError("no crash")


@pytest.mark.parametrize(
    ("action", "cause"),
    [
        (lambda: torch.randint((4,)), "got arguments it does not take"),
        (lambda: torch.topk(3, torch.zeros(4)), "has the wrong type"),
        (lambda: torch.zeros(2, 3, 4).permute(1, 2), "new order of *all* the dims"),
        (lambda: math.sqrt(torch.zeros(2, 3).size()), "whole shape (a torch.Size)"),
        (lambda: min(3), "a single number was used where several values are expected"),
        (lambda: 1.0 / 0.0, "in a denominator is 0"),
        (lambda: torch.zeros(1, 2)[:, 0][1], "past the end of a dimension"),
        (lambda: (1, 2)[2], "a tuple was indexed past its end"),
        (lambda: np.zeros(3)[np.ones(2)], "NumPy array of floats was used as an index"),
        (lambda: math.cos(), "without the argument it needs"),
        (lambda: range(), "without the argument it needs"),
        (lambda: int(float("nan")), "NaN exists only among floats"),
    ],
)
def test_a_crash_gets_its_likely_cause(action, cause):
    line = explain_crash(_crash(action), "f(x)")
    assert line.startswith("f(x) raised "), line
    assert "Likely cause: " in line and cause in line.split("Likely cause: ")[1], line


def test_matplotlib_text_ticks_get_their_cause():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    line = explain_crash(_crash(lambda: ax.set_xticks(["a", "b"])), "plot(w)")
    assert "tick positions are numbers" in line, line
