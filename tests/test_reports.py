"""Feedback per student, canvas.csv, Gradescope's results.json and --points, on hand-made
gradebook records (the shape grade_class returns); then one tiny class graded end to end."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest

from shared.engine.errors import CourseError
from shared.grading import feedback, lms, reports
from shared.grading.gradebook import Gradebook
from shared.grading.selfcheck import ExerciseResult, NotebookReport

SECRET = "s3cret-grader-value-8841"


class Ex:  # what the registry holds, as far as the reports care
    def __init__(self, name, target, optional=False):
        self.name, self.target, self.optional = name, target, optional


REGISTRY = {
    "01_fake": [Ex("double", "double"), Ex("triple", "triple"), Ex("quad", "quad", True)],
    "02_other": [Ex("greet", "greet")],
}


def results(*items):
    return [
        ExerciseResult(name, status, message, name == "quad") for name, status, message in items
    ]


@pytest.fixture
def book(monkeypatch):
    monkeypatch.setenv("GRADER_SECRET", SECRET)
    reports_ = {
        ("ana", "01_fake"): NotebookReport(
            "01_fake",
            "/subs/ana/01_fake.ipynb",
            results(
                ("double", "pass", "PASSED double"),
                ("triple", "pass", "PASSED triple"),
                ("quad", "pass", "PASSED quad"),
            ),
            notes=["cell 3 raised NameError"],
            flags=["`double` (cell 1) uses os, .environ"],
        ),
        ("ana", "02_other"): NotebookReport(
            "02_other", "", results(("greet", "missing", "no 02_other.ipynb submitted"))
        ),
        ("ben", "01_fake"): NotebookReport(
            "01_fake",
            "/subs/ben/01_fake.ipynb",
            results(
                ("double", "fail", f"[double] got ```{SECRET}``` and <b>|x|</b>"),
                ("triple", "timeout", "the check did not finish in 4 s"),
                ("quad", "fail", "[quad] not implemented yet"),
            ),
            notes=["cell 2 did not finish within 4 s and was interrupted"],
        ),
        ("ben", "02_other"): NotebookReport(
            "02_other", "/subs/ben/02_other.ipynb", results(("greet", "pass", "PASSED greet"))
        ),
    }
    return Gradebook(["ana", "ben"], ["01_fake", "02_other"], reports_, ["ignored x: a file"])


# ------------------------------------------------------------------------------ feedback


def test_feedback_has_every_exercise_its_hint_and_the_cells_that_failed(book):
    text = feedback.student_feedback(book, lms.Points(), "ben")
    assert "# Feedback: ben" in text
    assert "## 01_fake: 0/2 required passed, 0/1 optional (0/2 points)" in text
    assert "- FAIL `double`: 0/1 points" in text
    assert "- TIMEOUT `triple`: 0/1 points" in text
    assert "the check did not finish in 4 s" in text
    assert "- FAIL `quad` (optional): 0/0 points" in text and "[quad] not implemented yet" in text
    assert "cell 2 did not finish within 4 s and was interrupted" in text
    assert "## 02_other: 1/1 required passed (1/1 points)" in text
    assert "points: **1/3**" in text


def test_feedback_is_private_and_shows_no_grader_details(book):
    ana = feedback.student_feedback(book, lms.Points(), "ana")
    ben = feedback.student_feedback(book, lms.Points(), "ben")
    assert SECRET not in ben and "$GRADER_SECRET" in ben  # scrubbed like gradebook.md
    # the hint verbatim inside a fence longer than its own backticks: never HTML or markup
    fence = ben.index("````text\n")
    assert ben[fence:].split("\n")[1].strip().endswith("``` and <b>|x|</b>")
    assert "ben" not in ana and "ana" not in ben.replace("# Feedback: ben", "")
    assert "environ" not in ana and "review" not in ana  # instructor's flags stay out
    assert "ignored x" not in ana  # class notes too
    assert "## 02_other: not submitted" in ana
    assert "cell 3 raised NameError" in ana


def test_feedback_files_are_one_per_student_with_safe_names(book, tmp_path):
    book.students = ["ana", "ben"]
    names = reports.file_names(book.students)
    written = feedback.write_feedback(book, lms.Points(), tmp_path / "feedback", names)
    assert [p.name for p in written] == ["ana.md", "ben.md"]
    assert "# Feedback: ana" in written[0].read_text(encoding="utf-8")


def test_file_names_are_safe_and_distinct():
    names = reports.file_names([".hidden", "Ana", "ana", "caf\\xe9", "x" * 300, "José"])
    assert names[".hidden"] == "_.hidden"
    assert names["Ana"] == "Ana" and names["ana"] == "ana-2"  # case-insensitive disks
    assert names["caf\\xe9"] == "caf_xe9" and names["José"] == "José"
    assert len(names["x" * 300]) == reports.MAX_NAME_CHARS


# ----------------------------------------------------------------------------------- LMS


def test_canvas_csv_has_a_row_per_student_and_a_column_per_lesson(book, tmp_path):
    path = tmp_path / "canvas.csv"
    lms.write_canvas(book, lms.Points(), path)
    rows = list(csv.reader(path.open(encoding="utf-8", newline="")))
    assert rows[0] == [*lms.CANVAS_COLUMNS, "01_fake", "02_other"]
    assert rows[1][0].strip() == "Points Possible" and rows[1][5:] == ["2", "1"]
    assert rows[2] == ["ana", "", "", "ana", "", "2", "0"]
    assert rows[3] == ["ben", "", "", "ben", "", "0", "1"]


def test_points_file_sets_points_and_optional_ones_are_extra_credit(book, tmp_path):
    path = tmp_path / "points.json"
    path.write_text(json.dumps({"double": 2, "01_fake/quad": 0.5, "greet": 3}), encoding="utf-8")
    points = lms.load_points(path, REGISTRY)
    canvas = tmp_path / "canvas.csv"
    lms.write_canvas(book, points, canvas)
    rows = list(csv.reader(canvas.open(encoding="utf-8", newline="")))
    assert rows[1][5:] == ["3", "3"]  # 2 + 1 required; quad adds nothing to the maximum
    assert rows[2][5:] == ["3.5", "0"]  # ana: 2 + 1 + 0.5 extra
    text = feedback.student_feedback(book, points, "ana")
    assert "- PASS `double`: 2/2 points" in text and "points: **3.5/6**" in text


def test_gradescope_results_json_shape(book):
    results = lms.gradescope_results(book, lms.Points(), "ben")
    assert results["score"] == 1
    assert results["visibility"] == "visible" and results["stdout_visibility"] == "hidden"
    tests = {t["name"]: t for t in results["tests"]}
    assert set(tests) == {
        "01_fake double",
        "01_fake triple",
        "01_fake quad (optional)",
        "02_other greet",
    }
    for test in tests.values():
        assert set(test) == {"name", "score", "max_score", "status", "output", "visibility"}
        assert test["status"] in ("passed", "failed") and test["visibility"] == "visible"
    assert tests["02_other greet"] == {
        "name": "02_other greet",
        "score": 1.0,
        "max_score": 1.0,
        "status": "passed",
        "output": "PASSED greet",
        "visibility": "visible",
    }
    assert tests["01_fake triple"]["output"] == "TIMEOUT: the check did not finish in 4 s"
    assert tests["01_fake quad (optional)"]["max_score"] == 0
    assert SECRET not in json.dumps(results)
    assert "cell 2 did not finish" in results["output"]
    assert "quad" not in json.dumps(lms.gradescope_results(book, lms.Points(), "ana")["output"])


def test_gradescope_files_are_valid_json_per_student(book, tmp_path):
    names = reports.file_names(book.students)
    written = lms.write_gradescope(book, lms.Points(), tmp_path / "gradescope", names)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "gradescope/ana/results.json",
        "gradescope/ben/results.json",
    ]
    assert json.loads(written[0].read_text(encoding="utf-8"))["score"] == 2
    (tmp_path / "gradescope" / "ben" / "results.json").unlink()
    (tmp_path / "gradescope" / "ben").rmdir()
    (tmp_path / "gradescope" / "ben").symlink_to(tmp_path)  # never written through
    with pytest.raises(CourseError, match="not a folder the grader made"):
        lms.write_gradescope(book, lms.Points(), tmp_path / "gradescope", names)
    assert not (tmp_path / "results.json").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"doubel": 2}', "unknown exercise 'doubel'; the exercises are: double, greet, quad"),
        ('{"double": -1}', "points for 'double' must be a number from 0 to 1000, got -1"),
        ('{"double": true}', "must be a number from 0 to 1000, got True"),
        ('{"double": 2', "is not valid JSON"),
        ("[1, 2]", "expected a table of exercise -> points"),
    ],
)
def test_a_bad_points_file_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "points.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CourseError, match=None) as info:
        lms.load_points(path, REGISTRY)
    assert message in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CourseError, match="cannot read --points"):
        lms.load_points(tmp_path / "absent.json", REGISTRY)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is Python 3.11+")
def test_points_in_toml(tmp_path):
    path = tmp_path / "points.toml"
    path.write_text('double = 2\n"01_fake/quad" = 1\n', encoding="utf-8")
    points = lms.load_points(path, REGISTRY)
    assert points.table == {"double": 2.0, "01_fake/quad": 1.0}
    path.write_text("double = \n", encoding="utf-8")
    with pytest.raises(CourseError, match="is not valid TOML"):
        lms.load_points(path, REGISTRY)


def test_toml_on_python_3_10_says_to_use_json(tmp_path, monkeypatch):
    path = tmp_path / "points.toml"
    path.write_text("double = 2\n", encoding="utf-8")
    monkeypatch.setattr(lms.sys, "version_info", (3, 10, 12))
    with pytest.raises(CourseError, match="TOML needs Python 3.11 or newer; write it as JSON"):
        lms.load_points(path, REGISTRY)


# ----------------------------------------------------------------- where the reports go


def test_reports_never_overlap_the_submissions_folder(tmp_path):
    subs = tmp_path / "class"
    subs.mkdir()
    with pytest.raises(CourseError, match="overlaps the submissions folder"):
        reports.prepare(tmp_path / "gradebook.csv", tmp_path / "feedback", None, REGISTRY)
    with pytest.raises(CourseError, match="overlaps the submissions folder"):
        reports.prepare(subs / "feedback" / "x.csv", subs, None, REGISTRY)
    (tmp_path / "canvas.csv").mkdir()
    with pytest.raises(CourseError, match="exists and is not a file"):
        reports.prepare(tmp_path / "gradebook.csv", subs, None, REGISTRY)
    (tmp_path / "canvas.csv").rmdir()
    (tmp_path / "gradescope").symlink_to(subs)
    with pytest.raises(CourseError, match="overlaps the submissions folder"):
        reports.prepare(tmp_path / "gradebook.csv", subs, None, REGISTRY)
    (tmp_path / "gradescope").unlink()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "gradescope").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CourseError, match="exists and is not a folder"):
        reports.prepare(tmp_path / "gradebook.csv", subs, None, REGISTRY)


def test_outputs_write_everything_next_to_the_gradebook(book, tmp_path):
    outputs = reports.prepare(tmp_path / "gradebook.csv", tmp_path / "subs", None, REGISTRY)
    outputs.references = {}
    written = outputs.write(book)
    assert [p.name for p in written] == ["feedback", "canvas.csv", "gradescope", "similarity.md"]
    assert sorted(p.name for p in (tmp_path / "feedback").iterdir()) == ["ana.md", "ben.md"]
    assert (tmp_path / "gradescope" / "ben" / "results.json").is_file()
    # the notebooks of these records do not exist: nothing to compare, nothing lost
    text = (tmp_path / "similarity.md").read_text(encoding="utf-8")
    assert "No pair of students" in text


# ----------------------------------------------------------------------- end to end (bwrap)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (bwrap)")
def test_a_tiny_class_end_to_end(tmp_path, monkeypatch, capsys):
    """Two students, one lesson of the fake course: every report, and a bad --points first."""
    import shared.grading.extract as extract
    import shared.grading.grade as grade
    from shared.__main__ import main
    from tests.gradefake import CHECKS, REFERENCE, SOLVED, STUB, write_notebook

    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "gradefake_checks.py").write_text(CHECKS, encoding="utf-8")
    (helpers / "gradefake_ref.py").write_text(REFERENCE, encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.syspath_prepend(str(helpers))
    monkeypatch.setenv("GPT_COURSE_DATA_DIR", str(data))
    monkeypatch.setattr(grade, "CHECKS_MODULE", "gradefake_checks")
    monkeypatch.setattr(extract, "REFERENCE_PACKAGES", ["shared", "gradefake_ref"])
    root, out = tmp_path / "subs", tmp_path / "grades" / "gradebook.csv"
    write_notebook(root / "ana" / "01_fake.ipynb", SOLVED)
    grades = out.parent
    plant = (  # the reports' paths, from inside the sandbox: not there to write or link
        "import os\nfor p in PATHS:\n    try:\n        os.makedirs(os.path.dirname(p), exist_ok=True)\n"
        "        open(p, 'w').write('vandal')\n    except OSError:\n        pass\n"
        "try:\n    os.symlink('/tmp', GS)\nexcept OSError:\n    pass"
    )
    paths = [str(grades / "canvas.csv"), str(grades / "feedback" / "ana.md")]
    plant = plant.replace("PATHS", repr(paths)).replace("GS", repr(str(grades / "gradescope")))
    write_notebook(root / "ben" / "01_fake.ipynb", [*STUB, "1 / 0", plant])
    bad = tmp_path / "points.json"
    bad.write_text('{"dobule": 2}', encoding="utf-8")
    assert main(["grade", str(root), "--out", str(out), "--points", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --points") and "unknown exercise 'dobule'" in err
    assert err.count("\n") == 1 and not list(out.parent.glob("*"))  # nothing graded yet
    good = tmp_path / "points.json"
    good.write_text('{"double": 2}', encoding="utf-8")
    args = ["grade", str(root), "--out", str(out), "--points", str(good), "--timeout", "20"]
    assert main([*args, "--jobs", "2"]) == 0
    assert "similarity.md" in capsys.readouterr().out
    assert not (grades / "gradescope").is_symlink()
    for path in grades.rglob("*"):
        assert path.is_dir() or "vandal" not in path.read_text(encoding="utf-8"), path
    ben = (grades / "feedback" / "ben.md").read_text(encoding="utf-8")
    assert "[double] not implemented yet" in ben and "raised ZeroDivisionError" in ben
    rows = list(csv.reader((grades / "canvas.csv").open(encoding="utf-8", newline="")))
    assert rows[2] == ["ana", "", "", "ana", "", "4", "0"]  # 02_other not submitted
    assert rows[3] == ["ben", "", "", "ben", "", "0", "0"]
    ana = json.loads((grades / "gradescope" / "ana" / "results.json").read_text(encoding="utf-8"))
    assert ana["score"] == 4.0  # double 2 + triple 1 + book 1 (+ quad: optional, 0 points)
    assert (grades / "similarity.md").is_file()
    assert Path(root / "ana" / "01_fake.ipynb").is_file()  # nothing written among submissions
    assert sorted(p.name for p in (root / "ana").iterdir()) == ["01_fake.ipynb"]
