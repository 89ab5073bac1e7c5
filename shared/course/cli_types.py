"""argparse ``type=`` helpers shared by the commands: a bad value becomes one ``error: ...`` line.

Use: ``add_argument("--top-k", type=number(int, 1, low_inclusive=True))``,
``type=positive(float)``, ``type=time_budget``.
"""

from __future__ import annotations

import argparse


def number(kind, low, high=None, *, low_inclusive: bool = False):
    """A parser for ``kind`` (int or float) above ``low`` (or at it) and at most ``high``; no NaN."""
    expected = "a whole number" if kind is int else "a number"
    bounds = f"{'>=' if low_inclusive else '>'} {low}" + (
        f" and <= {high}" if high is not None else ""
    )

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        too_low = value < low if low_inclusive else value <= low
        if too_low or (high is not None and value > high) or value != value:
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    return parse


def positive(kind):
    """A parser for ``kind`` (int or float) > 0."""
    return number(kind, 0)


def time_budget(text: str) -> float | None:
    """Seconds > 0, or ``none``/``off`` (no time limit: ``None``)."""
    if text.strip().lower() in {"none", "off"}:
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or 'none', got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value
