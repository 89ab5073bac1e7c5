"""Run one notebook in a fresh, sandboxed kernel and grade its exercises with the installed checks.

This is the engine behind ``python -m shared check`` and ``python -m shared grade``:

1. the notebook is copied into a fresh temporary folder (``shared.course.sandbox``: its own cwd,
   HOME, IPython profile and corpus copy, so it cannot touch another notebook's files) and
   executed by ``nbclient`` in a new kernel of this Python environment, with a per-cell
   timeout (the cell is interrupted and the next one runs) and ``allow_errors`` (a failing
   cell does not stop the rest); after each cell a silent snapshot remembers the learner's own
   definition of each target (lessons rebind targets to the reference after the check cell);
2. then, in the same kernel, the grader runs a cell of its own (``shared.course.grading_cell``): it drops
   every ``shared*`` module the notebook may have replaced or patched, imports the checks again
   from the installed files, refuses targets that are the reference implementation itself, and
   calls each check on the learner's definition. The notebook's own check cells are never
   trusted: a notebook that edits, deletes or fakes them still fails what it did not solve.
3. results come back as lines tagged with a per-run random marker, so text a notebook prints
   can never be mistaken for a result; no result means the exercise is not passed.

Grading executes untrusted code: run it in a container or as a restricted user (see README).
Nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from shared.checks._core import Exercise
from shared.course.grading_cell import (
    grading_cell_source,
    parse_grading_output,
    review_flags,
    snapshot_source,
)
from shared.course.sandbox import (
    MAX_CELL_OUTPUT_CHARS,
    StuckCell,
    client_class,
    kernel_env,
    make_sandbox,
)

STATUSES = ("pass", "fail", "error", "timeout", "missing")
# Messages number cells from 1, markdown cells included (as they appear top to bottom).
MAX_MESSAGE_CHARS = 600


@dataclass
class ExerciseResult:
    exercise: str
    status: str  # one of STATUSES
    message: str = ""


@dataclass
class NotebookReport:
    """The outcome of grading one notebook: one result per registered exercise, in order."""

    lesson: str
    path: str
    results: list[ExerciseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. cells that timed out or raised
    flags: list[str] = field(default_factory=list)  # suspicious code worth a human look


def short(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """One line, at most ``limit`` characters (CSV- and terminal-friendly)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def report_for_all(lesson: str, path: str, exercises: list[Exercise], status: str, message: str):
    """A report giving every exercise of the lesson the same status (missing, corrupt, crash)."""
    results = [ExerciseResult(ex.name, status, short(message)) for ex in exercises]
    return NotebookReport(lesson, path, results)


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Parse a notebook; anything that is not one raises ValueError with a one-line reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError("not a notebook (the file is not UTF-8 text)") from None
    if not text.strip():
        raise ValueError("the notebook file is empty")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # NotJSONError, validation errors, random JSON...
        raise ValueError(
            f"not a valid notebook ({type(exc).__name__}: {short(exc, 200)})"
        ) from None
    if not isinstance(nb.get("cells"), list):
        raise ValueError("not a valid notebook (no list of cells)")
    return nb


# --------------------------------------------------------------------------- running a notebook


@dataclass(frozen=True)
class ChecksSource:
    """Where the trusted checks live, as the kernel must verify them."""

    module: str  # "shared.checks" (tests pass a module of fake checks)
    file: str  # realpath of the module's file
    package_dir: str  # realpath of the installed `shared` package: targets from here are refused
    trusted_dirs: tuple[str, ...]  # check functions must live under one of these
    import_path: tuple[str, ...]  # put first on sys.path while the kernel imports the checks


def locate_checks(checks_module: str = "shared.checks") -> ChecksSource:
    """Import the checks here (trusted code only) to learn which files the kernel must load."""
    import importlib

    import shared

    module = importlib.import_module(checks_module)
    top = importlib.import_module(checks_module.split(".")[0])
    if hasattr(top, "__path__"):
        top_dir = os.path.realpath(list(top.__path__)[0])
        top_parent = os.path.dirname(top_dir)
    else:
        top_dir = top_parent = os.path.dirname(os.path.realpath(top.__file__))
    package_dir = os.path.realpath(os.path.dirname(shared.__file__))
    return ChecksSource(
        module=checks_module,
        file=os.path.realpath(module.__file__),
        package_dir=package_dir,
        trusted_dirs=tuple(dict.fromkeys([package_dir, top_dir])),
        import_path=tuple(dict.fromkeys([os.path.dirname(package_dir), top_parent])),
    )


# Library objects whose functions must not come from notebook code (the checks call them).
GUARDED = [
    ("builtins", ""),
    ("math", ""),
    ("random", ""),
    ("torch", ""),
    ("torch", "Tensor"),
    ("torch.nn", "Module"),
    ("torch.nn.functional", ""),
    ("torch.testing", ""),
    ("numpy", ""),
    ("numpy", "ndarray"),
]


def installed_dirs(checks: ChecksSource) -> list[str]:
    """Folders of installed code: Python's own, site-packages, the course, the checks."""
    import site
    import sys
    import sysconfig

    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    dirs |= {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs |= {checks.package_dir, *checks.trusted_dirs}
    return sorted(os.path.realpath(d) for d in dirs if d)


def _relates(cell_source: str, exercise: Exercise) -> bool:
    """Does this cell define the exercise's target or call its check?"""
    target, check = re.escape(exercise.target), re.escape(exercise.check)
    pattern = rf"^\s*(def|class)\s+{target}\b|^\s*{target}\s*=[^=]|\b{check}\s*\("
    return re.search(pattern, cell_source, flags=re.MULTILINE) is not None


async def grade_notebook_async(
    path: Path,
    lesson: str,
    exercises: list[Exercise],
    *,
    checks: ChecksSource,
    timeout: float = 120,
    data_dir: Path,
) -> NotebookReport:
    """Execute ``path`` in a fresh sandboxed kernel and grade ``exercises`` with ``checks``."""
    from jupyter_core.utils import ensure_async
    from nbclient.exceptions import DeadKernelError

    try:
        nb = read_notebook(path)
    except (OSError, ValueError) as exc:
        return report_for_all(lesson, str(path), exercises, "error", str(exc))
    flags = review_flags(nb)
    marker = "@@grade-" + secrets.token_hex(16)
    spec = {
        "mode": "grade",
        "marker": marker,
        "checks_module": checks.module,
        "checks_file": checks.file,
        "package_dir": checks.package_dir,
        "trusted_dirs": list(checks.trusted_dirs),
        "import_path": list(checks.import_path),
        "check_timeout": float(timeout),
        "installed_dirs": installed_dirs(checks),
        "temp_dir": os.path.realpath(tempfile.gettempdir()),
        "guarded": GUARDED,
        "exercises": [[ex.name, ex.check, ex.target] for ex in exercises],
    }
    sandbox, work = make_sandbox(nb, path.name, data_dir)
    client = client_class()(
        nb,
        timeout=int(max(1, timeout)),
        interrupt_on_timeout=True,
        allow_errors=True,
        startup_timeout=60,
        shutdown_kernel="immediate",
        record_timing=False,
        resources={"metadata": {"path": str(work)}},
    )
    client.timed_out, client.current_index, client.output_chars = [], None, 0
    client.interrupted_at = {}
    client.output_limit = MAX_CELL_OUTPUT_CHARS
    student_cells = len(nb.cells)
    n_code = sum(c.cell_type == "code" for c in nb.cells)

    async def run() -> None:
        env = kernel_env(sandbox)
        # The kernel process's own stdout/stderr (not the cells') only carry startup noise.
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        async with client.async_setup_kernel(env=env, **quiet):
            client.reset_execution_trackers()
            snapshot = snapshot_source(spec)
            for index, cell in enumerate(list(client.nb.cells)):
                await client.async_execute_cell(cell, index, client.code_cells_executed + 1)
                if cell.cell_type == "code" and cell.source.strip():
                    # silent: no outputs, no history; remembers the learner's own targets
                    msg_id = await ensure_async(
                        client.kc.execute(snapshot, silent=True, store_history=False)
                    )
                    await client.async_wait_for_reply(msg_id)
            grading = nbformat.v4.new_code_cell(grading_cell_source(spec))
            client.nb.cells.append(grading)
            client.timeout = int(timeout * (len(exercises) + 1) + 30)
            client.output_limit = 50 * MAX_CELL_OUTPUT_CHARS
            await client.async_execute_cell(grading, student_cells, store_history=False)

    problem: tuple[str, str] | None = None
    try:
        hard_limit = timeout * (n_code + 2 * len(exercises) + 4) + 120
        await asyncio.wait_for(run(), hard_limit)
    except DeadKernelError:
        problem = ("error", "the kernel died (os._exit, a crash in native code, or out of memory)")
    except StuckCell as exc:
        problem = ("timeout", f"cell {exc.args[0] + 1} kept running after it was interrupted")
    except asyncio.TimeoutError:
        problem = ("timeout", "the notebook exceeded its total time limit")
    except Exception as exc:  # kernel failed to start, ...
        problem = ("error", f"could not run the notebook: {type(exc).__name__}: {short(exc, 200)}")
    finally:
        atexit.unregister(client._cleanup_kernel)  # left registered when the start failed
        shutil.rmtree(sandbox, ignore_errors=True)

    report = NotebookReport(lesson, str(path), flags=flags)
    in_grading = client.current_index == student_cells
    if problem and not in_grading:
        known = client.current_index is not None and "kept running" not in problem[1]
        where = f" while running cell {client.current_index + 1}" if known else ""
        report.notes.append(problem[1] + where)
        report.results = [
            ExerciseResult(ex.name, problem[0], short(problem[1] + where)) for ex in exercises
        ]
        return report
    outputs = client.nb.cells[student_cells].outputs if len(client.nb.cells) > student_cells else []
    stuck_cells = [i for i in client.timed_out if i < student_cells]
    for index in stuck_cells:
        report.notes.append(
            f"cell {index + 1} did not finish within {timeout:g} s and was interrupted"
        )
    report.results = _combine(
        exercises,
        parse_grading_output(outputs, marker),
        problem=problem,
        grading_timed_out=student_cells in client.timed_out,
        stuck_sources={i + 1: nb.cells[i].source for i in stuck_cells},
        timeout=timeout,
    )
    return report


def _combine(exercises, records, *, problem, grading_timed_out, stuck_sources, timeout):
    """One result per exercise from the grading cell's records, failing closed.

    An exercise without a record is never a pass: the kernel died or was stopped while it was
    checked, or the notebook broke the grader's output. An unsolved exercise whose cell (the
    one defining its target or calling its check) timed out is reported as a timeout.
    """
    found = {r.get("exercise"): r for r in records if r.get("event") == "result"}
    fatal = next((r.get("message", "") for r in records if r.get("event") == "fatal"), None)
    results, culprit = [], None
    for ex in exercises:
        if ex.name in found:
            status = found[ex.name].get("status")
            status = status if status in STATUSES else "error"
            result = ExerciseResult(ex.name, status, short(found[ex.name].get("message", "")))
        elif fatal:
            result = ExerciseResult(ex.name, "error", short(fatal))
        elif problem or grading_timed_out:
            # results arrive in order, so the first exercise without one was being checked
            # (its "start" line may be lost when the kernel dies)
            what = problem[1] if problem else "interrupted after the time limit"
            if culprit is None:
                culprit = ex.name
                timed_out = grading_timed_out or problem[0] == "timeout"
                message = short(f"while checking this exercise: {what}")
                result = ExerciseResult(ex.name, "timeout" if timed_out else "error", message)
            else:
                message = short(f"not graded: {what} while checking `{culprit}`")
                result = ExerciseResult(ex.name, "error", message)
        else:
            message = (
                "no result from the grader (did the notebook replace sys.stdout or clear outputs?)"
            )
            result = ExerciseResult(ex.name, "error", message)
        cells = [n for n, source in stuck_sources.items() if _relates(source, ex)]
        if result.status not in ("pass", "timeout") and cells:
            message = f"cell {cells[0]} did not finish within {timeout:g} s and was interrupted"
            result = ExerciseResult(ex.name, "timeout", short(f"{message}; {result.message}"))
        results.append(result)
    return results


async def grade_many(tasks, *, jobs: int, **options) -> list[NotebookReport]:
    """Grade ``tasks`` (path, lesson, exercises) with at most ``jobs`` kernels at a time."""
    semaphore = asyncio.Semaphore(max(1, jobs))

    async def one(path, lesson, exercises):
        async with semaphore:
            try:
                return await grade_notebook_async(path, lesson, exercises, **options)
            except Exception as exc:  # never let one notebook stop the class
                message = f"grader error: {type(exc).__name__}: {exc}"
                return report_for_all(lesson, str(path), exercises, "error", message)

    return list(await asyncio.gather(*(one(*task) for task in tasks)))


def run_notebooks(
    tasks,
    *,
    jobs: int = 0,
    timeout: float = 120,
    checks_module: str = "shared.checks",
    data_dir: Path | None = None,
) -> list[NotebookReport]:
    """Synchronous entry point used by the CLI and the tests."""
    from shared.config import default_data_dir

    checks = locate_checks(checks_module)
    data_dir = Path(data_dir or default_data_dir()).resolve()
    jobs = jobs or os.cpu_count() or 1
    return asyncio.run(
        grade_many(tasks, jobs=jobs, checks=checks, timeout=timeout, data_dir=data_dir)
    )
