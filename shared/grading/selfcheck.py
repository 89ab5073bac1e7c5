"""Grade one notebook: run it in a sandboxed kernel, then check its definitions one by one.

This is the engine behind ``python -m shared check`` and ``python -m shared grade``:

1. the notebook runs top to bottom in a fresh kernel inside the student's sandbox
   (``shared.grading.student_sandbox``, ``shared.grading.kernel``): per-cell timeout (the cell is
   interrupted and the next one runs), a total time cap, failing cells noted. This only
   produces notes ("cell 5 raised NameError"): nothing the kernel does reaches the grade;
2. each exercise's definition is taken from the cell sources (``shared.grading.extract``) and
   checked with the installed checks (``shared.grading.checker``): the definition runs in a
   process of its own that runs nothing else of the notebook, the verdict in a judge outside.

A student's notebooks share one sandbox, one after another: between two notebooks every process
in it is killed and its writable folders are emptied, so each notebook starts as in a new one.

So a notebook's own check cells, printed text, patched libraries, hooks or background
processes cannot change its grade, and a definition cannot hide what it calls: the program the
checker runs is the code the instructor can read, with review flags on anything suspicious.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from shared.checks._core import Exercise
from shared.engine.errors import one_line
from shared.grading import extract as extraction_rules
from shared.grading.checker import kill_all as kill_checkers
from shared.grading.checker import run_checks
from shared.grading.extract import extract
from shared.grading.kernel import StuckCell, client_class
from shared.grading.sandbox import Sandbox
from shared.grading.student_sandbox import kill_all as kill_sandboxes

STATUSES = ("pass", "fail", "error", "timeout", "missing")
MAX_MESSAGE_CHARS = 600
MAX_NOTEBOOK_BYTES = 50_000_000


@dataclass
class ExerciseResult:
    exercise: str
    status: str  # one of STATUSES
    message: str = ""
    optional: bool = False


@dataclass
class NotebookReport:
    """The outcome of grading one notebook: one result per registered exercise, in order."""

    lesson: str
    path: str
    results: list[ExerciseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # cells that timed out or raised
    flags: list[str] = field(default_factory=list)  # code worth a human look


def short(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """One line, at most ``limit`` characters (CSV- and terminal-friendly)."""
    return one_line(text, limit)


def report_for_all(lesson: str, path: str, exercises: list[Exercise], status: str, message: str):
    """A report giving every exercise of the lesson the same status (missing, corrupt, crash)."""
    results = [ExerciseResult(ex.name, status, short(message), ex.optional) for ex in exercises]
    return NotebookReport(lesson, path, results)


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Parse a notebook (never through a symlink); anything else raises ValueError."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ValueError(f"cannot read the file ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_NOTEBOOK_BYTES + 1)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"the file is larger than {MAX_NOTEBOOK_BYTES // 1_000_000} MB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not a notebook (the file is not UTF-8 text)") from None
    if not text.strip():
        raise ValueError("the notebook file is empty")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # NotJSONError, validation errors...: no file content in the reason
        raise ValueError(f"not a valid notebook ({type(exc).__name__})") from None
    if not isinstance(nb.get("cells"), list):
        raise ValueError("not a valid notebook (no list of cells)")
    return nb


# --------------------------------------------------------------------------- running a notebook


def kill_all() -> None:
    """Kill every sandbox this grader started (Ctrl-C): students' sandboxes and judges."""
    kill_checkers()
    kill_sandboxes()


async def run_in_kernel(nb, place, scratch: str, timeout: float, total: float):
    """Execute the notebook in a kernel in the student's sandbox; notes about cells that failed
    or hung."""
    from nbclient.exceptions import DeadKernelError

    conn_dir = place.kernel_dir()
    client = client_class()(
        nb,
        timeout=int(max(1, timeout)),
        interrupt_on_timeout=True,
        allow_errors=True,
        startup_timeout=60,
        shutdown_kernel="immediate",
        record_timing=False,
        resources={"metadata": {"path": scratch}},
    )
    client.place, client.conn_dir = place, conn_dir
    client.timed_out, client.current_index, client.output_chars = [], None, 0
    client.interrupted_at = {}
    notes: list[str] = []

    async def run() -> None:
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        async with client.async_setup_kernel(env=place.box.env(), **quiet):
            client.reset_execution_trackers()
            for index, cell in enumerate(list(client.nb.cells)):
                await client.async_execute_cell(cell, index, client.code_cells_executed + 1)

    where = ""
    start = time.monotonic()
    try:
        try:
            await asyncio.wait_for(run(), total)
        except Exception:  # stopping the kernel at the time cap can look like its death
            if time.monotonic() - start < total:
                raise
            raise asyncio.TimeoutError from None
    except DeadKernelError:
        where = "the kernel died (os._exit, a crash in native code, or out of memory)"
    except StuckCell:
        where = "it kept running after it was interrupted: the kernel was stopped"
    except asyncio.TimeoutError:
        where = f"the notebook exceeded its total time limit ({total:g} s) and was stopped"
    except Exception as exc:  # kernel failed to start, ...
        notes.append(f"could not run the notebook: {type(exc).__name__}: {short(exc, 200)}")
    finally:
        shutil.rmtree(conn_dir, ignore_errors=True)
    for index in client.timed_out:
        notes.append(f"cell {index + 1} did not finish within {timeout:g} s and was interrupted")
    for index, cell in enumerate(client.nb.cells):
        errors = [
            o
            for o in cell.get("outputs", [])
            if o.get("output_type") == "error" and o.get("ename") != "ExerciseFailed"
        ]  # a failing check cell is already in the results
        if errors and index not in client.timed_out:
            notes.append(f"cell {index + 1} raised {short(errors[0].get('ename', 'an error'), 80)}")
    if where:
        index = client.current_index
        notes.append(f"cell {index + 1}: {where}" if index is not None else where)
    return notes


async def grade_notebook_async(
    path: Path,
    lesson: str,
    exercises: list[Exercise],
    *,
    place,
    scratch: str,
    checks_module: str,
    timeout: float = 120,
    total: float = 900,
    run_notebook: bool = True,
    judge=None,
) -> NotebookReport:
    """Run ``path`` in the student's sandbox ``place`` (notes only), then check each
    exercise's definition."""
    try:
        nb = read_notebook(path)
    except (OSError, ValueError) as exc:
        return report_for_all(lesson, str(path), exercises, "error", str(exc))
    report = NotebookReport(lesson, str(path))
    if run_notebook:
        report.notes = await run_in_kernel(nb, place, scratch, timeout, total)
    cells = [dict(c) for c in nb.cells]
    extractions = {ex.name: extract(cells, ex.target) for ex in exercises}
    to_check = [ex for ex in exercises if not extractions[ex.name].fail]
    jobs = [
        {"check": ex.check, "target": ex.target, "program": extractions[ex.name].program}
        for ex in to_check
    ]
    common = {
        "checks_module": checks_module,
        "reference_packages": list(extraction_rules.REFERENCE_PACKAGES),
    }
    checked = {}
    if jobs:
        outcomes = await asyncio.to_thread(
            run_checks, place, jobs, common, timeout=timeout, judge=judge
        )
        checked = {ex.name: outcome for ex, outcome in zip(to_check, outcomes, strict=True)}
    for ex in exercises:
        extraction = extractions[ex.name]
        report.flags += extraction.flags
        status, message = checked.get(ex.name, ("fail", extraction.fail))
        message = extraction.hint(message) if status == "fail" else message
        report.results.append(ExerciseResult(ex.name, status, short(message), ex.optional))
    report.flags = list(dict.fromkeys(report.flags))
    return report


def usable_cores() -> int:
    """The cores this process may use: affinity mask, cgroup ``cpu.max`` (``shared.engine.threads``)."""
    from shared.engine.threads import (
        usable_cores as measured_usable_cores,  # imports torch: only now
    )

    return measured_usable_cores()


class Schedule:
    """Which notebook a sandbox grades next: its student's next one; when that student is done,
    a student nobody has started (the one with the most notebooks first); at the end, a
    notebook of the student with the most left, in a second sandbox for that student, so that
    no core waits idle while one student's notebooks finish."""

    def __init__(self, tasks):
        self.left: dict = {}  # student (the key's first item) -> tasks in lesson order
        for task in tasks:
            key = task[0]
            self.left.setdefault(key[0] if isinstance(key, tuple) else None, []).append(task)
        for run in self.left.values():
            run.sort(key=lambda task: str(task[0]))
        self.started: set = set()

    def next(self, student):
        """(student, task) for a sandbox now holding ``student``'s notebooks; None when done."""
        if self.left.get(student):
            return student, self.left[student].pop(0)
        waiting = [s for s, run in self.left.items() if run]
        if not waiting:
            return None
        fresh = [s for s in waiting if s not in self.started]
        student = max(fresh or waiting, key=lambda s: len(self.left[s]))
        self.started.add(student)
        return student, self.left[student].pop(0)


def ready_sandbox(place, box: Sandbox, scratch: str, checks_module: str):
    """``place`` emptied for the next notebook, or a new sandbox if it is gone."""
    from shared.grading.checker import SandboxGone
    from shared.grading.student_sandbox import StudentSandbox

    if place is not None and place.alive:
        try:
            place.reset()
            return place
        except (OSError, SandboxGone):
            pass
    if place is not None:
        place.close()
    return StudentSandbox(box, scratch, checks_module)


async def grade_many(tasks, done: dict, *, jobs: int, progress: bool = False, **options) -> None:
    """Grade ``tasks`` (key, path, lesson, exercises), ``jobs`` at a time, into ``done``.

    ``jobs`` sandboxes at a time, each holding one student's notebooks
    (``shared.grading.student_sandbox``), one after another, in the order of ``Schedule``.
    ``progress``: the notebooks done and the time left on stderr (a bar in a terminal, a plain
    line every ~15 s in a log: ``shared.engine.progress``).
    Ctrl-C kills every sandbox at once and raises KeyboardInterrupt; ``done`` keeps what finished.
    """
    import sys

    from shared.engine.progress import Progress
    from shared.grading.checker import SandboxGone

    loop = asyncio.get_running_loop()
    stopped = []
    bar = Progress(len(tasks), "grading", "notebooks", enabled=progress, stream=sys.stderr)
    where = (options["sandbox"], options["scratch"], options["checks_module"])
    options = {k: v for k, v in options.items() if k != "sandbox"}

    async def one(place, key, path, lesson, exercises):
        try:
            place = await asyncio.to_thread(ready_sandbox, place, *where)
            report = await grade_notebook_async(path, lesson, exercises, place=place, **options)
        except SandboxGone as exc:
            report = report_for_all(lesson, str(path), exercises, "error", f"not graded: {exc}")
        except Exception as exc:  # never let one notebook stop the class
            message = f"grader error: {type(exc).__name__}: {exc}"
            report = report_for_all(lesson, str(path), exercises, "error", message)
        if not stopped:
            done[key] = report
            bar.update(bar.done + 1)
        return place

    async def sandbox_slot():
        place, student = None, object()  # a sandbox starts with nobody's notebooks
        try:
            while (picked := schedule.next(student)) is not None:
                if picked[0] != student and place is not None:
                    place.close()  # another student's notebooks never share a sandbox
                    place = None
                student = picked[0]
                place = await one(place, *picked[1])
        finally:
            if place is not None:
                place.close()

    schedule = Schedule(tasks)
    running = [asyncio.ensure_future(sandbox_slot()) for _ in range(max(1, jobs))]

    def on_interrupt():
        stopped.append(True)
        kill_all()
        for future in running:
            future.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
        pass
    try:
        await asyncio.gather(*running, return_exceptions=True)
    finally:
        bar.close()
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    if stopped:
        raise KeyboardInterrupt


def run_notebooks(
    tasks,
    *,
    sandbox: Sandbox,
    scratch: str,
    jobs: int = 0,
    timeout: float = 120,
    total: float = 900,
    checks_module: str = "shared.checks",
    run_notebook: bool = True,
    progress: bool = False,
    judge=None,
) -> dict:
    """Synchronous entry point: {key: NotebookReport}; on Ctrl-C, what finished, then raises."""
    done: dict = {}
    jobs = jobs or usable_cores()
    options = dict(
        sandbox=sandbox,
        scratch=scratch,
        timeout=timeout,
        total=total,
        checks_module=checks_module,
        run_notebook=run_notebook,
        judge=judge,
    )
    try:
        asyncio.run(grade_many(tasks, done, jobs=jobs, progress=progress, **options))
    except KeyboardInterrupt:
        raise Interrupted(done) from None
    return done


class Interrupted(Exception):
    """Ctrl-C while grading: ``args[0]`` holds the reports that finished."""
