"""The class gradebook: the on-screen grid, the CSV (everything) and the Markdown (to share).

Totals count the required exercises only; optional (stretch) exercises are graded and listed
as ``+N opt`` (how many passed) beside the lesson's score. Messages copied into the Markdown are
cut and scrubbed (values of the grader's environment variables, its home folder); the CSV keeps
the full text for the instructor.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from shared.grading.selfcheck import NotebookReport, short

# How each status reads on screen (`check`, the grid) and in feedback/<student>.md.
LABELS = {
    "pass": "PASS",
    "fail": "FAIL",
    "error": "ERROR",
    "timeout": "TIMEOUT",
    "missing": "MISSING",
}

CSV_COLUMNS = ["student", "lesson", "exercise", "optional", "status", "message"]
MARKDOWN_MESSAGE_CHARS = 200


@dataclass
class Gradebook:
    students: list[str]
    lessons: list[str]  # lessons with at least one exercise, in course order
    reports: dict[tuple[str, str], NotebookReport]  # (student, lesson) -> report
    notes: list[str] = field(default_factory=list)  # ignored files, interruptions...
    interrupted: bool = False

    def rows(self) -> list[dict[str, str]]:
        return [
            dict(
                student=student,
                lesson=lesson,
                exercise=r.exercise,
                optional="yes" if r.optional else "",
                status=r.status,
                message=r.message,
            )
            for student in self.students
            for lesson in self.lessons
            for r in self.reports[student, lesson].results
        ]

    def cell(self, student: str, lesson: str) -> str:
        """``passed/required`` (+ ``+N opt``); ``-`` when missing; ``*`` on error or timeout."""
        results = self.reports[student, lesson].results
        if all(r.status == "missing" for r in results):
            return "-"
        required = [r for r in results if not r.optional]
        passed = sum(r.status == "pass" for r in required)
        trouble = any(r.status in ("error", "timeout") for r in results)
        text = f"{passed}/{len(required)}" + ("*" if trouble else "")
        optional = [r for r in results if r.optional]
        if optional:
            text += f" +{sum(r.status == 'pass' for r in optional)} opt"
        return text

    def total(self, student: str) -> str:
        results = [
            r
            for lesson in self.lessons
            for r in self.reports[student, lesson].results
            if not r.optional
        ]
        return f"{sum(r.status == 'pass' for r in results)}/{len(results)}"

    @property
    def has_optional(self) -> bool:
        return any(r.optional for report in self.reports.values() for r in report.results)


def format_grid(book: Gradebook) -> str:
    header = ["student", *book.lessons, "total"]
    rows = [
        [s, *(book.cell(s, lesson) for lesson in book.lessons), book.total(s)]
        for s in book.students
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    lines.append(legend(book))
    return "\n".join(lines)


def legend(book: Gradebook) -> str:
    text = "(passed/required per lesson; - = not submitted; * = an error or timeout, see the CSV"
    if book.has_optional:
        text += "; +N opt = optional exercises passed, not counted in the totals"
    return text + ")"


def scrub(text: str, limit: int = MARKDOWN_MESSAGE_CHARS) -> str:
    """A message fit to share: no value of the grader's environment, no home path, short."""
    for key, value in sorted(os.environ.items(), key=lambda kv: -len(kv[1])):
        if len(value) >= 6 and value in text:
            text = text.replace(value, f"${key}")
    home = str(Path.home())
    if len(home) > 1:
        text = text.replace(home, "~")
    return short(text, limit)


def write_atomic(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: never half a file."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            write(handle)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_csv(book: Gradebook, path: Path) -> None:
    def write(handle):
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(book.rows())

    write_atomic(path, write)


def write_markdown(book: Gradebook, path: Path) -> None:
    write_atomic(path, lambda handle: handle.write(markdown_summary(book)))


def markdown_summary(book: Gradebook) -> str:
    def esc(text: str) -> str:
        return scrub(text, 500).replace("|", "\\|").replace("*", "\\*").replace("`", "'")

    def msg(text: str) -> str:
        return esc(scrub(text))

    lines = ["# Gradebook", ""]
    if book.interrupted:
        lines += ["**Grading was interrupted: this gradebook is incomplete.**", ""]
    lines += ["| student | " + " | ".join(book.lessons) + " | total |"]
    lines.append("|" + " --- |" * (len(book.lessons) + 2))
    for s in book.students:
        cells = [book.cell(s, lesson) for lesson in book.lessons]
        lines.append(f"| {esc(s)} | " + " | ".join(cells) + f" | {book.total(s)} |")
    lines += [
        "",
        "`3/4` = required exercises passed; `-` = not submitted; `*` = an error or timeout.",
    ]
    if book.has_optional:
        lines.append(
            "`+1 opt` = optional (stretch) exercises passed: listed, but not in the totals."
        )
    lines += ["", "## Not passed", ""]
    problems = []
    for s in book.students:
        for lesson in book.lessons:
            all_results = book.reports[s, lesson].results
            results = [r for r in all_results if r.status not in ("pass", "missing")]
            same = len({(r.status, r.message) for r in results}) == 1
            if same and len(results) == len(all_results) > 1:
                r = results[0]
                problems.append(
                    f"- **{esc(s)}** {lesson} (all exercises): {r.status}: {msg(r.message)}"
                )
                continue
            problems += [
                f"- **{esc(s)}** {lesson} `{r.exercise}`{' (optional)' if r.optional else ''}: "
                f"{r.status}: {msg(r.message)}"
                for r in results
            ]
    lines += problems or ["Nothing: every submitted exercise passes."]
    review = [
        f"- **{esc(s)}** {lesson}: {msg(item)}"
        for (s, lesson), report in sorted(book.reports.items())
        for item in report.notes + [f"review: {flag}" for flag in report.flags]
    ]
    if review or book.notes:
        lines += ["", "## Notes", "", *review, *(f"- {msg(n)}" for n in book.notes)]
    return "\n".join(lines) + "\n"
