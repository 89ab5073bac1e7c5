"""argparse ``type=`` helpers shared by the commands: a bad value becomes one ``error: ...`` line.

Use: ``add_argument("--top-k", type=number(int, 1, low_inclusive=True))``,
``type=positive(float)``, ``type=time_budget``, ``type=SEED``.

Every number is checked against its whole allowed range, edges included: floats must be finite
(no ``nan``/``inf``) and every type has an upper bound, so a value that parses but that the
work cannot use (``--seed 2**64``, ``--batch-size 1000000000``, ``--temperature 1e-40``) is
refused up front with a message that states the range.
"""

from __future__ import annotations

import argparse
import math

BIG_INT = 10**9  # upper bound for counts that have no natural one (steps, intervals)


def _show(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _describe(low, high, low_inclusive: bool) -> str:
    low_text = f"{'>=' if low_inclusive else '>'} {_show(low)}"
    return low_text + (f" and <= {_show(high)}" if high is not None else "")


def number(kind, low, high=None, *, low_inclusive: bool = False):
    """A parser for ``kind`` (int or float) above ``low`` (or at it) and at most ``high``.

    Floats must be finite. Ints get ``BIG_INT`` as their upper bound unless ``high`` says more.
    """
    expected = "a whole number" if kind is int else "a number"
    if kind is int and high is None:
        high = BIG_INT
    bounds = _describe(low, high, low_inclusive)

    def parse(text: str):
        try:
            value = kind(text.strip())
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(
                f"expected {expected} {bounds}, got {text!r}"
            ) from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number {bounds}, got {text}")
        too_low = value < low if low_inclusive else value <= low
        if too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def positive(kind, high=None):
    """A parser for ``kind`` (int or float) > 0 (and <= ``high``)."""
    return number(kind, 0, high)


# torch.manual_seed takes 0 .. 2**64 - 1; training also seeds ``seed + 1`` for evaluation.
SEED = number(int, 0, 2**63 - 1, low_inclusive=True)


def time_budget(text: str) -> float | None:
    """Finite seconds > 0, or ``none``/``off`` (no time limit: ``None``)."""
    if text.strip().lower() in {"none", "off"}:
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or 'none', got {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 10**8):
        raise argparse.ArgumentTypeError(
            f"must be seconds > 0 and <= 1e+08, or 'none' for no time limit, got {text}"
        )
    return value


def prompt(text: str) -> str:
    """A prompt as the book writes line ends: a text pasted from Windows (CRLF) or an old Mac
    (CR) gets "\\n", the only line end the model knows (``shared.data`` does the same)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")
