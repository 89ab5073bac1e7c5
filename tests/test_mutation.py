"""The mutation harness (``tests.mutation``): every exercise's check rejects every mechanical
mutant of the exercise's own solution region, unless the mutant is listed as equivalent.

``python -m tests.mutation`` prints the full report. Here the checks run on every mutant
(``CAP = None``; about 80 s of CPU for ~875 mutants, see the commit that set it); should that
grow too slow, a number caps the mutants per exercise (a fixed sample, ``mutation.sample``).
"""

from __future__ import annotations

import pytest

from shared.checks import EXERCISES
from tests import mutation
from tests.mutants import load_cells, mutants

CAP = None  # mutants per exercise in the suite (None: all)


@pytest.fixture(scope="module")
def every_mutant():
    return mutation.collect()


def test_every_exercise_has_mutants(every_mutant):
    totals, _ = every_mutant
    assert set(totals) == {e.name for exercises in EXERCISES.values() for e in exercises}
    assert all(totals.values()), totals


def test_equivalents_name_current_mutants(every_mutant):
    """An entry whose mutant no longer exists (the solution changed) must go."""
    _, jobs = every_mutant
    current = {mutant.key for mutant, _ in jobs}
    stale = set(mutation.EQUIVALENT) - current
    assert not stale, sorted(stale)
    assert all(reason.strip() for reason in mutation.EQUIVALENT.values())


def test_a_check_that_accepts_a_mutant_is_reported():
    """A solution with a line no check can see: its mutants survive and are reported."""
    cells = load_cells("01_data")
    exercise = next(e for e in EXERCISES["01_data"] if e.name == "tokenizer")
    for cell in cells:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if "class CharTokenizer" in source and "### BEGIN SOLUTION" in source:
            marker = "        ### BEGIN SOLUTION\n"
            cell["source"] = source.replace(marker, marker + "        unused = 7\n", 1)
    found = [m for m in mutants("01_data", exercise, cells) if "unused" in m.original]
    assert found, "no mutant of the added line"
    outcomes = mutation.run_all([(m, exercise) for m in found])
    left = mutation.survivors(outcomes)
    assert {o.mutant.mutated for o in left} >= {"unused = 8", "unused = 6"}
    assert "SURVIVOR tokenizer" in mutation.report({"tokenizer": len(found)}, outcomes)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("[x] f(1) returned [2], expected [1].", "bare comparison"),
        ("[x] expected shape (2, 3), got (3, 2)", "bare comparison"),
        ("[x] f raised TypeError: bad" + mutation.RAW_MARK, "raw crash"),
        ("[x] the ids are shifted by one: ids start at 0, not 1.", None),
        ("[x] f raised RuntimeError: boom. Likely cause: a dim was used that ...", None),
    ],
)
def test_generic_messages_are_told_apart(message, reason):
    assert mutation.generic_reason(message) == reason


def test_every_mutant_is_killed_or_listed(every_mutant):
    totals, jobs = every_mutant
    if CAP is not None:
        totals, jobs = mutation.collect(cap=CAP)
    outcomes = mutation.run_all(jobs)
    assert not mutation.survivors(outcomes), mutation.report(totals, outcomes)
