"""Check a notebook's extracted definitions: learner code in the sandbox, the verdict outside.

Three processes per notebook, wired by ``run_checks`` (the grader):

- the **worker** (``python -m shared.course.checker worker``, inside the sandbox): imports torch
  and the course once, makes itself non-dumpable, then for each exercise forks a child that
  keeps only that exercise's pair of pipes, runs the learner's program (imports, helpers, the
  definition: nothing else of the notebook) and then only answers requests about the objects
  it holds (``shared.course.remote``): it never sees a check, a comparison or a verdict;
- the **judge** (``python -m shared.course.checker judge``, outside the sandbox, trusted code
  only): imports the installed checks and runs each real check against a ``Remote`` proxy of
  the learner's definition, so every call, attribute and operator travels to the worker as a
  request and comes back as data. The comparisons, the messages and the result are computed
  here, in a process whose modules learner code never touched; what the worker sends can
  only be answers to the judge's own questions;
- the grader reads one JSON line per exercise from the judge, and kills both at the time limit.

A definition that dies, hangs or breaks the protocol gets ``error`` or ``timeout``, never a pass.
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


def run_checks(sandbox, jobs: list[dict], common: dict, *, timeout: float, cwd: str, judge=None):
    """[(status, message)] for ``jobs`` (one per exercise: check, target, program).

    ``judge``: a ``JudgeServer`` (checks imported once per grading run, a judge forked per
    notebook); without one, a judge process of its own starts for these jobs."""
    pipes = [(os.pipe(), os.pipe()) for _ in jobs]  # per exercise: judge->worker, worker->judge
    worker_fds = [fd for down, up in pipes for fd in (down[0], up[1])]
    judge_fds = [fd for down, up in pipes for fd in (up[0], down[1])]
    worker_job = {
        "exercises": [{"target": j["target"], "program": j["program"]} for j in jobs],
        "fds": [[down[0], up[1]] for down, up in pipes],
        "warm": common["checks_module"],
        "timeout": timeout,
        "own_pid_namespace": bool(sandbox.enabled),
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
        worker = _start(sandbox.argv(_command("worker")), sandbox.env(), cwd, worker_fds)
        processes.append(worker)
        if judge is None:
            judge = _start(_command("judge"), judge_env(sandbox), "/", [*judge_fds, result_w])
            processes.append(judge)
            _send(judge, {**judge_job, "out": result_w})
        else:
            judge.submit(judge_job, [*judge_fds, result_w])
    except OSError as exc:
        os.close(out)
        return [("error", f"could not start the checker: {exc}")] * len(jobs)
    finally:
        for fd in [*worker_fds, *judge_fds, result_w]:
            os.close(fd)
    results = []
    try:
        _send(worker, worker_job)
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
            _kill(process)
            LIVE.discard(process)
        os.close(out)
    while len(results) < len(jobs):
        results.append(("error", "not checked: the checker stopped on an earlier exercise"))
    return results


def _command(role: str) -> list[str]:
    """The judge starts with nothing of its working folder on its import path."""
    code = (
        f"import sys; del sys.path[0]; from shared.course.checker import {role}_main; {role}_main()"
    )
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
            argv = [*_command("judge_server"), checks_module, str(theirs.fileno())]
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
        _kill(self.process)
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


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            process.kill()
    process.wait()


# ------------------------------------------------------------------------ the judge (trusted)


def _uses_reference(candidate, target: str, packages: list[str]) -> str:
    """The reference class or function the candidate is or subclasses, if any (``module.name``)."""
    for path in getattr(candidate, "_desc", {}).get("own", []):
        module, _, qualname = path.partition(":")
        if module.split(".")[0] in packages and qualname.split(".")[-1] == target:
            return f"{module}.{target}"
    return ""


def judge_one(link, exercise: dict, job: dict, checks) -> tuple[str, str]:
    """Run one real check here against the learner's definition, which lives in the worker."""
    import contextlib
    import io

    from shared.course import remote

    check = getattr(checks, exercise["check"])
    try:
        first = link.receive()
        if "fail" in first:
            return "fail", str(first["fail"])[:2000]
        candidate = link.decode(first.get("candidate"))
    except remote.Deadline:
        return "timeout", f"the definition did not finish loading in {job['timeout']:g} s"
    except remote.Tampered:
        return "fail", TAMPERED
    except remote.ChannelClosed:
        return "error", NO_RESULT
    if not isinstance(candidate, remote.Remote):
        return "error", "no result from the checker (a malformed definition)"
    reference = _uses_reference(candidate, exercise["target"], job["reference_packages"])
    if reference:
        return "fail", f"uses the reference implementation `{reference}` instead of your own"
    captured = io.StringIO()
    link.deadline = time.monotonic() + job["timeout"]
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            check(candidate)
    except remote.Deadline:
        return "timeout", f"the check did not finish in {job['timeout']:g} s"
    except remote.Tampered:
        return "fail", TAMPERED
    except remote.ChannelClosed:
        return "error", NO_RESULT
    except AssertionError as exc:
        return "fail", str(exc) or "the check failed"
    except Exception as exc:
        return "fail", f"the check crashed on your code: {type(exc).__name__}: {exc}"
    lines = [ln for ln in captured.getvalue().splitlines() if ln.startswith("PASSED")]
    return "pass", lines[-1] if lines else "PASSED"


def _judge(job: dict, checks, pairs, out: int) -> None:
    """Every exercise of one notebook, in order; one JSON line per result on ``out``."""
    from shared.course.remote import ChannelClosed, Link

    for index, (exercise, (read_fd, write_fd)) in enumerate(
        zip(job["exercises"], pairs, strict=True)
    ):
        loading = job["timeout"] + SLACK_S  # the definition's imports and code, before the check
        link = Link(read_fd, write_fd, trusted=True, deadline=time.monotonic() + loading)
        if index == 0:
            link.deadline += STARTUP_ALLOWANCE_S
        try:
            status, message = judge_one(link, exercise, job, checks)
        except Exception as exc:  # a fault of the grader's own: never a pass
            status, message = "error", f"grader error: {type(exc).__name__}: {exc}"
        try:
            link.deadline = time.monotonic() + 1
            link.send({"op": "bye"})
        except (ChannelClosed, OSError):
            pass
        for fd in (read_fd, write_fd):
            os.close(fd)
        record = {"index": index, "status": status, "message": str(message)[:2000]}
        try:
            os.write(out, (json.dumps(record) + "\n").encode("utf-8"))
        except OSError:  # the grader stopped listening
            return


def judge_main() -> None:  # pragma: no cover - a process of its own (tested through run_checks)
    import importlib

    job = json.loads(sys.stdin.read())
    checks = importlib.import_module(job["checks_module"])
    _judge(job, checks, [tuple(pair) for pair in job["fds"]], job["out"])
    os._exit(0)


def judge_server_main() -> None:  # pragma: no cover - tested through grade_class
    """Import the checks once, then fork one judge per job received on the socket."""
    import importlib
    import socket

    checks = importlib.import_module(sys.argv[-2])
    server = socket.socket(fileno=int(sys.argv[-1]))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # finished judges are reaped by the kernel
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(server, 1 << 20, 256)
        except OSError:
            os._exit(0)
        if not message:  # the grader is gone
            os._exit(0)
        job = json.loads(message)
        if os.fork() == 0:
            try:
                server.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                pairs = [(fds[2 * i], fds[2 * i + 1]) for i in range(len(job["exercises"]))]
                _judge(job, checks, pairs, fds[-1])
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)


# ------------------------------------------------------------------------ the worker (sandbox)


def _define(exercise: dict) -> tuple[object, str]:
    """Run the learner's program; (the target, or None and why it could not be defined)."""
    import builtins

    namespace = {"__name__": "__main__", "__builtins__": builtins}
    for label, source in exercise["program"]:
        try:
            exec(compile(source, f"<{label}>", "exec"), namespace)
        except BaseException as exc:
            return None, f"{label}: running the definition raised {type(exc).__name__}: {exc}"
    if exercise["target"] not in namespace:
        return None, f"the program does not define `{exercise['target']}`"
    return namespace[exercise["target"]], ""


def _serve(exercise: dict, read_fd: int, write_fd: int) -> None:
    """The child: define the learner's object, lend it to the judge, answer until ``bye``."""
    from shared.course.remote import Link

    link = Link(read_fd, write_fd, trusted=False)
    with open(os.devnull, "w") as sink:
        sys.stdout = sys.stderr = sink
        candidate, why = _define(exercise)
        if why:
            link.send({"fail": why})
            return
        link.send({"candidate": link.encode(candidate)})
        while True:
            message = link.receive()
            if message.get("op") == "bye":
                return
            link.serve_one(message)


def _not_dumpable() -> None:
    """Children running learner code cannot ptrace this process or read its memory."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def _in_child(exercise: dict, fds: list[int], mine: tuple[int, int], job: dict) -> None:
    """Run one exercise in a forked child; kill whatever it left behind."""
    pid = os.fork()
    if pid == 0:
        try:
            for fd in fds:  # only this exercise's pair stays open
                if fd not in mine:
                    os.close(fd)
            os.setsid()
            _serve(exercise, *mine)
        finally:
            os._exit(0)  # no atexit or finalizer of the learner's code runs after the answer
    os.close(mine[1])
    poller = select.poll()  # the judge hanging up on this exercise ends it: no waiting more
    poller.register(mine[0], select.POLLHUP)
    deadline = time.monotonic() + job["timeout"] + SLACK_S
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            break
        if any(event & (select.POLLHUP | select.POLLERR) for _, event in poller.poll(10)):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(mine[0])
    try:  # whatever the child left running: all of the sandbox, or the child's session
        if job["own_pid_namespace"]:
            os.kill(-1, signal.SIGKILL)  # every process here but init and this one
        else:
            os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def worker_main() -> None:  # pragma: no cover - runs in the sandbox (tested through run_checks)
    import importlib

    job = json.loads(sys.stdin.read())
    importlib.import_module(job["warm"])  # once, before any clock starts: torch etc.
    _not_dumpable()
    pairs = [tuple(pair) for pair in job["fds"]]
    open_fds = [fd for pair in pairs for fd in pair]
    for exercise, pair in zip(job.pop("exercises"), pairs, strict=True):
        try:
            _in_child(exercise, open_fds, pair, job)
        except OSError:  # fork failed: out of processes or memory; the judge sees no answer
            for fd in pair:
                try:
                    os.close(fd)
                except OSError:
                    pass
        open_fds = [fd for fd in open_fds if fd not in pair]
    os._exit(0)


if __name__ == "__main__":
    {"judge": judge_main, "worker": worker_main, "judge_server": judge_server_main}[sys.argv[1]]()
