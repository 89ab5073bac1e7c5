"""A fake course for the grading tests: checks, a reference implementation, notebooks.

``CHECKS`` and ``REFERENCE`` are written to a temp folder that the grader and its sandboxes
import (``gradefake_checks``, ``gradefake_ref``); they stand in for ``shared.checks`` and the
reference layer, and import nothing heavy, so a check process starts in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

CHECKS = """
from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    name: str
    check: str
    target: str
    description: str = ""
    optional: bool = False


class ExerciseFailed(AssertionError):
    pass


def _call(name, fn, *args):
    try:
        return fn(*args)
    except NotImplementedError:
        raise ExerciseFailed(f"[{name}] not implemented yet") from None


def check_double(fn):
    got = _call("double", fn, 3)
    if got == 5:
        raise ExerciseFailed("[double] you added 2 instead of multiplying by 2")
    if got != 6:
        raise ExerciseFailed(f"[double] double(3) should be 6, got {got!r}")
    print("PASSED double")


def check_triple(fn):
    got = _call("triple", fn, 3)
    if got != 9:
        raise ExerciseFailed(f"[triple] triple(3) should be 9, got {got!r}")
    print("PASSED triple")


def check_book(cls):
    if _call("book", lambda: cls().title()) != "Quijote":
        raise ExerciseFailed("[book] title() should be 'Quijote'")
    print("PASSED book")


def check_quad(fn):
    if _call("quad", fn, 3) != 12:
        raise ExerciseFailed("[quad] quad(3) should be 12")
    print("PASSED quad")


def check_greet(fn):
    if _call("greet", fn, "Sancho") != "Hola, Sancho":
        raise ExerciseFailed("[greet] greet('Sancho') should be 'Hola, Sancho'")
    print("PASSED greet")


EXERCISES = {
    "01_fake": [
        Exercise("double", "check_double", "double"),
        Exercise("triple", "check_triple", "triple"),
        Exercise("book", "check_book", "Book"),
        Exercise("quad", "check_quad", "quad", optional=True),
    ],
    "02_other": [Exercise("greet", "check_greet", "greet")],
    "03_empty": [],
}
"""

REFERENCE = """
def double(x):
    return 2 * x


def triple(x):
    return 3 * x


class Book:
    def title(self):
        return "Quijote"
"""

# Like the real lessons: the learner's definition, the check cell, then the reference.
SOLVED = [
    "def double(x):\n    return 2 * x",
    "from gradefake_checks import check_double\ncheck_double(double)",
    "from gradefake_ref import double",
    "FACTOR = 3\n\ndef _times(x, n):\n    return x * n\n\ndef triple(x):\n    return _times(x, FACTOR)",
    "class Book:\n    def title(self):\n        return 'Quijote'",
    "def quad(x):\n    return double(double(x))",
]
STUB = [
    "def double(x):\n    raise NotImplementedError('not implemented yet: replace this line')",
    "from gradefake_checks import check_double\ncheck_double(double)",  # fails; the rest runs
    "from gradefake_ref import double",
    "def triple(x):\n    return x + 3",
    "class Book:\n    def title(self):\n        raise NotImplementedError",
]
STUB_DEFS = [STUB[0], STUB[3], STUB[4]]
GREET = [
    "open('/sandbox/data/corpus.txt', 'w').write('poisoned')",  # read-only: raises
    "def greet(name):\n    return 'Hola, ' + name",
]


def write_notebook(path: Path, sources: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), str(path))


# --------------------------------------------------------------------- the checks through a proxy


PROXY_DEADLINE_S = 120  # one check through the proxy, on a loaded CI machine


def through_proxy(check, target) -> None:
    """``check(target)`` with ``target`` behind a ``Remote`` proxy, served over a pipe.

    The grader's judge and worker, in one process for speed: a thread serves ``target`` as the
    sandboxed worker does (``trusted=False``) and ``check`` runs here against the proxy, as in
    the judge. Every request, answer and value crosses the same data-only channel.
    """
    import os
    import threading
    import time

    from shared.grading.remote import ChannelClosed, Link

    down, up = os.pipe(), os.pipe()
    # An answer that never comes fails the test (``Deadline``) instead of hanging the run.
    judge = Link(up[0], down[1], trusted=True, deadline=time.monotonic() + PROXY_DEADLINE_S)
    worker = Link(down[0], up[1], trusted=False)

    def serve():
        try:
            worker.send({"candidate": worker.encode(target)})
            while (message := worker.receive()).get("op") != "bye":
                worker.serve_one(message)
        except ChannelClosed:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        check(judge.decode(judge.receive()["candidate"]))
    finally:
        judge.send({"op": "bye"})
        thread.join(timeout=PROXY_DEADLINE_S)
        for fd in (*down, *up):
            os.close(fd)


def pytest_configure(config):  # ``-p tests.gradefake``: every assert_passes/fails via the proxy
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import checkhelpers as helpers

    passes, fails = helpers.assert_passes, helpers.assert_fails
    helpers.assert_passes = lambda check, target, capsys: passes(
        lambda t: through_proxy(check, t), target, capsys
    )
    helpers.assert_fails = lambda check, target, *fragments: fails(
        lambda t: through_proxy(check, t), target, *fragments
    )
