"""Progress that reads well wherever it goes: a tqdm bar in a terminal or a notebook, plain
periodic lines in a log file or a CI job (where tqdm's carriage-return redraws become one
unreadable line).

    bar = Progress(total=500, desc="sampling", unit="chars")
    for i in range(500):
        ...
        bar.update(i + 1)
    bar.close()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tqdm.auto import tqdm

PLAIN_EVERY_S = 15.0  # one plain line this often


def interactive(stream=None) -> bool:
    """True in a terminal or a Jupyter kernel (tqdm draws a live bar there); False when the
    output goes to a file, a pipe or a CI log."""
    stream = sys.stdout if stream is None else stream
    if type(stream).__module__.startswith("ipykernel"):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or odd streams
        return False


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``."""
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


class Progress:
    """Progress of ``total`` units: ``update(done, **fields)`` with the absolute amount done.

    Interactive (see ``interactive``): a tqdm bar with ``fields`` as its postfix. Otherwise one
    line every ``every`` seconds: ``desc: done/total unit, field value, ..., elapsed, left``.
    ``enabled=False``: silent. ``stream``/``timer`` are injectable for tests.
    """

    def __init__(
        self,
        total: float,
        desc: str,
        unit: str = "it",
        enabled: bool = True,
        initial: float = 0,
        every: float = PLAIN_EVERY_S,
        stream=None,
        timer: Callable[[], float] = time.perf_counter,
    ):
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.stream = sys.stdout if stream is None else stream
        self.timer, self.enabled = timer, enabled
        self.start = self.last_line = timer()
        self.initial = self.done = initial
        self.bar = None
        if enabled and interactive(self.stream):
            bar_format = "{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]"
            self.bar = tqdm(
                total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True,
                leave=True, bar_format=bar_format if unit == "s" else None, file=self.stream,
            )  # fmt: skip

    def update(self, done: float, **fields) -> None:
        self.done = min(done, self.total)
        if self.bar is not None:
            self.bar.update(self.done - self.bar.n)
            if fields:
                self.bar.set_postfix(fields, refresh=False)
        elif self.enabled and self.timer() - self.last_line >= self.every:
            self.last_line = self.timer()
            self.write(self.line(fields))

    def line(self, fields: dict) -> str:
        """The plain line: what is done, the fields, elapsed and (estimated) remaining time."""
        elapsed = self.timer() - self.start
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else None
        parts = [f"{self.desc}: {self.done:.0f}/{self.total:.0f} {self.unit}"]
        parts += [f"{key} {value}" for key, value in fields.items()]
        parts.append(f"elapsed {duration(elapsed)}")
        if left is not None:
            parts.append(f"~{duration(left)} left")
        return ", ".join(parts)

    def write(self, message: str) -> None:
        """A message that does not break the bar."""
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        elif self.enabled:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
