"""Self-check and class gradebook: ``python -m shared check PATH``, ``python -m shared grade DIR``.

``check`` runs a learner's notebook(s) in a fresh kernel and prints, per exercise, pass/fail
with the check's hint (exit 0 only when everything passes).

``grade SUBMISSIONS_DIR`` grades ``SUBMISSIONS_DIR/<student>/<NN_name>.ipynb`` for every
lesson in ``shared.checks.EXERCISES``; it writes a CSV (student, lesson, exercise, status,
message), a Markdown summary next to it, and prints a student x lesson grid. Each notebook runs
in its own kernel and temporary folder (see ``shared.course.selfcheck``), with the installed checks,
never the notebook's own check cells.

Grading executes student code: run it in a container or as a restricted user (README).
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import CourseError

if TYPE_CHECKING:  # nbformat/nbclient cost seconds to import: load them only to grade
    from shared.course.selfcheck import NotebookReport

CSV_COLUMNS = ["student", "lesson", "exercise", "status", "message"]
LABELS = {
    "pass": "PASS",
    "fail": "FAIL",
    "error": "ERROR",
    "timeout": "TIMEOUT",
    "missing": "MISSING",
}


# The module whose EXERCISES and check_* functions grading uses; tests point it at fake checks.
CHECKS_MODULE = "shared.checks"


def default_registry(checks_module: str | None = None) -> dict:
    import importlib

    return importlib.import_module(checks_module or CHECKS_MODULE).EXERCISES


@dataclass
class Gradebook:
    students: list[str]
    lessons: list[str]  # lessons with at least one exercise, in course order
    reports: dict[tuple[str, str], NotebookReport]  # (student, lesson) -> report
    notes: list[str] = field(default_factory=list)  # ignored files etc.

    def rows(self) -> list[dict[str, str]]:
        rows = []
        for student in self.students:
            for lesson in self.lessons:
                for result in self.reports[student, lesson].results:
                    rows.append(
                        dict(
                            student=student,
                            lesson=lesson,
                            exercise=result.exercise,
                            status=result.status,
                            message=result.message,
                        )
                    )
        return rows

    def cell(self, student: str, lesson: str) -> str:
        """Grid entry: ``passed/total``; ``-`` when missing; ``*`` when an error or timeout."""
        results = self.reports[student, lesson].results
        if all(r.status == "missing" for r in results):
            return "-"
        passed = sum(r.status == "pass" for r in results)
        trouble = any(r.status in ("error", "timeout") for r in results)
        return f"{passed}/{len(results)}" + ("*" if trouble else "")

    def total(self, student: str) -> str:
        results = [r for lesson in self.lessons for r in self.reports[student, lesson].results]
        return f"{sum(r.status == 'pass' for r in results)}/{len(results)}"


# ------------------------------------------------------------------------------ discovery


def graded_lessons(registry: dict) -> list[str]:
    return [lesson for lesson, exercises in registry.items() if exercises]


def find_submissions(root: Path, registry: dict) -> tuple[list[str], dict, list[str]]:
    """Students (sub-folders), {(student, lesson): path}, and notes about ignored files."""
    if not root.exists():
        raise CourseError(
            f"submissions folder {root} does not exist; expected DIR/<student>/<NN_name>.ipynb"
        )
    if not root.is_dir():
        raise CourseError(f"{root} is not a folder; expected DIR/<student>/<NN_name>.ipynb")
    lessons = set(graded_lessons(registry))
    if not lessons:
        raise CourseError(
            "no lesson has registered exercises yet (shared.checks.EXERCISES is empty)"
        )
    students, found, notes = [], {}, []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if not entry.is_dir():
            notes.append(f"ignored {entry.name}: not a student folder")
            continue
        students.append(entry.name)
        for item in sorted(entry.iterdir()):
            if item.is_file() and item.suffix == ".ipynb" and item.stem in lessons:
                found[entry.name, item.stem] = item
            elif not item.name.startswith("."):
                notes.append(f"ignored {entry.name}/{item.name}: not a lesson notebook name")
    if not students:
        raise CourseError(f"no student folders in {root}; expected DIR/<student>/<NN_name>.ipynb")
    return students, found, notes


def package_fingerprint() -> str:
    """Hash of the installed course package; grading refuses results if a notebook changed it."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode("utf-8"))
        digest.update(path.read_bytes())
    return digest.hexdigest()


def grade_class(
    root: Path,
    registry: dict | None = None,
    *,
    timeout: float = 120,
    jobs: int = 0,
    checks_module: str | None = None,
) -> Gradebook:
    """Grade every student's notebooks; missing lessons get ``missing`` rows."""
    checks_module = checks_module or CHECKS_MODULE
    registry = default_registry(checks_module) if registry is None else registry
    root = Path(root)
    students, found, notes = find_submissions(root, registry)
    lessons = graded_lessons(registry)
    tasks = [(path, lesson, registry[lesson]) for (student, lesson), path in found.items()]
    before = package_fingerprint()
    from shared.course.selfcheck import report_for_all, run_notebooks

    reports = run_notebooks(tasks, jobs=jobs, timeout=timeout, checks_module=checks_module)
    if package_fingerprint() != before:  # a warning, not an error: authors edit while testing
        notes.append(
            "WARNING: the installed course package changed while grading (did a notebook write "
            "to it?); results may not be trustworthy: reinstall it and grade in a container"
        )
    by_key = dict(zip(found.keys(), reports, strict=True))
    for student in students:
        for lesson in lessons:
            if (student, lesson) not in by_key:
                message = f"no {lesson}.ipynb submitted"
                by_key[student, lesson] = report_for_all(
                    lesson, "", registry[lesson], "missing", message
                )
    return Gradebook(students, lessons, by_key, notes)


# -------------------------------------------------------------------------------- reports


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
    lines.append(
        "(passed/total per lesson; - = not submitted; * = an error or timeout, see the CSV)"
    )
    return "\n".join(lines)


def write_csv(book: Gradebook, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(book.rows())


def markdown_summary(book: Gradebook) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["# Gradebook", "", "| student | " + " | ".join(book.lessons) + " | total |"]
    lines.append("|" + " --- |" * (len(book.lessons) + 2))
    for s in book.students:
        cells = [book.cell(s, lesson) for lesson in book.lessons]
        lines.append(f"| {esc(s)} | " + " | ".join(cells) + f" | {book.total(s)} |")
    lines += ["", "`3/4` = exercises passed; `-` = not submitted; `*` = an error or timeout.", ""]
    lines += ["## Not passed", ""]
    problems = []
    for s in book.students:
        for lesson in book.lessons:
            results = [
                r for r in book.reports[s, lesson].results if r.status not in ("pass", "missing")
            ]
            same = len({(r.status, r.message) for r in results}) == 1
            if same and len(results) == len(book.reports[s, lesson].results) > 1:
                problems.append(
                    f"- **{esc(s)}** {lesson} (all exercises): "
                    f"{results[0].status}: {esc(results[0].message)}"
                )
                continue
            problems += [
                f"- **{esc(s)}** {lesson} `{r.exercise}`: {r.status}: {esc(r.message)}"
                for r in results
            ]
    lines += problems
    if not problems:
        lines.append("Nothing: every submitted exercise passes.")
    review = [
        f"- **{esc(s)}** {lesson}: {esc(item)}"
        for (s, lesson), report in sorted(book.reports.items())
        for item in report.notes + [f"review: {f}" for f in report.flags]
    ]
    if review or book.notes:
        lines += ["", "## Notes", "", *review, *(f"- {esc(n)}" for n in book.notes)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ CLI


def check_paths(
    path: Path,
    registry: dict | None = None,
    *,
    timeout: float = 120,
    jobs: int = 0,
    checks_module: str | None = None,
) -> list[NotebookReport]:
    """Self-check one notebook or every lesson notebook in a folder."""
    checks_module = checks_module or CHECKS_MODULE
    registry = default_registry(checks_module) if registry is None else registry
    path = Path(path)
    if path.is_dir():
        notebooks = sorted(p for p in path.glob("*.ipynb") if p.stem in registry)
        if not notebooks:
            raise CourseError(f"no lesson notebooks (NN_name.ipynb) in {path}")
    elif path.is_file():
        if path.stem not in registry:
            known = ", ".join(registry)
            raise CourseError(
                f"{path.name} is not a lesson notebook; its name must be one of: {known}"
            )
        notebooks = [path]
    else:
        raise CourseError(f"{path} does not exist; pass a lesson notebook or a folder of them")
    tasks = [(p, p.stem, registry[p.stem]) for p in notebooks if registry[p.stem]]
    from shared.course.selfcheck import run_notebooks

    return run_notebooks(tasks, jobs=jobs, timeout=timeout, checks_module=checks_module)


def format_check(reports: list[NotebookReport]) -> str:
    lines = []
    for report in reports:
        lines.append(f"{Path(report.path).name}")
        for r in report.results:
            hint = f": {r.message}" if r.message and r.status != "pass" else ""
            lines.append(f"  {LABELS[r.status]:<7} {r.exercise}{hint}")
        lines.extend(f"  note: {note}" for note in report.notes)
    results = [r for report in reports for r in report.results]
    passed = sum(r.status == "pass" for r in results)
    lines.append(f"{passed}/{len(results)} exercises pass")
    return "\n".join(lines)


def _validate(args) -> None:
    if args.timeout <= 0:
        raise CourseError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.jobs < 0:
        raise CourseError(f"--jobs must be 0 (one per core) or more, got {args.jobs}")


def _cmd_check(args) -> int:
    _validate(args)
    reports = check_paths(Path(args.path), timeout=args.timeout, jobs=args.jobs)
    print(format_check(reports))
    return 0 if all(r.status == "pass" for rep in reports for r in rep.results) else 1


def _cmd_grade(args) -> int:
    _validate(args)
    book = grade_class(Path(args.submissions), timeout=args.timeout, jobs=args.jobs)
    out = Path(args.out)
    write_csv(book, out)
    md = out.with_suffix(".md")
    md.write_text(markdown_summary(book), encoding="utf-8")
    print(format_grid(book))
    for note in book.notes:
        print(f"note: {note}")
    flagged = sorted({student for (student, _), report in book.reports.items() if report.flags})
    if flagged:
        print(f"review: code worth a look (see {md.name}): {', '.join(flagged)}")
    print(f"wrote {out} and {md}")
    return 0


def add_cli(subparsers) -> None:
    jobs_help = f"notebooks run in parallel (default: {os.cpu_count() or 1}, the number of cores)"
    check = subparsers.add_parser(
        "check", help="self-check a lesson notebook (or a folder of them)"
    )
    check.add_argument("path", help="a lesson notebook, e.g. lessons/01_data.ipynb, or a folder")
    check.add_argument("--timeout", type=float, default=120, help="seconds per cell (default 120)")
    check.add_argument("--jobs", type=int, default=0, help=jobs_help)
    check.set_defaults(func=_cmd_check)
    grade = subparsers.add_parser(
        "grade", help="grade a class: SUBMISSIONS_DIR/<student>/<NN_name>.ipynb"
    )
    grade.add_argument("submissions", help="folder with one sub-folder of notebooks per student")
    grade.add_argument(
        "--out", default="gradebook.csv", help="CSV to write (Markdown summary next to it)"
    )
    grade.add_argument("--timeout", type=float, default=120, help="seconds per cell (default 120)")
    grade.add_argument("--jobs", type=int, default=0, help=jobs_help)
    grade.set_defaults(func=_cmd_grade)
