"""Grading a synthetic class: wall time per notebook and in all (issue #22), and what the judge
costs (issue #23).

A class of N students x 8 lessons is built from ``solutions/`` (solved), ``lessons/`` (stubs)
and realistic partial work (each exercise solved or left as the stub at random, one seed per
student), then graded with ``python -m shared grade`` and its default flags (notebooks run in
the sandbox, --jobs = usable cores), as an instructor would. Printed: the load average, wall
time in all and per notebook, and the extrapolation to 30 students (linear: the notebooks are
independent and run --jobs at a time, so time grows with their number).

``--compare REV`` grades the same class with the grader of git revision REV (a temporary
worktree, first on PYTHONPATH) and with today's, alternating, ``--rounds`` times: the ratio of
two runs on the same machine at the same load, and whether every grade is the same.
``--lessons N`` builds the class from the first N lessons only (the issue's 8).

``--judge-ratio`` also times the definitions' checks alone (no kernels), the same notebooks
through the grader's checker of before #23 (verdict inside the sandboxed process: ``git show
COMMIT:shared/course/checker.py``) and through today's (judge + worker), alternating, and prints
the after/before ratio: both measured in one run, on the same machine and load.

    python benchmarks/bench_grade.py --students 6
    python benchmarks/bench_grade.py --students 6 --compare cd75ba2 --rounds 1
    python benchmarks/bench_grade.py --students 2 --judge-ratio --no-grade
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.checks import EXERCISES  # noqa: E402
from shared.course.lessons import BEGIN, make_lesson, stub_source  # noqa: E402

BEFORE_23 = "99870e4"  # the last commit whose checker decided the verdict in the sandbox


def partial(solution: nbformat.NotebookNode, rng: random.Random, solved: float):
    """The solution with each exercise cell left as the stub with probability 1 - solved."""
    nb = nbformat.from_dict(solution)
    for cell in nb.cells:
        if cell.cell_type == "code" and BEGIN in cell.source and rng.random() > solved:
            cell.source = stub_source(cell.source)
    return nb


def build_class(root: Path, students: int, seed: int, lessons: list[str]) -> int:
    """students/<name>/<lesson>.ipynb: a third solved, a third stubs, a third partial work."""
    rng = random.Random(seed)
    count = 0
    for index in range(students):
        kind = ("solved", "stub", "partial")[index % 3]
        folder = root / f"student{index:02d}_{kind}"
        folder.mkdir(parents=True)
        for lesson in lessons:
            solution = nbformat.read(ROOT / "solutions" / f"{lesson}.ipynb", as_version=4)
            if kind == "solved":
                nb = solution
            elif kind == "stub":
                nb = make_lesson(solution, lesson)
            else:
                nb = partial(solution, rng, solved=0.6)
            nbformat.write(nb, str(folder / f"{lesson}.ipynb"))
            count += 1
    return count


def grade(submissions: Path, out: Path, extra: list[str], cwd: Path = ROOT, env=None) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "shared", "grade", str(submissions), "--out", str(out), *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"grade failed ({result.returncode}):\n{result.stderr[-2000:]}")
    print(result.stdout.strip().splitlines()[-1])
    return elapsed


def statuses(csv_path: Path) -> list[tuple]:
    import csv

    with csv_path.open(encoding="utf-8", newline="") as handle:
        return [
            (r["student"], r["lesson"], r["exercise"], r["status"]) for r in csv.DictReader(handle)
        ]


def compare(submissions: Path, count: int, rev: str, rounds: int, extra: list[str]) -> None:
    """The same class graded by REV's grader and today's, alternating, ``rounds`` times."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    tree = scratch / "tree"
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", str(tree), rev], check=True,
                   capture_output=True)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree), "GPT_COURSE_DATA_DIR": str(ROOT / "data")}
    walls: dict[str, float] = {rev: 0.0, "today": 0.0}
    grades = {}
    extra = [*extra, "--no-cache"]
    try:
        for _ in range(rounds):
            for name, cwd, environment in ((rev, tree, env), ("today", ROOT, None)):
                out = scratch / name / "gradebook.csv"
                before = os.getloadavg()[0]
                wall = grade(submissions, out, extra, cwd, environment)
                walls[name] += wall
                grades[name] = statuses(out)
                print(f"  {name}: {wall:.0f} s, {wall / count:.2f} s per notebook "
                      f"(load {before:.2f} -> {os.getloadavg()[0]:.2f})", flush=True)  # fmt: skip
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(tree)], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    n = count * rounds
    same = "the same grade" if grades[rev] == grades["today"] else "DIFFERENT GRADES"
    print(
        f"compare: {rev} {walls[rev] / n:.2f} s per notebook, today {walls['today'] / n:.2f} s; "
        f"today/{rev} = {walls['today'] / walls[rev]:.2f}; {same} for all "
        f"{len(grades['today'])} exercises"
    )


def old_checker(scratch: Path):
    """The checker of before #23 as an importable module ``checker_before_23``."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE_23}:shared/course/checker.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    source = source.replace('"-m", "shared.course.checker"', '"-m", "checker_before_23"')
    folder = scratch / "old"
    folder.mkdir()
    (folder / "checker_before_23.py").write_text(source, encoding="utf-8")
    sys.path.insert(0, str(folder))
    import checker_before_23

    return checker_before_23


def judge_ratio(submissions: Path, students: int, rounds: int, checks_only: bool) -> None:
    """The same notebooks graded with the checker of before #23 and today's, alternating."""
    from unittest import mock

    import shared.grading.extract as extract
    import shared.grading.selfcheck as selfcheck
    from shared.grading.grade import grade_class

    scratch = Path(tempfile.mkdtemp(prefix="bench-judge-"))
    old = old_checker(scratch)
    subset = scratch / "subset"
    for folder in sorted(submissions.iterdir())[:students]:
        shutil.copytree(folder, subset / folder.name)
    count = len(list(subset.glob("*/*.ipynb")))

    def before(place, jobs, common, *, timeout, judge=None):
        return old.run_checks(place.box, jobs, common, timeout=timeout, cwd=place.conn_dir)

    for run_notebook in (False, True)[: 1 if checks_only else 2]:
        totals = {"before": 0.0, "after": 0.0}
        rows: dict[str, list] = {}
        for _ in range(rounds):
            for name in ("before", "after"):
                patch = (
                    mock.patch.object(selfcheck, "run_checks", before) if name == "before" else None
                )
                with mock.patch.object(
                    extract, "REFERENCE_PACKAGES", ["shared", "checker_before_23"]
                ):
                    if patch:
                        patch.start()
                    try:
                        start = time.perf_counter()
                        book = grade_class(subset, run_notebook=run_notebook)
                        totals[name] += time.perf_counter() - start
                    finally:
                        if patch:
                            patch.stop()
                print(f"  {name}: {time.perf_counter() - start:.1f} s", flush=True)
                grades = [(r["student"], r["exercise"], r["status"]) for r in book.rows()]
                rows.setdefault(name, grades)
                statuses = [r.status for rep in book.reports.values() for r in rep.results]
                assert "error" not in statuses and "timeout" not in statuses, (name, statuses)
        same = "same grades" if rows["before"] == rows["after"] else "GRADES DIFFER"
        print(f"  before/after #23: {same} for all {len(rows['after'])} exercises")
        n = count * rounds
        what = "notebooks run + checks" if run_notebook else "checks only (--no-run)"
        print(
            f"#23 cost, {what}, {n} notebooks each: before {totals['before'] / n:.2f} s/notebook, "
            f"after {totals['after'] / n:.2f} s/notebook, after/before "
            f"{totals['after'] / totals['before']:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--judge-ratio", action="store_true", help="also time before/after #23")
    parser.add_argument("--rounds", type=int, default=1, help="--judge-ratio repetitions")
    parser.add_argument("--ratio-students", type=int, default=1, help="--judge-ratio class size")
    parser.add_argument(
        "--checks-only", action="store_true", help="--judge-ratio with --no-run only"
    )
    parser.add_argument("--no-grade", action="store_true", help="skip the full grading run")
    parser.add_argument("--rerun", action="store_true", help="grade twice (the cache's effect)")
    parser.add_argument(
        "--compare", metavar="REV", help="also grade with REV's grader, alternating"
    )
    parser.add_argument("--lessons", type=int, default=len(EXERCISES), help="the first N lessons")
    args, extra = parser.parse_known_args()
    lessons = list(EXERCISES)[: args.lessons]
    print(f"load average before: {open('/proc/loadavg').read().strip()} (shared machine)")
    with tempfile.TemporaryDirectory(prefix="bench-grade-") as tmp:
        submissions = Path(tmp) / "class"
        count = build_class(submissions, args.students, args.seed, lessons)
        print(f"class: {args.students} students x {len(lessons)} lessons = {count} notebooks")
        if not args.no_grade:
            out = Path(tmp) / "out" / "gradebook.csv"
            wall = grade(submissions, out, extra)
            print(
                f"grade (default flags{' ' + ' '.join(extra) if extra else ''}): {wall:.0f} s "
                f"in all, {wall / count:.1f} s per notebook; 30 students x {len(lessons)} "
                f"lessons ~ {wall / args.students * 30 / 60:.1f} min (linear in students)"
            )
            if args.rerun:
                again = grade(submissions, out, extra)
                print(f"re-run, nothing changed: {again:.1f} s")
        if args.compare:
            compare(submissions, count, args.compare, args.rounds, extra)
        if args.judge_ratio:
            judge_ratio(submissions, args.ratio_students, args.rounds, args.checks_only)
    print(f"load average after: {open('/proc/loadavg').read().strip()}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
