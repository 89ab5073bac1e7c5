"""Mutation harness: does every exercise's check reject every wrong version of its solution?

``python -m tests.mutation`` runs every mutant of every exercise (``tests.mutants`` derives them
from the solution notebooks' regions) through the exercise's check and prints, per exercise:
mutants, killed, killed with a named hint, equivalents, survivors (each with its mutated line).
``--cap N`` runs at most N mutants per exercise (a fixed, seeded sample); ``--only NAME`` limits
the run to some exercises. ``tests/test_mutation.py`` runs the capped set in the suite.

Each mutant runs in a forked child (torch and the checks already imported), as the grader runs
a definition: the program ``shared.grading.extract`` builds from the mutated cells, then
``check(target)``. A child that uses more CPU than ``CPU_FACTOR`` times the check's time on the solution (a
mutant that loops; CPU
time, so the verdict does not depend on the machine's load) or more than ``MEMORY_BYTES`` dies,
one still running after ``TIMEOUT_S`` of wall time is killed: all count as killed, not named.

A mutant is **killed** when the check fails it: it raises ``ExerciseFailed``, the program cannot
define the target, the check itself crashes, or the child dies or times out. It is killed with a
**named** hint when the check raised ``ExerciseFailed`` and the message is not generic
(``generic_reason``); generic means one of:

- a raw crash: the message is what ``_crash.explain_crash`` returns when it knows no cause,
  ``<what> raised <Exception>: <its text>.`` and nothing more. The child wraps ``explain_crash``
  to mark exactly those lines, so a crash with a likely cause, a check's own crash hint (e.g.
  "some windows were short; ..."), an in-place change of an input or the stub count as named;
- a bare comparison: ``<what> returned/is/gave/got X, expected Y`` (or ``expected Y, got X``)
  with no further clause (no ``:`` or ``;`` after it), i.e. the property restated, no cause.

Not named either: a program that cannot define the target, a check that crashed (not an
``ExerciseFailed``), a timeout or a dead child.

A mutant the check passes **survives**, unless ``EQUIVALENT`` lists it with the reason it computes
what the solution computes (as far as any caller can see).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import re
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from tests.mutants import ROOT, Mutant, load_cells, mutants
from tests.mutation_lists import EQUIVALENT

# CPU seconds a mutant's check may use (a mutant that loops): CPU_FACTOR times what the check
# took on the solution (caches cold), at least CPU_FLOOR_S.
CPU_FACTOR, CPU_FLOOR_S = 5, 3
TIMEOUT_S = 240.0  # wall clock, for a child stuck without using CPU (on a loaded machine)
MEMORY_BYTES = 6 * 2**30
WORKERS = 2
SEED = 29


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # "passed", "failed", "undefined", "check crashed", "timeout", "died"
    message: str = ""
    cpu_s: float = 0.0  # the child's CPU time

    @property
    def killed(self) -> bool:
        return self.status != "passed"

    @property
    def named(self) -> bool:
        return self.status == "failed" and generic_reason(self.message) is None


_BARE_COMPARISON = re.compile(
    r"^[^:;]{0,200}\b(returned|is|gave|got) [^;]{0,300}, expected [^;:]{0,300}$"
    r"|^expected [^;:]{0,300}, got [^;:]{0,300}$"
)
RAW_MARK = "\x00raw crash\x00"  # the child marks explain_crash's results that add no cause


def generic_reason(message: str) -> str | None:
    """Why a failure message is generic (see the module docstring), or None when it names."""
    if RAW_MARK in message:
        return "raw crash"
    text = re.sub(r"^\[[^\]]*\]\s*", "", message.strip()).rstrip(".")
    if _BARE_COMPARISON.match(text):
        return "bare comparison"
    return None


def _mark_raw_crashes() -> None:
    """In a child: make ``explain_crash`` mark the lines it returns without a likely cause."""
    import shared.checks._core as core
    from shared.checks._crash import explain_crash
    from shared.engine.errors import one_line

    def marking(exc: BaseException, what: str = "your code") -> str:
        line = explain_crash(exc, what)
        bare = line == f"{what} raised {type(exc).__name__}: {one_line(exc, 160)}."
        return line + RAW_MARK if bare else line

    core.explain_crash = marking


# ----------------------------------------------------------------------------- running


def _run_in_child(mutant: Mutant, exercise, write_fd: int, limit_s: int) -> None:
    import builtins

    import shared.checks as checks

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime) + limit_s
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    sys.stdout = sys.stderr = open(os.devnull, "w", encoding="utf-8")
    _mark_raw_crashes()
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    status, message = "passed", ""
    try:
        for label, source in mutant.program:
            exec(compile(source, f"<{label}>", "exec"), namespace)
        target = namespace[exercise.target]
    except BaseException as exc:
        status, message = "undefined", f"{type(exc).__name__}: {exc}"
    else:
        try:
            getattr(checks, exercise.check)(target)
        except checks.ExerciseFailed as exc:
            status, message = "failed", str(exc)
        except BaseException as exc:
            status, message = "check crashed", f"{type(exc).__name__}: {exc}"
    os.write(write_fd, json.dumps([status, message[:2000]]).encode("utf-8"))


def _start(mutant: Mutant, exercise, limit_s: int) -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.close(read_fd)
            _run_in_child(mutant, exercise, write_fd, limit_s)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def solution_failures(exercises, cpu: dict[str, float] | None = None) -> list[str]:
    """Run each exercise's check on its own solution, here in the parent: a solution its check
    rejects makes every kill meaningless, and whatever a check caches (a trained model) is then
    inherited by every child."""
    import builtins
    import contextlib
    import io

    import shared.checks as checks
    from shared.grading.extract import extract

    failures = []
    for lesson, exercise in exercises:
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        started = _cpu_s()
        try:
            for label, source in extract(load_cells(lesson), exercise.target).program:
                exec(compile(source, f"<{label}>", "exec"), namespace)
            with contextlib.redirect_stdout(io.StringIO()):
                getattr(checks, exercise.check)(namespace[exercise.target])
        except BaseException as exc:
            failures.append(f"{exercise.name}: {type(exc).__name__}: {exc}")
        if cpu is not None:
            cpu[exercise.name] = _cpu_s() - started
    return failures


def run_all(
    jobs: list[tuple[Mutant, object]], workers: int = WORKERS, progress: bool = False
) -> list[Outcome]:
    """Run every (mutant, exercise) in forked children of a fresh server process
    (``python -m tests.mutation --serve``), ``workers`` at a time; ``progress`` names each
    exercise on stderr as its first mutant starts.

    The server starts with one OpenMP thread: forking a process whose OpenMP pool has more
    threads (any process that ran torch, such as a pytest session) leaves the children waiting
    on a barrier forever."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="mutation-") as folder:
        jobs_path, out_path = Path(folder, "jobs.pickle"), Path(folder, "outcomes.pickle")
        jobs_path.write_bytes(pickle.dumps(jobs))
        command = [sys.executable, "-m", "tests.mutation", "--serve", str(jobs_path), str(out_path),
                   "--workers", str(workers)] + (["--progress"] if progress else [])  # fmt: skip
        done = subprocess.run(command, env=env, cwd=ROOT, check=False)
        if not out_path.exists():
            raise RuntimeError(f"the mutation server died (exit status {done.returncode})")
        kind, value = pickle.loads(out_path.read_bytes())
    if kind == "error":
        raise RuntimeError(value)
    return value


def _serve(jobs_path: str, out_path: str, workers: int, progress: bool) -> None:
    """The server: check the solutions, then run the mutants; pickle the outcomes."""
    import torch

    import shared.checks  # noqa: F401  (imported once here, inherited by every child)

    torch.set_num_threads(1)
    jobs = pickle.loads(Path(jobs_path).read_bytes())
    exercises = {m.exercise: (m.lesson, exercise) for m, exercise in jobs}
    cpu: dict[str, float] = {}
    failures = solution_failures(exercises.values(), cpu)
    limits = {name: max(CPU_FLOOR_S, round(CPU_FACTOR * s)) for name, s in cpu.items()}
    if failures:
        result = ("error", "a solution fails its own check: " + "; ".join(failures))
    else:
        result = ("ok", _run_jobs(jobs, workers, progress, limits))
    Path(out_path).write_bytes(pickle.dumps(result))


def _run_jobs(jobs, workers: int, progress: bool, limits: dict[str, int]) -> list[Outcome]:
    pending = list(enumerate(jobs))
    running: dict[int, tuple[int, int, float, bytes]] = {}  # fd -> (job, pid, deadline, data)
    results: dict[int, Outcome] = {}
    while pending or running:
        while pending and len(running) < workers:
            number, (mutant, exercise) = pending.pop(0)
            if progress and (number == 0 or jobs[number - 1][0].exercise != mutant.exercise):
                print(f"{time.strftime('%H:%M:%S')} {mutant.exercise}", file=sys.stderr)
            pid, fd = _start(mutant, exercise, limits[mutant.exercise])
            running[fd] = (number, pid, time.monotonic() + TIMEOUT_S, b"")
        ready, _, _ = select.select(list(running), [], [], 0.2)
        for fd in ready:
            number, pid, deadline, data = running[fd]
            chunk = os.read(fd, 65536)
            if chunk:
                running[fd] = (number, pid, deadline, data + chunk)
                continue
            del running[fd]
            os.close(fd)
            _, code, usage = os.wait4(pid, 0)
            results[number] = _outcome(jobs[number][0], data, code)
            results[number].cpu_s = usage.ru_utime + usage.ru_stime
        for fd, (number, pid, deadline, _) in list(running.items()):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os.close(fd)
                del running[fd]
                results[number] = Outcome(jobs[number][0], "timeout", f"over {TIMEOUT_S:.0f} s")
    return [results[i] for i in range(len(jobs))]


def _outcome(mutant: Mutant, data: bytes, code: int) -> Outcome:
    try:
        status, message = json.loads(data.decode("utf-8"))
    except ValueError:
        return Outcome(mutant, "died", f"the child died (wait status {code})")
    return Outcome(mutant, status, message)


# ----------------------------------------------------------------------------- selecting


def sample(items: list[Mutant], cap: int | None, name: str) -> list[Mutant]:
    """At most ``cap`` mutants, a fixed sample per exercise (seeded by its name), in order."""
    if cap is None or len(items) <= cap:
        return items
    chosen = random.Random(SEED + zlib.crc32(name.encode("utf-8"))).sample(range(len(items)), cap)
    return [items[i] for i in sorted(chosen)]


def collect(cap: int | None = None, only: list[str] | None = None):
    """(total mutants per exercise, the jobs to run) for every exercise of every lesson."""
    from shared.checks import EXERCISES

    totals: dict[str, int] = {}
    jobs: list[tuple[Mutant, object]] = []
    for lesson, exercises in EXERCISES.items():
        cells = load_cells(lesson)
        for exercise in exercises:
            if only and exercise.name not in only:
                continue
            found = mutants(lesson, exercise, cells)
            totals[exercise.name] = len(found)
            jobs += [(m, exercise) for m in sample(found, cap, exercise.name)]
    return totals, jobs


def survivors(outcomes: list[Outcome]) -> list[Outcome]:
    """Mutants the checks accept that are not listed as equivalent."""
    return [o for o in outcomes if not o.killed and o.mutant.key not in EQUIVALENT]


# ----------------------------------------------------------------------------- reporting


def report(totals: dict[str, int], outcomes: list[Outcome], verbose: bool = False) -> str:
    rows = [f"{'exercise':26} {'mutants':>7} {'run':>5} {'killed':>6} {'named':>6} {'equiv':>5} "
            f"{'surv':>5} {'cpu_s':>6}"]  # fmt: skip
    by_exercise: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_exercise.setdefault(outcome.mutant.exercise, []).append(outcome)
    lines: list[str] = []
    for name, total in totals.items():
        mine = by_exercise.get(name, [])
        killed = sum(o.killed for o in mine)
        named = sum(o.named for o in mine)
        equiv = sum(not o.killed and o.mutant.key in EQUIVALENT for o in mine)
        left = survivors(mine)
        cpu = sum(o.cpu_s for o in mine)
        rows.append(f"{name:26} {total:7} {len(mine):5} {killed:6} {named:6} {equiv:5} "
                    f"{len(left):5} {cpu:6.1f}")  # fmt: skip
        for o in left:
            lines.append(f"SURVIVOR {name} line {o.mutant.line} [{o.mutant.operator}]: "
                         f"{o.mutant.original}  =>  {o.mutant.mutated}")  # fmt: skip
        for o in mine if verbose else []:
            if o.killed and not o.named:
                why = generic_reason(o.message) or o.status
                text = o.message.replace(RAW_MARK, "")[:300]
                lines.append(f"UNNAMED  {name} [{why}] {o.mutant.original}  =>  "
                             f"{o.mutant.mutated}\n         {text}")  # fmt: skip
    return "\n".join(rows + [""] + lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__)
    parser.add_argument("--cap", type=int, default=None, help="mutants per exercise (sampled)")
    parser.add_argument("--only", nargs="*", help="exercise names (default: all)")
    parser.add_argument("--verbose", action="store_true", help="also list unnamed kills")
    parser.add_argument("--keys", action="store_true", help="print survivors as Python keys")
    parser.add_argument("--serve", nargs=2, metavar=("JOBS", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=WORKERS, help="mutants run at a time")
    parser.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(*args.serve, args.workers, args.progress)
        return 0
    started = time.monotonic()
    totals, jobs = collect(args.cap, args.only)
    outcomes = run_all(jobs, args.workers, progress=True)
    print(report(totals, outcomes, args.verbose))
    if args.keys:
        for o in survivors(outcomes):
            print(repr(o.mutant.key) + ",")
    load = os.getloadavg()
    print(f"\n{len(jobs)} mutants in {time.monotonic() - started:.1f} s "
          f"(load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")  # fmt: skip
    return 1 if survivors(outcomes) else 0


if __name__ == "__main__":  # run as tests.mutation, so what the server pickles names that module
    from tests.mutation import main as _main

    sys.exit(_main())
