"""Grades an LMS takes: ``canvas.csv`` and ``gradescope/<student>/results.json``.

Points per exercise come from a small file (``grade --points FILE``), JSON or TOML, a flat
table of exercise name -> points (``"lesson/exercise"`` also works)::

    {"get_batch": 2, "head": 3, "get_lr": 1}

Unnamed exercises get 1 point when required and 0 when optional (stretch); an optional
exercise given points is extra credit (it adds to the score, never to the maximum).

Canvas: one row per student, one column per lesson (its points), the ``Points Possible`` row a
Canvas export has; the student folder's name goes in ``Student`` and ``SIS Login ID``.
Gradescope: the autograder's ``results.json`` (score, and per exercise a test with name,
score, max_score, status, output, visibility), one per student, with the same scrubbed
messages the student's feedback shows.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

from shared.engine.errors import CourseError
from shared.grading.gradebook import Gradebook, scrub, write_atomic

CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MAX_POINTS = 1000
OUTPUT_CHARS = 600  # a test's output: the check's hint, scrubbed


class Points:
    """Points per exercise: ``of(lesson, exercise)``; defaults 1 (required) and 0 (optional)."""

    def __init__(self, table: dict[str, float] | None = None):
        self.table = dict(table or {})

    def of(self, lesson: str, result) -> float:
        """Points of the exercise an ``ExerciseResult`` is for."""
        for key in (f"{lesson}/{result.exercise}", result.exercise):
            if key in self.table:
                return self.table[key]
        return 0.0 if result.optional else 1.0

    def earned(self, lesson: str, result) -> float:
        return self.of(lesson, result) if result.status == "pass" else 0.0

    def possible(self, lesson: str, result) -> float:
        """What the exercise adds to the maximum: nothing for optional (extra credit)."""
        return 0.0 if result.optional else self.of(lesson, result)


def load_points(path: str | Path | None, registry: dict) -> Points:
    """Read and check a points file against ``registry``; one clear ``CourseError`` if bad."""
    if path is None:
        return Points()
    path = Path(path)
    what = f"--points {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise CourseError(f"cannot read {what} ({why}); give a JSON or TOML file") from None
    table = _parse(text, path, what)
    known = {ex.name for exercises in registry.values() for ex in exercises}
    known |= {f"{lesson}/{ex.name}" for lesson, exercises in registry.items() for ex in exercises}
    for key, value in table.items():
        if key not in known:
            names = ", ".join(sorted(k for k in known if "/" not in k))
            raise CourseError(f"{what}: unknown exercise {key!r}; the exercises are: {names}")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or not 0 <= value <= MAX_POINTS:
            raise CourseError(
                f"{what}: points for {key!r} must be a number from 0 to {MAX_POINTS}, got {value!r}"
            )
    return Points({key: float(value) for key, value in table.items()})


def _parse(text: str, path: Path, what: str) -> dict:
    if path.suffix.lower() == ".toml":
        if sys.version_info < (3, 11):
            raise CourseError(f"{what}: TOML needs Python 3.11 or newer; write it as JSON")
        import tomllib

        try:
            table = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CourseError(f"{what} is not valid TOML ({exc})") from None
    else:
        try:
            table = json.loads(text)
        except ValueError as exc:
            raise CourseError(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(table, dict):
        raise CourseError(f'{what}: expected a table of exercise -> points, like {{"head": 2}}')
    return table


def lesson_points(book: Gradebook, points: Points, student: str, lesson: str) -> float:
    report = book.reports[student, lesson]
    return sum(points.earned(lesson, r) for r in report.results)


def lesson_possible(book: Gradebook, points: Points, lesson: str) -> float:
    report = book.reports[book.students[0], lesson] if book.students else None
    return sum(points.possible(lesson, r) for r in report.results) if report else 0.0


def number(value: float) -> str:
    """``2`` for 2.0, ``1.5`` for 1.5: what a gradebook cell shows."""
    return f"{value:g}"


def write_canvas(book: Gradebook, points: Points, path: Path) -> None:
    def write(handle):
        writer = csv.writer(handle)
        writer.writerow([*CANVAS_COLUMNS, *book.lessons])
        possible = [number(lesson_possible(book, points, lesson)) for lesson in book.lessons]
        writer.writerow(["    Points Possible", "", "", "", "", *possible])
        for student in book.students:
            scores = [
                number(lesson_points(book, points, student, lesson)) for lesson in book.lessons
            ]
            writer.writerow([student, "", "", student, "", *scores])

    write_atomic(path, write)


def gradescope_results(book: Gradebook, points: Points, student: str) -> dict:
    """Gradescope's autograder ``results.json`` for one student (visible to them)."""
    tests, notes = [], []
    for lesson in book.lessons:
        report = book.reports[student, lesson]
        for r in report.results:
            output = scrub(r.message, OUTPUT_CHARS)
            if r.status != "pass":
                output = f"{r.status.upper()}: {output}" if output else r.status.upper()
            tests.append(
                {
                    "name": f"{lesson} {r.exercise}" + (" (optional)" if r.optional else ""),
                    "score": points.earned(lesson, r),
                    "max_score": points.possible(lesson, r),
                    "status": "passed" if r.status == "pass" else "failed",
                    "output": output,
                    "visibility": "visible",
                }
            )
        notes += [f"{lesson}: {scrub(note)}" for note in report.notes]
    results = {
        "score": sum(t["score"] for t in tests),
        "output": "\n".join(["Notes from running your notebooks:", *notes]) if notes else "",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }
    if not notes:
        del results["output"]
    return results


def write_gradescope(book: Gradebook, points: Points, folder: Path, names: dict) -> list[Path]:
    """``folder/<name>/results.json`` per student (``names``: student -> safe folder name)."""
    written = []
    for student in book.students:
        target = folder / names[student]
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise CourseError(f"{target} is not a folder the grader made; move it away")
        target.mkdir(parents=True, exist_ok=True)
        path = target / "results.json"
        results = gradescope_results(book, points, student)
        write_atomic(path, lambda h, r=results: h.write(json.dumps(r, indent=2) + "\n"))
        written.append(path)
    return written
