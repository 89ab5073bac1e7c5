"""Grading pieces that need no sandbox: extraction, review flags, discovery, scrubbing, results."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

import shared.grading.grade as grade
import shared.grading.sandbox as sandbox
import shared.grading.selfcheck as selfcheck
from shared.checks import EXERCISES
from shared.engine.errors import CourseError
from shared.grading.checker import _parse_record
from shared.grading.extract import extract
from shared.grading.gradebook import scrub

ROOT = Path(__file__).resolve().parent.parent


def cells(*sources: str) -> list[dict]:
    return [{"cell_type": "code", "source": s} for s in sources]


@pytest.mark.parametrize("lesson", sorted(EXERCISES))
def test_every_honest_solution_extracts_cleanly(lesson):
    """The checker's program for each solved exercise: found, not the reference, no flags."""
    nb = nbformat.read(ROOT / "solutions" / f"{lesson}.ipynb", as_version=4)
    for exercise in EXERCISES[lesson]:
        extraction = extract([dict(c) for c in nb.cells], exercise.target)
        assert extraction.fail == "" and extraction.flags == [], exercise.name
        label, source = extraction.program[-1]
        assert f"def {exercise.target}(" in source or f"class {exercise.target}" in source


def test_extraction_takes_the_last_definition_and_the_names_it_uses():
    extraction = extract(
        cells(
            "import torch\nimport os\nfrom shared.attention import Head",
            "def helper(x):\n    return torch.relu(x)\n\nSIZE = 4\nnot_literal = len('abc')",
            "def target(x):\n    return 0",
            "def target(x):\n    return helper(x) * SIZE + Head",
            "from shared.attention import target  # the lesson goes on with the reference",
        ),
        "target",
    )
    program = [source.splitlines()[0] for _, source in extraction.program]
    assert program == [
        "import torch",
        "from shared.attention import Head",
        "def helper(x):",
        "SIZE = 4",
        "def target(x):",
    ]
    assert "return helper(x) * SIZE + Head" in extraction.program[-1][1]
    assert extraction.fail == "" and extraction.flags == []


@pytest.mark.parametrize(
    "sources",
    [
        ["from shared.attention import Head as H\n\nclass Head(H):\n    pass"],
        ["import shared.attention as sa\n\ndef Head(*a):\n    return sa.Head(*a)"],
        ["def Head(*a):\n    from shared.attention import Head\n    return Head(*a)"],
        ["from shared.attention import Head as H\n\ndef helper():\n    return H\n\n"
         "def Head(*a):\n    return helper()(*a)"],
        # issue #23: module aliases, packages, attribute chains, dynamic lookups by constant
        ["from shared import attention as a\n\ndef Head(*x):\n    return a.Head(*x)"],
        ["import shared\n\nclass Head(shared.attention.Head):\n    pass"],
        ["import shared.attention\n\ndef Head(*x):\n    return shared.attention.Head(*x)"],
        ["from shared import attention\n\ndef Head(*x):\n    return getattr(attention, 'Head')(*x)"],
        ["import importlib\n\ndef Head(*x):\n"
         "    return importlib.import_module('shared.attention').Head(*x)"],
        ["import sys\n\ndef Head(*x):\n    return sys.modules['shared.attention'].Head(*x)"],
        ["def Head(*x):\n    import shared.attention as m\n    k = m\n    return k.Head(*x)"],
        ["from shared import attention as a\n\ndef Head(*x):\n    return vars(a)['Head'](*x)"],
        ["def Head(*x):\n    return __import__('shared.attention').attention.Head(*x)"],
    ],
)  # fmt: skip
def test_using_the_reference_of_the_target_fails(sources):
    extraction = extract(cells(*sources), "Head")
    assert "uses the reference implementation `shared.attention" in extraction.fail


@pytest.mark.parametrize(
    "body, flag",
    [
        ("return getattr(torch, 'o' + 's')", "getattr"),
        ("return eval('x')", "eval"),
        ("import importlib\n    return importlib", "importlib"),
        ("return __import__('os')", "__import__"),
        ("return x.__class__.__subclasses__()", ".__subclasses__"),
        ("return torch.os.system('ls')", ".system"),
        ("return open('/etc/passwd').read()", "open"),
        ("return compile('1', 'f', 'eval')", "compile"),
        ("return sys.modules", "sys"),
        ("return json.dumps(x)", "json"),
        ("return signal.alarm(1)", "signal"),
        ("torch.allclose = lambda *a: True", "changes `torch`"),
    ],
)
def test_review_flags(body, flag):
    source = f"import torch, sys, json, signal\n\ndef f(x):\n    {body}"
    flags = extract(cells(source), "f").flags
    assert len(flags) == 1 and flags[0].startswith("`f` (cell 1) uses") and flag in flags[0]


def test_syntax_errors_and_missing_definitions():
    extraction = extract(cells("import torch", "def f(x)\n    return x"), "f")
    assert extraction.fail.startswith("syntax error in cell 2 (line 1:")
    extraction = extract(cells("f = lambda x: x", "def g(:\n  pass"), "f")
    assert "no `def f` or `class f`" in extraction.fail and "syntax errors: 2" in extraction.fail
    # IPython syntax in other cells is not a syntax error
    assert extract(cells("%matplotlib inline\n!ls", "def f(x):\n    return x"), "f").fail == ""


def test_only_the_judges_record_for_this_exercise_counts():
    good = b'{"index": 0, "status": "pass", "message": "PASSED"}'
    assert _parse_record(good, 0) == ("pass", "PASSED")
    assert _parse_record(good, 1)[0] == "error"
    assert _parse_record(b'{"index": 0, "status": "great"}', 0)[0] == "error"
    assert _parse_record(b"PASSED", 0) == ("error", "no result from the checker")


def test_scrub_removes_environment_values_and_cuts(monkeypatch):
    monkeypatch.setenv("SOME_TOKEN", "tok-123456789")
    text = scrub("KeyError: tok-123456789 " + "x" * 500)
    assert "tok-123456789" not in text and "$SOME_TOKEN" in text and len(text) <= 200


def test_read_notebook_refuses_symlinks_and_does_not_echo_contents(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET line", encoding="utf-8")
    with pytest.raises(ValueError, match="not a valid notebook") as info:
        selfcheck.read_notebook(secret)
    assert "SECRET" not in str(info.value)
    link = tmp_path / "01_fake.ipynb"
    link.symlink_to(secret)
    with pytest.raises(ValueError, match="cannot read"):
        selfcheck.read_notebook(link)
    secret.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not UTF-8"):
        selfcheck.read_notebook(secret)


def test_discovery_notes_and_names(tmp_path):
    registry = {"01_fake": ["x"], "02_none": []}
    (tmp_path / ".dot").mkdir()
    (tmp_path / os.fsdecode(b"caf\xe9")).mkdir()
    (tmp_path / "ana").mkdir()
    (tmp_path / "ana" / "01_fake.ipynb").write_text("{}", encoding="utf-8")
    (tmp_path / "ana" / "notes.docx").write_text("", encoding="utf-8")
    (tmp_path / "link").symlink_to(tmp_path / "ana")
    students, found, notes = grade.find_submissions(tmp_path, registry)
    assert students == [".dot", "ana", "caf\\xe9"]
    assert found == {("ana", "01_fake"): tmp_path / "ana" / "01_fake.ipynb"}
    assert any("link" in n and "symbolic link" in n for n in notes)
    assert any("ana/notes.docx" in n for n in notes)
    with pytest.raises(CourseError, match="no lesson has registered exercises"):
        grade.find_submissions(tmp_path, {"01_fake": []})
    with pytest.raises(CourseError, match="does not exist"):
        grade.find_submissions(tmp_path / "absent", registry)


def test_grading_refuses_without_bwrap_and_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "find_bwrap", lambda: None)
    with pytest.raises(CourseError, match="bubblewrap.*container.*--no-sandbox"):
        sandbox.make_sandbox(["shared"], None, tmp_path)


def test_a_system_that_forbids_sandboxes_gets_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "find_bwrap", lambda: "/bin/false")  # "bwrap" that fails
    with pytest.raises(CourseError, match="could not start a sandbox here.*container"):
        sandbox.make_sandbox(["shared"], None, tmp_path)


def test_out_is_validated_before_grading(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    with pytest.raises(CourseError, match="must name a .csv"):
        grade.validate_out(tmp_path / "grades.md", subs)
    with pytest.raises(CourseError, match="inside the submissions folder"):
        grade.validate_out(subs / "grades.csv", subs)
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(CourseError, match="not a file"):
        grade.validate_out(tmp_path / "dir.csv", subs)
    csv_path, md_path = grade.validate_out(tmp_path / "new" / "book.csv", subs)
    assert md_path == tmp_path / "new" / "book.md" and md_path != csv_path


def test_self_check_without_bwrap_runs_unsandboxed(monkeypatch, tmp_path, capsys):
    seen = {}

    def fake_check_paths(path, **options):
        seen.update(options)
        return []

    monkeypatch.setattr(sandbox, "find_bwrap", lambda: None)
    monkeypatch.setattr(grade, "check_paths", fake_check_paths)
    from shared.__main__ import main

    assert main(["check", str(tmp_path)]) == 0
    assert seen["sandbox"] is False
    assert "checking without a sandbox" in capsys.readouterr().out


# ------------------------------------------------------------- issue #23: a grader that cannot grade


@pytest.mark.parametrize(
    "flag, value",
    [("--timeout", "nan"), ("--timeout", "inf"), ("--timeout", "0"), ("--timeout", "-1"),
     ("--notebook-timeout", "nan"), ("--notebook-timeout", "inf"), ("--jobs", "-1")],
)  # fmt: skip
def test_bad_time_limits_are_one_error_line(flag, value, tmp_path, capsys):
    from shared.__main__ import main

    code = main(["grade", str(tmp_path), flag, value])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert flag in lines[0] and "must be" in lines[0] and out == ""


def test_an_inherited_memory_limit_is_kept_and_named(monkeypatch):
    import resource

    limit = 6 << 30
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (limit, limit))
    memory, notes = sandbox.inherited_memory_limit(sandbox.MAX_MEMORY_BYTES)
    assert memory == limit and "6.0 GiB" in notes[0] and "kept" in notes[0]
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (-1, resource.RLIM_INFINITY))
    assert sandbox.inherited_memory_limit(8 << 30) == (8 << 30, [])


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (bwrap)")
def test_modules_outside_the_prefix_are_bound_or_the_grader_says_why(tmp_path, monkeypatch):
    """A module on PYTHONPATH (not in this Python's folders) is seen inside the sandbox; a
    checks module whose imports the sandbox cannot see stops grading with the reason."""
    from shared.grading.sandbox import make_sandbox

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "outside_mod.py").write_text("VALUE = 1\n", encoding="utf-8")
    (outside / "broken_checks.py").write_text("import not_installed_anywhere\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(outside))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    box = make_sandbox(["shared"], None, scratch, probe_modules=("outside_mod",))
    assert str(outside) in box.pythonpath
    with pytest.raises(CourseError, match="cannot grade: importing broken_checks fails"):
        make_sandbox(["shared"], None, scratch, probe_modules=("broken_checks",))


def test_a_plain_pickle_is_one_clean_error_line(tmp_path, capsys):
    import pickle

    from shared.__main__ import main

    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    code = main(["generate", "--checkpoint", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "Warning" not in err


def test_a_run_where_nothing_could_be_graded_exits_non_zero(tmp_path, monkeypatch, capsys):
    from shared.__main__ import main
    from shared.grading.gradebook import Gradebook

    (tmp_path / "subs" / "ana").mkdir(parents=True)
    reports = {
        ("ana", lesson): selfcheck.report_for_all(lesson, "", exercises, "error", "no checker")
        for lesson, exercises in EXERCISES.items()
    }
    book = Gradebook(["ana"], list(EXERCISES), reports)
    monkeypatch.setattr(grade, "grade_class", lambda *a, **k: book)
    code = main(["grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out" / "book.csv")])
    err = capsys.readouterr().err
    assert code == 1 and "every exercise ended in an error" in err


def test_the_schedule_keeps_a_students_notebooks_together_and_no_core_idle():
    tasks = [((student, lesson), None, lesson, []) for lesson in ("02", "01") for student in "abc"]
    tasks.append((("c", "03"), None, "03", []))
    schedule = selfcheck.Schedule(tasks)
    first = schedule.next(object())
    assert first[0] == "c" and first[1][0] == ("c", "01")  # the most notebooks first, in order
    assert schedule.next("c")[1][0] == ("c", "02")
    second = schedule.next(object())  # another sandbox: a student nobody has started
    assert second[0] == "a" and second[1][0] == ("a", "01")
    assert schedule.next("c")[1][0] == ("c", "03")
    assert schedule.next("c")[0] == "b"  # c is done: the next fresh student, never shared
    assert schedule.next("b")[1][0] == ("b", "02")
    assert schedule.next("b")[1][0] == ("a", "02")  # nobody left to start: help a's sandbox
    assert schedule.next("a") is None and schedule.next(object()) is None
    alone = selfcheck.Schedule([(f"{n}.ipynb", None, "", []) for n in range(3)])  # `check`
    picked = [alone.next(None), alone.next(object()), alone.next(None)]
    assert [task[0] for _, task in picked] == ["0.ipynb", "1.ipynb", "2.ipynb"]


def test_parse_python_retries_only_the_spurious_recursion_depth_error(monkeypatch):
    import ast

    from shared.grading import extract

    real, calls = ast.parse, []

    def flaky(source, *args, **kwargs):
        calls.append(source)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=1, after=2)")
        return real(source, *args, **kwargs)

    monkeypatch.setattr(extract.ast, "parse", flaky)
    assert isinstance(extract.parse_python("x = 1").body[0], ast.Assign) and len(calls) == 2

    def broken(source, *args, **kwargs):
        raise SystemError("something else")

    monkeypatch.setattr(extract.ast, "parse", broken)
    with pytest.raises(SystemError, match="something else"):
        extract.parse_python("x = 1")
