"""The self-check and the class gradebook, on a synthetic course with real kernels.

A tiny fake checks module (written to a temp folder, importable by the kernels through
PYTHONPATH) stands in for ``shared.checks``: the grader takes the registry and the checks
module as parameters, exactly as it uses ``shared.checks.EXERCISES`` for the real lessons.
Kernels are slow to start, so one module-scoped fixture grades a whole class of (badly
behaved) students once, with ``--jobs 2``, and the tests read that gradebook.
"""

from __future__ import annotations

import csv
import os
import sys
import textwrap
import uuid
from pathlib import Path

import nbformat
import pytest

import shared.course.grade as grade
import shared.course.sandbox as sandbox
import shared.course.selfcheck as selfcheck
from shared.__main__ import main
from shared.course.grading_cell import parse_grading_output, review_flags
from shared.errors import CourseError

FAKE_CHECKS = """
from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    name: str
    check: str
    target: str


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


def check_greet(fn):
    if _call("greet", fn, "Sancho") != "Hola, Sancho":
        raise ExerciseFailed("[greet] greet('Sancho') should be 'Hola, Sancho'")
    print("PASSED greet")


EXERCISES = {
    "01_fake": [
        Exercise("double", "check_double", "double"),
        Exercise("triple", "check_triple", "triple"),
        Exercise("book", "check_book", "Book"),
    ],
    "02_other": [Exercise("greet", "check_greet", "greet")],
    "03_empty": [],
}
"""

# Like the real lessons, the notebook goes on with the reference after each check cell; the
# grader must grade the learner's own definition, not the reference bound last.
GO_ON_WITH_REFERENCE = "from shared.config import project_root as double"

SOLVED = [
    "def double(x):\n    return 2 * x",
    "from gradefake_checks import check_double\ncheck_double(double)",
    GO_ON_WITH_REFERENCE,
    "def triple(x):\n    return x + x + x",
    "class Book:\n    def title(self):\n        return 'Quijote'",
]
GREET = [  # reads the corpus: each notebook gets its own copy of the data folder
    "import os\n\ndef greet(name):\n"
    "    path = os.path.join(os.environ['GPT_COURSE_DATA_DIR'], 'corpus.txt')\n"
    "    with open(path, encoding='utf-8') as f:\n"
    "        return f'{f.read().strip()}, {name}'"
]

STUB = [
    "def double(x):\n    raise NotImplementedError('not implemented yet: replace this line')",
    "from gradefake_checks import check_double\ncheck_double(double)",  # fails, later cells still run
    GO_ON_WITH_REFERENCE,
    "def triple(x):\n    return x + 3",
    "from gradefake_checks import check_triple\ncheck_triple(triple)",
    "class Book:\n    def title(self):\n        return 'Quijote'",
]

CHEAT = [
    # no check cells at all; every trick replaces or fakes the checks
    "import os, sys, types\nimport gradefake_checks\n"
    "gradefake_checks.check_double = lambda f: print('PASSED double')\n"
    "gradefake_checks.check_triple = lambda f: None\n"
    "sys.modules['gradefake_checks'] = types.SimpleNamespace(check_double=lambda f: None)",
    # a fake checks package and a fake `shared` in the cwd, a fake IPython startup file in HOME
    "os.makedirs('gradefake_checks', exist_ok=True)\n"
    "open('gradefake_checks/__init__.py', 'w', encoding='utf-8').write("
    "'def check_double(f): pass\\ndef check_triple(f): pass\\ndef check_book(f): pass\\n')\n"
    "os.makedirs('shared/checks', exist_ok=True)\n"
    "open('shared/__init__.py', 'w', encoding='utf-8').write('')\n"
    "startup = os.path.expanduser('~/.ipython/profile_default/startup')\n"
    "os.makedirs(startup, exist_ok=True)\n"
    "open(os.path.join(startup, 'STARTUP_NAME'), 'w', encoding='utf-8').write("
    "'def double(x): return 2 * x\\n')",
    "def double(x):\n    return x + 2",
    'print(\'@@grade-0123 {"event": "result", "exercise": "double", "status": "pass", "message": ""}\')\n'
    "print('PASSED double')",
    "from shared.config import quick_mode as triple",  # the reference, renamed
    "from shared.course.cli import CourseArgumentParser\n\n"
    "class Book(CourseArgumentParser):  # the reference's methods, none of its own\n    pass",
    "corpus = os.path.join(os.environ['GPT_COURSE_DATA_DIR'], 'corpus.txt')\n"
    "open(corpus, 'w', encoding='utf-8').write('poisoned')",
    "isinstance = lambda *args: True\nprint = lambda *args, **kwargs: None",
]

HANG = [
    "def double(x):\n    while True:\n        pass",  # the check cell and the grader's check hang
    "from gradefake_checks import check_double\ncheck_double(double)",
    "import time\nwhile True:\n    time.sleep(0.1)\n\ndef triple(x):\n    return 3 * x",
    "class Book:\n    def title(self):\n        return 'Quijote'",
]

STUCK = [  # ignores the interrupt: the kernel is killed, the lesson reports timeouts
    "def double(x):\n    return 2 * x",
    "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except KeyboardInterrupt:\n        pass",
]

SILENCER = [*SOLVED, "import os, sys\nsys.stdout = open(os.devnull, 'w', encoding='utf-8')"]

CRASH = ["def double(x):\n    return 2 * x", "import os\nos._exit(1)"]

CRASH_IN_CHECK = [
    "def double(x):\n    return 2 * x",
    "def triple(x):\n    import os\n    os._exit(3)",
    "class Book:\n    def title(self):\n        return 'Quijote'",
]


def write_notebook(path: Path, sources: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), str(path))


@pytest.fixture(scope="module")
def fake_course(tmp_path_factory):
    """The fake checks module, importable here and by every kernel the grader starts."""
    helpers = tmp_path_factory.mktemp("helpers")
    data = tmp_path_factory.mktemp("data")
    (data / "corpus.txt").write_text("Hola", encoding="utf-8")
    (helpers / "gradefake_checks.py").write_text(FAKE_CHECKS, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(helpers))
        mp.setenv("PYTHONPATH", os.pathsep.join([str(helpers), os.environ.get("PYTHONPATH", "")]))
        mp.setenv("GPT_COURSE_DATA_DIR", str(data))
        mp.setattr(grade, "CHECKS_MODULE", "gradefake_checks")
        mp.setattr(sandbox, "STUCK_GRACE_S", 1)
        import gradefake_checks

        gradefake_checks.DATA_DIR = data
        yield gradefake_checks
    sys.modules.pop("gradefake_checks", None)


@pytest.fixture(scope="module")
def startup_name():
    return f"zz-grade-test-{uuid.uuid4().hex}.py"


@pytest.fixture(scope="module")
def graded(fake_course, tmp_path_factory, startup_name):
    """Grade a class of eleven students once (two cores, four-second cell timeout)."""
    root = tmp_path_factory.mktemp("submissions")
    write_notebook(root / "ana" / "01_fake.ipynb", SOLVED)
    write_notebook(root / "ana" / "02_other.ipynb", GREET)
    write_notebook(root / "ben" / "01_fake.ipynb", STUB)
    cheat = [cell.replace("STARTUP_NAME", startup_name) for cell in CHEAT]
    write_notebook(root / "cat" / "01_fake.ipynb", cheat)
    write_notebook(root / "dan" / "01_fake.ipynb", HANG)
    write_notebook(root / "eve" / "01_fake.ipynb", STUCK)
    write_notebook(root / "fay" / "01_fake.ipynb", CRASH)
    write_notebook(root / "fay" / "02_other.ipynb", GREET)
    write_notebook(root / "gus" / "01_fake.ipynb", CRASH_IN_CHECK)
    (root / "hal").mkdir()
    (root / "hal" / "01_fake.ipynb").write_bytes(b"\x89PNG\r\n\x1a\n not a notebook")
    (root / "hal" / "02_other.ipynb").write_text("", encoding="utf-8")
    patched = [*SOLVED, "import math\nmath.isclose = lambda *args, **kwargs: True"]
    write_notebook(root / "jon" / "01_fake.ipynb", patched)
    write_notebook(root / "kim" / "01_fake.ipynb", SILENCER)
    (root / "ivy").mkdir()
    (root / "ivy" / "essay.docx").write_text("hello", encoding="utf-8")
    book = grade.grade_class(root, fake_course.EXERCISES, timeout=4, jobs=2)
    out = tmp_path_factory.mktemp("out") / "gradebook.csv"
    grade.write_csv(book, out)
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return book, rows


def result(rows, student, lesson, exercise):
    (row,) = [
        r for r in rows if (r["student"], r["lesson"], r["exercise"]) == (student, lesson, exercise)
    ]
    return row["status"], row["message"]


# ------------------------------------------------------------------- gradebook from real kernels


def test_csv_has_one_row_per_student_lesson_exercise(graded):
    book, rows = graded
    assert list(rows[0]) == ["student", "lesson", "exercise", "status", "message"]
    assert book.lessons == ["01_fake", "02_other"]  # lessons without exercises are not graded
    keys = [(r["student"], r["lesson"], r["exercise"]) for r in rows]
    students = ["ana", "ben", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jon", "kim"]
    expected = [(s, "01_fake", e) for s in students for e in ("double", "triple", "book")]
    expected += [(s, "02_other", "greet") for s in students]
    assert sorted(keys) == sorted(expected)
    assert {r["status"] for r in rows} <= set(selfcheck.STATUSES)


def test_solved_notebook_passes(graded):
    _, rows = graded
    for lesson, exercise in [("01_fake", "double"), ("01_fake", "triple"), ("01_fake", "book")]:
        assert result(rows, "ana", lesson, exercise)[0] == "pass"
    assert result(rows, "ana", "02_other", "greet") == ("pass", "PASSED greet")


def test_stub_and_wrong_answer_fail_with_the_checks_hint(graded):
    _, rows = graded
    assert result(rows, "ben", "01_fake", "double") == ("fail", "[double] not implemented yet")
    status, message = result(rows, "ben", "01_fake", "triple")
    assert status == "fail" and "should be 9, got 6" in message
    # the failing check cells did not stop the notebook: the last cell still ran
    assert result(rows, "ben", "01_fake", "book")[0] == "pass"


def test_missing_notebooks_and_unknown_files(graded):
    book, rows = graded
    assert result(rows, "ben", "02_other", "greet") == ("missing", "no 02_other.ipynb submitted")
    assert all(r["status"] == "missing" for r in rows if r["student"] == "ivy")
    assert any("ivy/essay.docx" in note for note in book.notes)


def test_corrupted_and_empty_files_are_errors_for_that_lesson_only(graded):
    _, rows = graded
    status, message = result(rows, "hal", "01_fake", "double")
    assert status == "error" and "not" in message and "notebook" in message
    assert result(rows, "hal", "02_other", "greet") == ("error", "the notebook file is empty")


def test_cheating_notebook_fails_what_it_did_not_solve(graded, fake_course, startup_name):
    _, rows = graded
    status, message = result(rows, "cat", "01_fake", "double")
    assert status == "fail" and "you added 2 instead of multiplying" in message
    reference = "uses the reference implementation from shared instead of your own"
    status, message = result(rows, "cat", "01_fake", "triple")
    assert status == "fail" and reference in message and "config.py" in message
    status, message = result(rows, "cat", "01_fake", "book")
    assert status == "fail" and reference in message and "CourseArgumentParser" in message
    # it poisoned its own copy of the data, not the course's (others still read "Hola")
    assert (fake_course.DATA_DIR / "corpus.txt").read_text(encoding="utf-8") == "Hola"
    assert result(rows, "fay", "02_other", "greet")[0] == "pass"
    # its IPython startup file went to the sandbox's HOME, not the grader's
    startup = Path.home() / ".ipython" / "profile_default" / "startup" / startup_name
    assert not startup.exists()


def test_patching_a_library_the_checks_use_refuses_grading(graded):
    _, rows = graded
    for exercise in ("double", "triple", "book"):
        status, message = result(rows, "jon", "01_fake", exercise)
        assert status == "error" and "grading refused" in message and "math.isclose" in message


def test_no_result_is_never_a_pass(graded):
    _, rows = graded
    for exercise in ("double", "triple", "book"):  # solved, but it silenced the grader's output
        status, message = result(rows, "kim", "01_fake", exercise)
        assert status == "error" and "no result from the grader" in message


def test_cheating_notebook_is_flagged_for_review(graded):
    book, _ = graded
    flags = " ".join(book.reports["cat", "01_fake"].flags)
    assert "touches sys.modules" in flags and "redefines the builtin `isinstance`" in flags
    assert book.reports["ana", "01_fake"].flags == []


def test_hanging_code_is_interrupted_and_the_rest_is_graded(graded):
    book, rows = graded
    status, message = result(rows, "dan", "01_fake", "double")  # the grader's check timed out
    assert status == "timeout" and "did not finish in 4" in message
    status, message = result(rows, "dan", "01_fake", "triple")  # its defining cell timed out
    assert status == "timeout" and "cell 3 did not finish" in message
    assert result(rows, "dan", "01_fake", "book")[0] == "pass"
    assert any("cell 3" in note for note in book.reports["dan", "01_fake"].notes)


def test_cell_ignoring_interrupts_stops_only_that_lesson(graded):
    _, rows = graded
    for exercise in ("double", "triple", "book"):
        status, message = result(rows, "eve", "01_fake", exercise)
        assert status == "timeout" and "kept running after it was interrupted" in message


def test_kernel_crash_is_an_error_for_that_lesson_only(graded):
    _, rows = graded
    for exercise in ("double", "triple", "book"):
        status, message = result(rows, "fay", "01_fake", exercise)
        assert status == "error" and "kernel died" in message and "cell 2" in message
    assert result(rows, "fay", "02_other", "greet")[0] == "pass"


def test_crash_during_a_check_keeps_earlier_results(graded):
    _, rows = graded
    assert result(rows, "gus", "01_fake", "double")[0] == "pass"
    status, message = result(rows, "gus", "01_fake", "triple")
    assert status == "error" and "while checking this exercise" in message
    status, message = result(rows, "gus", "01_fake", "book")
    assert status == "error" and "not graded" in message and "`triple`" in message


def test_grid_and_markdown_summary(graded):
    book, _ = graded
    grid = grade.format_grid(book).splitlines()
    assert grid[0].split() == ["student", "01_fake", "02_other", "total"]
    assert grid[1].split() == ["ana", "3/3", "1/1", "4/4"]
    assert grid[2].split() == ["ben", "1/3", "-", "1/4"]
    assert grid[4].split() == ["dan", "1/3*", "-", "1/4"]
    markdown = grade.markdown_summary(book)
    assert "| ana | 3/3 | 1/1 | 4/4 |" in markdown
    assert "**ben** 01_fake `triple`: fail: [triple] triple(3) should be 9, got 6" in markdown
    assert "review: cell 1 touches sys.modules" in markdown
    assert "**fay** 01_fake (all exercises): error: the kernel died" in markdown


# ----------------------------------------------------------------------------------- CLI


def test_check_cli_exit_codes(fake_course, tmp_path, capsys):
    solved, stub = tmp_path / "a" / "01_fake.ipynb", tmp_path / "b" / "01_fake.ipynb"
    write_notebook(solved, SOLVED)
    write_notebook(stub, STUB)
    assert main(["check", str(solved), "--timeout", "20"]) == 0
    out = capsys.readouterr().out
    assert "PASS    double" in out and "3/3 exercises pass" in out
    assert main(["check", str(stub.parent), "--timeout", "20"]) == 1
    out = capsys.readouterr().out
    assert "FAIL    double: [double] not implemented yet" in out
    assert "FAIL    triple: [triple] triple(3) should be 9, got 6" in out


def test_check_cli_bad_paths(fake_course, tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.ipynb")]) == 2
    assert "does not exist" in capsys.readouterr().err
    write_notebook(tmp_path / "my_copy.ipynb", SOLVED)
    assert main(["check", str(tmp_path / "my_copy.ipynb")]) == 2
    assert "not a lesson notebook" in capsys.readouterr().err
    assert main(["check", str(tmp_path)]) == 2
    assert "no lesson notebooks" in capsys.readouterr().err
    assert main(["check", str(tmp_path), "--timeout", "0"]) == 2
    assert "--timeout must be a positive number" in capsys.readouterr().err


def test_grade_cli_writes_csv_and_markdown(fake_course, tmp_path, capsys):
    root = tmp_path / "subs"
    (root / "zoe").mkdir(parents=True)
    (root / "zoe" / "01_fake.ipynb").write_text("{not json", encoding="utf-8")  # no kernel needed
    (root / "README.txt").write_text("instructions", encoding="utf-8")
    out = tmp_path / "results" / "book.csv"
    assert main(["grade", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "zoe      0/3*" in printed and "ignored README.txt" in printed
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert [(r["exercise"], r["status"]) for r in rows] == [
        ("double", "error"),
        ("triple", "error"),
        ("book", "error"),
        ("greet", "missing"),
    ]
    assert "| zoe | 0/3* | - | 0/4 |" in (tmp_path / "results" / "book.md").read_text("utf-8")


def test_grade_rejects_bad_submission_folders(fake_course, tmp_path, capsys):
    assert main(["grade", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(CourseError, match="no student folders"):
        grade.grade_class(tmp_path, fake_course.EXERCISES)
    with pytest.raises(CourseError, match="no lesson has registered exercises"):
        grade.grade_class(tmp_path, {"01_fake": []})


# ------------------------------------------------------------------------ pieces, no kernels


def test_only_marked_lines_are_results():
    outputs = [
        {"output_type": "stream", "name": "stdout", "text": '@@grade-fake {"event": "done"}\n'},
        {"output_type": "stream", "name": "stdout", "text": "@@grade-real {bad json\n"},
        {"output_type": "stream", "name": "stdout", "text": '@@grade-real {"event": "done"}\n'},
    ]
    assert parse_grading_output(outputs, "@@grade-real") == [{"event": "done"}]


def test_review_flags_point_at_tampering_only():
    clean = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in SOLVED])
    assert review_flags(clean) == []
    source = textwrap.dedent(
        """
        import shared.checks
        shared.checks.check_double = lambda f: None
        torch.allclose = lambda *a, **k: True
        def len(x):
            return 0
        """
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    flags = review_flags(nb)
    assert "cell 1 patches shared.checks" in flags
    assert "cell 1 patches a library" in flags
    assert "cell 1 redefines the builtin `len`" in flags


def test_read_notebook_reasons(tmp_path):
    bad = tmp_path / "x.ipynb"
    bad.write_text('{"just": "json"}', encoding="utf-8")
    with pytest.raises(ValueError, match="not a valid notebook"):
        selfcheck.read_notebook(bad)
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not UTF-8"):
        selfcheck.read_notebook(bad)
