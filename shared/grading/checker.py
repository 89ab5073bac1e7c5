"""Check a notebook's extracted definitions: learner code in the sandbox, the verdict outside.

Three processes per notebook, wired by ``run_checks`` (the grader):

- the **worker** (``shared.grading.worker``, inside the student's sandbox): forked by the
  sandbox's zygote (``shared.grading.zygote``), which imported torch and the course once and
  is non-dumpable; for each exercise it forks a child that keeps only that exercise's pair of
  pipes, runs the learner's program (imports, helpers, the definition: nothing else of the
  notebook) and then only answers requests about the objects it holds
  (``shared.grading.remote``): it never sees a check, a comparison or a verdict;
- the **judge** (``shared.grading.judge``, outside the sandbox, trusted code only; one
  ``JudgeServer`` per grading run forks one per notebook): imports the installed checks and
  runs each real check against a ``Remote`` proxy of the learner's definition, so every call,
  attribute and operator travels to the worker as a request and comes back as data. The
  comparisons, the messages and the result are computed here, in a process whose modules
  learner code never touched; what the worker sends can only be answers to the judge's own
  questions;
- the grader reads one JSON line per exercise from the judge's result pipe, and then has the
  zygote kill the worker and all it started (at the time limit, or when the judge is done).

A definition that dies or hangs gets ``error`` or ``timeout``; one that writes anything but
answers on its pipes fails. Never a pass.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

MAX_RESULT_BYTES = 64 * 1024
STARTUP_ALLOWANCE_S = 60  # Python + torch + the checks, on a busy laptop
SLACK_S = 15  # per exercise, on top of its time limit: fork, cleanup, a loaded machine
LIVE: set[subprocess.Popen] = set()  # running checkers, killed on Ctrl-C (kill_all)
TAMPERED = (
    "no result from the checker: your code wrote on the grader's channel (only answers to the "
    "check's questions count; a forged result is a fail)"
)
NO_RESULT = (
    "no result from the checker (it was killed: os.kill, os._exit, out of memory or a native crash)"
)


class SandboxGone(Exception):
    """A student's sandbox stopped answering (or could not start): it was killed."""


def run_checks(place, jobs: list[dict], common: dict, *, timeout: float, judge=None):
    """[(status, message)] for ``jobs`` (one per exercise: check, target, program).

    ``place``: the student's sandbox (``shared.grading.student_sandbox``), which forks the
    worker. ``judge``: a ``JudgeServer`` (checks imported once per grading run, a judge forked
    per notebook); without one, a judge process of its own starts for these jobs."""
    try:
        place.reset()  # nothing the notebook left running or wrote sees the checks
    except (OSError, SandboxGone) as exc:
        return [("error", f"could not start the checker: {exc}")] * len(jobs)
    pipes = [(os.pipe(), os.pipe()) for _ in jobs]  # per exercise: judge->worker, worker->judge
    worker_fds = [fd for down, up in pipes for fd in (down[0], up[1])]
    judge_fds = [fd for down, up in pipes for fd in (up[0], down[1])]
    worker_job = {
        "exercises": [{"target": j["target"], "program": j["program"]} for j in jobs],
        "timeout": timeout,
        "own_pid_namespace": bool(place.box.enabled),
    }
    judge_job = {
        "exercises": [{"check": j["check"], "target": j["target"]} for j in jobs],
        "fds": [[up[0], down[1]] for down, up in pipes],
        "checks_module": common["checks_module"],
        "reference_packages": common["reference_packages"],
        "timeout": timeout,
    }
    processes = []
    out, result_w = os.pipe()
    try:
        if judge is None:
            argv, env = command("judge"), judge_env(place.box)
            judge = _start(argv, env, "/", [*judge_fds, result_w])
            processes.append(judge)
            _send(judge, {**judge_job, "out": result_w})
        else:
            judge.submit(judge_job, [*judge_fds, result_w])
        place.start_worker(worker_job, worker_fds)
    except (OSError, SandboxGone) as exc:
        os.close(out)
        for process in processes:
            kill_process(process)
        return [("error", f"could not start the checker: {exc}")] * len(jobs)
    finally:
        for fd in [*worker_fds, *judge_fds, result_w]:
            os.close(fd)
    results = []
    try:
        data = b""
        limit = STARTUP_ALLOWANCE_S
        for index in range(len(jobs)):
            start = time.monotonic()
            complete, data = _read_until(out, b"\n", limit + timeout + SLACK_S, data, contains=True)
            limit = 0
            if not complete:
                if time.monotonic() - start >= timeout + SLACK_S:
                    results.append(("timeout", f"the check did not finish in {timeout:g} s"))
                else:
                    results.append(("error", "the judge stopped (out of memory?)"))
                break
            line, data = data.split(b"\n", 1)
            results.append(_parse_record(line, index))
    finally:
        for process in processes:
            kill_process(process)
            LIVE.discard(process)
        os.close(out)
        try:
            place.reset(files=False)  # the worker and whatever it left running
        except (OSError, SandboxGone):
            pass
    while len(results) < len(jobs):
        results.append(("error", "not checked: the checker stopped on an earlier exercise"))
    return results


def command(role: str) -> list[str]:
    """A process of ``role``, with nothing of its working folder on its import path."""
    module = "shared.grading.judge" if role.startswith("judge") else f"shared.grading.{role}"
    code = f"import sys; del sys.path[0]; from {module} import {role}_main; {role}_main()"
    return [sys.executable, "-c", code, role]


def judge_env(sandbox) -> dict[str, str]:
    """The judge's environment: the sandbox's, on the host, with the grader's import path."""
    env = sandbox.env({"TMPDIR": sandbox.home_outside or "/tmp"})
    env["HOME"] = sandbox.home_outside or env["HOME"]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*sandbox.pythonpath, *sys.path[1:]]))
    env["PYTHONNOUSERSITE"] = "1" if sys.flags.no_user_site else ""
    return {k: v for k, v in env.items() if v}


class JudgeServer:
    """One trusted process per grading run: imports the checks once, forks a judge per notebook.

    Jobs and their pipes travel over a Unix socket (``SCM_RIGHTS``); each forked judge starts
    from the same clean, already imported state and never sees a worker's code.
    """

    def __init__(self, sandbox, checks_module: str):
        import socket
        import threading

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv = [*command("judge_server"), checks_module, str(theirs.fileno())]
            self.process = _start(argv, judge_env(sandbox), "/", [theirs.fileno()])
        finally:
            theirs.close()
        self.socket, self.lock = ours, threading.Lock()

    def submit(self, job: dict, fds: list[int]) -> None:
        import socket

        with self.lock:
            socket.send_fds(self.socket, [json.dumps(job).encode("utf-8")], fds)

    def close(self) -> None:
        self.socket.close()
        kill_process(self.process)
        LIVE.discard(self.process)


def _start(argv, env, cwd, fds) -> subprocess.Popen:
    process = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=fds,
        start_new_session=True,  # no terminal, own process group: killed as one
        env=env,
        cwd=cwd,
    )
    LIVE.add(process)
    return process


def _send(process, job) -> None:
    try:
        process.stdin.write(json.dumps(job).encode("utf-8"))
        process.stdin.close()
    except OSError:
        pass


def _parse_record(line: bytes, index: int) -> tuple[str, str]:
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if not isinstance(record, dict) or record.get("index") != index:
        return "error", "no result from the checker"
    status = record.get("status")
    if status not in ("pass", "fail", "error", "timeout"):
        return "error", "no result from the checker"
    return status, str(record.get("message", ""))[:2000]


def _read_until(fd, marker, limit, data=b"", *, contains=False):
    """Read ``fd`` until ``data`` starts with (or contains) ``marker``, or for ``limit`` s.

    ``marker`` None: until end of file. Returns (found, data).
    """
    deadline = time.monotonic() + limit
    while len(data) <= MAX_RESULT_BYTES:
        if marker is not None and (marker in data if contains else data.startswith(marker)):
            return True, data
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return False, data
        chunk = os.read(fd, 4096)
        if not chunk:
            return marker is None, data
        data += chunk
    return False, data


def kill_all() -> None:
    """Kill every running checker (from a signal handler: no waiting here)."""
    for process in list(LIVE):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass


def kill_process(process: subprocess.Popen) -> None:
    """SIGKILL ``process``'s group (it was started in a session of its own), then reap it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            process.kill()
    process.wait()
