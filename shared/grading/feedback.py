"""A report to send each student: ``feedback/<student>.md`` next to the gradebook.

Per lesson and exercise: pass or fail, points, and the check's message (the same hint the
learner's own check cell prints), then the cells that raised or hung when the notebook ran.
Only what concerns that student, scrubbed like gradebook.md (no value of the grader's
environment, no home folder); the instructor's review flags and the class notes stay out.
"""

from __future__ import annotations

import re
from pathlib import Path

from shared.grading.gradebook import LABELS, Gradebook, scrub, write_atomic
from shared.grading.lms import Points, lesson_points, lesson_possible, number

MESSAGE_CHARS = 600


def escape(text: str) -> str:
    """Plain text in Markdown: no emphasis, links, tables or HTML from a name or message."""
    text = re.sub(r"([\\`*_{}\[\]()#+!|~])", r"\\\1", text)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def fenced(text: str, indent: str = "  ") -> list[str]:
    """``text`` verbatim in a code fence longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{indent}{fence}text", f"{indent}{text}", f"{indent}{fence}"]


def student_feedback(book: Gradebook, points: Points, student: str) -> str:
    earned = sum(lesson_points(book, points, student, lesson) for lesson in book.lessons)
    possible = sum(lesson_possible(book, points, lesson) for lesson in book.lessons)
    lines = [f"# Feedback: {escape(student)}", ""]
    if book.interrupted:
        lines += ["**Grading was interrupted: some lessons were not graded.**", ""]
    lines += [
        f"Required exercises passed: **{book.total(student)}**; "
        f"points: **{number(earned)}/{number(possible)}**.",
        "",
        "Each exercise is graded from your definition alone (your imports, helper functions, "
        "classes and constants), run by the same check as the lesson's check cell.",
    ]
    for lesson in book.lessons:
        lines += ["", *lesson_section(book, points, student, lesson)]
    return "\n".join(lines) + "\n"


def lesson_section(book: Gradebook, points: Points, student: str, lesson: str) -> list[str]:
    report = book.reports[student, lesson]
    results = report.results
    earned = number(lesson_points(book, points, student, lesson))
    possible = number(lesson_possible(book, points, lesson))
    if all(r.status == "missing" for r in results):
        return [
            f"## {lesson}: not submitted",
            "",
            f"No {lesson}.ipynb was graded: 0/{possible} points.",
        ]
    required = [r for r in results if not r.optional]
    optional = [r for r in results if r.optional]
    passed = f"{sum(r.status == 'pass' for r in required)}/{len(required)} required passed"
    if optional:
        passed += f", {sum(r.status == 'pass' for r in optional)}/{len(optional)} optional"
    lines = [f"## {lesson}: {passed} ({earned}/{possible} points)", ""]
    for r in results:
        worth = number(points.of(lesson, r))
        got = number(points.earned(lesson, r))
        kind = " (optional)" if r.optional else ""
        lines.append(f"- {LABELS[r.status]} `{r.exercise}`{kind}: {got}/{worth} points")
        if r.status != "pass" and r.message:
            lines += fenced(scrub(r.message, MESSAGE_CHARS))
    if report.notes:
        lines += ["", "When your notebook ran (this does not change the grade):", ""]
        lines += [f"- {escape(scrub(note))}" for note in report.notes]
    return lines


def write_feedback(book: Gradebook, points: Points, folder: Path, names: dict) -> list[Path]:
    """``folder/<name>.md`` per student (``names``: student -> safe file stem)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for student in book.students:
        path = folder / f"{names[student]}.md"
        text = student_feedback(book, points, student)
        write_atomic(path, lambda handle, t=text: handle.write(t))
        written.append(path)
    return written
