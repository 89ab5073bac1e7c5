"""Self-check and class gradebook: ``python -m shared check PATH``, ``python -m shared grade DIR``.

``check`` runs a learner's notebook(s) and prints, per exercise, pass/fail with the check's hint
(exit 0 only when every required exercise passes).

``grade SUBMISSIONS_DIR`` grades ``SUBMISSIONS_DIR/<student>/<NN_name>.ipynb`` for every lesson
in ``shared.checks.EXERCISES``: a CSV (everything), a Markdown summary next to it (to share)
and a student x lesson grid on screen. Each student's notebooks run in a bubblewrap sandbox of
that student's, emptied between notebooks, and every exercise is checked from the notebook's
own definition in a process that runs nothing else (``shared.grading.selfcheck``). Without
bwrap grading refuses, unless ``--no-sandbox``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from shared.engine.errors import CourseError
from shared.grading.submissions import (  # noqa: F401 - part of this module's API
    display_name,
    find_submissions,
    graded_lessons,
    package_fingerprint,
)

CHECKS_MODULE = "shared.checks"  # tests point it at a module of fake checks
MAX_TIMEOUT_S = 7 * 24 * 3600.0  # a week: anything longer is a typo
INTERRUPTED = "not graded: grading was interrupted (Ctrl-C)"


def default_registry(checks_module: str | None = None) -> dict:
    import importlib

    return importlib.import_module(checks_module or CHECKS_MODULE).EXERCISES


def run_tasks(
    tasks, *, sandbox: bool, checks_module: str, data_dir=None, notes=None, **options
) -> dict:
    """Grade ``tasks`` in sandboxes built for this run; a private scratch folder is removed.

    ``notes`` (a list) receives what the instructor should know about the sandbox itself."""
    from shared.engine.config import default_data_dir
    from shared.grading.checker import JudgeServer
    from shared.grading.extract import REFERENCE_PACKAGES
    from shared.grading.sandbox import make_sandbox
    from shared.grading.selfcheck import run_notebooks, usable_cores

    scratch = tempfile.mkdtemp(prefix="gpt-course-grade-")
    try:
        os.chmod(scratch, 0o700)
        modules = ["shared", checks_module.split(".")[0], *REFERENCE_PACKAGES]
        modules = list(dict.fromkeys(modules))
        needed = (checks_module, "ipykernel") if options.get("run_notebook", True) else ()
        box = make_sandbox(
            modules,
            Path(data_dir or default_data_dir()),
            Path(scratch),
            enabled=sandbox,
            probe_modules=needed or (checks_module,),
        )
        if notes is not None:
            notes.extend(box.notes)
        jobs = options.get("jobs") or usable_cores()
        box.threads = max(1, usable_cores() // jobs)  # every sandbox running at once gets its share
        judge = JudgeServer(box, checks_module)  # the checks imported once for the whole run
        try:
            return run_notebooks(
                tasks,
                sandbox=box,
                scratch=scratch,
                checks_module=checks_module,
                judge=judge,
                **options,
            )
        finally:
            judge.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def grade_class(
    root: Path,
    registry: dict | None = None,
    *,
    timeout: float = 120,
    total: float = 900,
    jobs: int = 0,
    checks_module: str | None = None,
    sandbox: bool = True,
    run_notebook: bool = True,
    data_dir: Path | None = None,
    progress: bool = False,
    cache: Path | None = None,
):
    """Grade every student's notebooks; missing lessons get ``missing`` rows.

    ``cache``: a JSON file of earlier reports by notebook content (``shared.grading.gradecache``):
    a notebook graded before, unchanged, is not graded again.

    Ctrl-C stops grading: the book comes back with what finished and ``interrupted`` set.
    """
    from shared.grading.gradebook import Gradebook
    from shared.grading.gradecache import ReportCache
    from shared.grading.selfcheck import Interrupted, report_for_all

    checks_module = checks_module or CHECKS_MODULE
    registry = default_registry(checks_module) if registry is None else registry
    students, found, notes = find_submissions(Path(root), registry)
    lessons = graded_lessons(registry)
    tasks = [(key, path, key[1], registry[key[1]]) for key, path in found.items() if path]
    before = package_fingerprint()
    salt = json.dumps([before, checks_module, timeout, total, run_notebook])
    store = ReportCache(cache, salt)
    keys = {task[0]: store.key(task[1], task[2], task[3]) for task in tasks}
    cached = {k: r for k in keys if (r := store.get(keys[k], found[k])) is not None}
    tasks = [task for task in tasks if task[0] not in cached]
    if cached:
        notes.append(f"{len(cached)} unchanged notebooks: earlier results reused ({cache.name})")
    interrupted = False
    try:
        reports = run_tasks(
            tasks,
            sandbox=sandbox,
            checks_module=checks_module,
            data_dir=data_dir,
            jobs=jobs,
            timeout=timeout,
            total=total,
            run_notebook=run_notebook,
            notes=notes,
            progress=progress,
        )
    except Interrupted as exc:
        reports, interrupted = exc.args[0], True
        notes.append("grading was interrupted (Ctrl-C): this gradebook is incomplete")
    for key, report in reports.items():
        store.put(keys.get(key), report)
    reports.update(cached)
    store.save({k for k in keys.values() if k})
    if package_fingerprint() != before:
        notes.append(
            "WARNING: the installed course package changed while grading; results may not be "
            "trustworthy: reinstall it"
        )
    for student in students:
        for lesson in lessons:
            key = (student, lesson)
            if key in reports:
                continue
            if key not in found:
                status, message = "missing", f"no {lesson}.ipynb submitted"
            elif found[key] is None:
                status, message = "error", f"{lesson}.ipynb is a symbolic link (not followed)"
            else:
                status, message = "error", INTERRUPTED
            reports[key] = report_for_all(lesson, "", registry[lesson], status, message)
    return Gradebook(students, lessons, reports, notes, interrupted)


def check_paths(
    path: Path,
    registry: dict | None = None,
    *,
    timeout: float = 120,
    total: float = 900,
    jobs: int = 0,
    checks_module: str | None = None,
    sandbox: bool = True,
):
    """Self-check one notebook or every lesson notebook in a folder."""
    from shared.grading.selfcheck import Interrupted

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
    tasks = [(p, p.resolve(), p.stem, registry[p.stem]) for p in notebooks if registry[p.stem]]
    try:
        done = run_tasks(
            tasks,
            sandbox=sandbox,
            checks_module=checks_module,
            jobs=jobs,
            timeout=timeout,
            total=total,
        )
    except Interrupted:
        raise KeyboardInterrupt from None
    return [done[key] for key, *_ in tasks]


def format_check(reports) -> str:
    from shared.grading.gradebook import LABELS

    lines = []
    for report in reports:
        lines.append(f"{Path(report.path).name}")
        for r in report.results:
            message = (r.message or "").removeprefix(
                f"[{r.exercise}] "
            )  # the name is printed first
            hint = f": {message}" if message and r.status != "pass" else ""
            optional = " (optional)" if r.optional else ""
            lines.append(f"  {LABELS[r.status]:<7} {r.exercise}{optional}{hint}")
        lines.extend(f"  note: {note}" for note in report.notes)
        lines.extend(f"  review: {flag}" for flag in report.flags)
    results = [r for report in reports for r in report.results if not r.optional]
    passed = sum(r.status == "pass" for r in results)
    lines.append(f"{passed}/{len(results)} required exercises pass")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ CLI


def _validate(args) -> None:
    import math

    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise CourseError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if not math.isfinite(args.notebook_timeout) or args.notebook_timeout <= 0:
        raise CourseError(
            f"--notebook-timeout must be a positive number of seconds, got {args.notebook_timeout:g}"
        )
    if args.jobs < 0:
        raise CourseError(f"--jobs must be 0 (one per core) or more, got {args.jobs}")
    if args.no_sandbox:
        print("warning: --no-sandbox: student code runs unconfined, with your permissions")


def validate_out(out: Path, submissions: Path) -> tuple[Path, Path]:
    """The CSV and Markdown paths, checked before any grading starts."""
    if out.suffix.lower() != ".csv":
        raise CourseError(f"--out must name a .csv file (the .md goes next to it), got {out}")
    resolved = out.resolve()
    if resolved.is_relative_to(submissions.resolve()):
        raise CourseError(f"--out {out} is inside the submissions folder; write it elsewhere")
    if out.exists() and not out.is_file():
        raise CourseError(f"--out {out} exists and is not a file")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as exc:
        raise CourseError(
            f"cannot write to {out.parent} ({exc.strerror}); pick another --out"
        ) from None
    return out, out.with_suffix(".md")


def _cmd_check(args) -> int:
    from shared.grading.sandbox import find_bwrap

    _validate(args)
    sandbox = not args.no_sandbox
    if sandbox and find_bwrap() is None:  # your own notebook: a sandbox is nice, not needed
        print("note: bubblewrap (bwrap) not found: checking without a sandbox")
        sandbox = False
    reports = check_paths(
        Path(args.path),
        timeout=args.timeout,
        total=args.notebook_timeout,
        jobs=args.jobs,
        sandbox=sandbox,
    )
    print(format_check(reports))
    required = [r for rep in reports for r in rep.results if not r.optional]
    return 0 if all(r.status == "pass" for r in required) else 1


def _cmd_grade(args) -> int:
    from shared.grading.gradebook import format_grid, write_csv, write_markdown
    from shared.grading.reports import prepare as prepare_reports

    _validate(args)
    submissions = Path(args.submissions)
    out, md = validate_out(Path(args.out), submissions)
    reports = prepare_reports(out, submissions, args.points, default_registry())
    book = grade_class(
        submissions,
        timeout=args.timeout,
        total=args.notebook_timeout,
        jobs=args.jobs,
        sandbox=not args.no_sandbox,
        run_notebook=not args.no_run,
        progress=True,
        cache=None if args.no_cache else out.with_name(out.stem + ".cache.json"),
    )
    write_csv(book, out)
    write_markdown(book, md)
    written = reports.write(book)  # after every sandbox ended
    print(format_grid(book))
    for note in book.notes:
        print(f"note: {note}")
    flagged = sorted({student for (student, _), report in book.reports.items() if report.flags})
    if flagged:
        print(f"review: code worth a look (see {md.name}): {', '.join(flagged)}")
    print(f"wrote {out}, {md}, " + ", ".join(map(str, written)))
    if book.interrupted:
        return 130
    graded = [r for rep in book.reports.values() for r in rep.results if r.status != "missing"]
    if graded and all(r.status == "error" for r in graded):
        print(
            f"error: every exercise ended in an error, so nothing was graded: read the messages in "
            f"{out.name}, fix the cause and grade again",
            file=sys.stderr,
        )
        return 1
    return 0


def _common(parser) -> None:
    from shared.course.cli_types import number, positive

    jobs_help = "notebooks graded in parallel (default: 0, one per usable core)"
    parser.add_argument(
        "--timeout",
        type=positive(float, MAX_TIMEOUT_S),
        default=120,
        help="seconds per cell and per check (default 120)",
    )
    parser.add_argument(
        "--notebook-timeout",
        type=positive(float, MAX_TIMEOUT_S),
        default=900,
        help="seconds per notebook run in all (default 900)",
    )
    parser.add_argument(
        "--jobs", type=number(int, 0, 1024, low_inclusive=True), default=0, help=jobs_help
    )
    parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run without bubblewrap: student code gets your permissions (trusted notebooks only)",
    )


def add_cli(subparsers) -> None:
    from shared.grading.reports import add_options as add_report_options

    check = subparsers.add_parser(
        "check", help="self-check a lesson notebook (or a folder of them)"
    )
    check.add_argument("path", help="a lesson notebook, e.g. lessons/01_data.ipynb, or a folder")
    _common(check)
    check.set_defaults(func=_cmd_check)
    grade = subparsers.add_parser(
        "grade", help="grade a class: SUBMISSIONS_DIR/<student>/<NN_name>.ipynb"
    )
    grade.add_argument("submissions", help="folder with one sub-folder of notebooks per student")
    grade.add_argument(
        "--out", default="gradebook.csv", help="CSV to write (Markdown summary next to it)"
    )
    grade.add_argument(
        "--no-run",
        action="store_true",
        help="only check the definitions, do not run the notebooks (faster; no notes on failing cells)",
    )
    grade.add_argument(
        "--no-cache",
        action="store_true",
        help="grade every notebook again (default: unchanged notebooks keep their results, "
        "kept next to --out: gradebook.cache.json for gradebook.csv)",
    )
    _common(grade)
    add_report_options(grade)  # --points
    grade.set_defaults(func=_cmd_grade)
