"""Check a notebook's extracted definitions, each in a fresh process, inside the sandbox.

Grader side, ``run_checks``: starts ``python -m shared.course.checker FD`` in the sandbox with a
pipe on ``FD`` and sends the jobs (the programs from ``shared.course.extract``, the checks'
names, a random nonce) on stdin. Nothing the process prints is read: a result counts only
when it arrives on that pipe, in order, carrying the nonce; a missing one is an error, never a
pass, and the whole sandbox is killed at the time limit.

Sandbox side, ``main`` (trusted code only): imports the installed checks once (torch and all),
makes itself non-dumpable (no ptrace, no /proc/PID/mem), says ``ready``, then for each exercise
forks a child that closes the grader's pipe and only then runs the learner's program (imports,
helpers, the definition: nothing else of the notebook) and the check. The child reports on a
pipe of its own, with a nonce of its own, and has ``timeout`` seconds; then everything it left
running is killed. So one exercise's code never sees another's, nor the grader's channel.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time

MAX_RESULT_BYTES = 64 * 1024
STARTUP_ALLOWANCE_S = 60  # Python + torch + the checks, on a busy laptop
SLACK_S = 15  # per exercise, on top of its time limit: fork, cleanup, a loaded machine
LIVE: set[subprocess.Popen] = set()  # running checkers, killed on Ctrl-C (kill_all)


def run_checks(sandbox, jobs: list[dict], common: dict, *, timeout: float, cwd: str):
    """[(status, message)] for ``jobs`` (one per exercise: check, target, program)."""
    nonce = secrets.token_hex(16)
    read_end, write_end = os.pipe()
    command = [sys.executable, "-m", "shared.course.checker", str(write_end)]
    payload = {**common, "exercises": jobs, "timeout": timeout, "nonce": nonce}
    payload["own_pid_namespace"] = bool(sandbox.enabled)
    try:
        process = subprocess.Popen(
            sandbox.argv(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(write_end,),
            start_new_session=True,  # no terminal, own process group: killed as one
            env=sandbox.env(),
            cwd=cwd,
        )
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        return [("error", f"could not start the checker: {exc}")] * len(jobs)
    os.close(write_end)
    LIVE.add(process)
    results = []
    try:
        try:
            process.stdin.write(json.dumps(payload).encode("utf-8"))
            process.stdin.close()
        except OSError:
            pass
        ready, data = _read_until(read_end, b"ready\n", STARTUP_ALLOWANCE_S)
        data = data[len(b"ready\n") :]
        if not ready:
            why = "the checker did not start (out of memory, or a broken install?)"
            return [("error", why)] * len(jobs)
        for index in range(len(jobs)):
            start = time.monotonic()
            complete, data = _read_until(read_end, b"\n", timeout + SLACK_S, data, contains=True)
            if not complete:
                if time.monotonic() - start >= timeout + SLACK_S:
                    results.append(("timeout", f"the check did not finish in {timeout:g} s"))
                else:  # the pipe closed: the checker died
                    why = "it was killed: os.kill, os._exit, out of memory or a native crash"
                    results.append(("error", f"no result from the checker ({why})"))
                break
            line, data = data.split(b"\n", 1)
            results.append(_parse_record(line, nonce, index))
    finally:
        _kill(process)
        LIVE.discard(process)
        os.close(read_end)
    while len(results) < len(jobs):
        results.append(("error", "not checked: the checker stopped on an earlier exercise"))
    return results


def _parse_record(line: bytes, nonce: str, index: int) -> tuple[str, str]:
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if not isinstance(record, dict) or record.get("nonce") != nonce or record.get("index") != index:
        return "error", "no result from the checker (its channel was tampered with)"
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


def _parse(data: bytes, code: int, nonce: str) -> tuple[str, str]:
    """A child's report: exactly one record with its nonce, and exit status 0."""
    records = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            records.append(None)
    if code != 0 or len(records) != 1 or not isinstance(records[0], dict):
        why = f"exit status {code}" if code else "its result channel was tampered with"
        if not records and code:
            why += " (killed, out of memory, os._exit or a crash in native code)"
        return "error", f"no result from the checker ({why})"
    record = records[0]
    if record.get("nonce") != nonce or record.get("status") not in ("pass", "fail", "error"):
        return "error", "no result from the checker (a forged result was rejected)"
    return record["status"], str(record.get("message", ""))[:2000]


# ------------------------------------------------------------------------ inside the sandbox


def _reference_base(candidate, target: str, packages: list[str]) -> str:
    """The reference class the candidate is or subclasses, if any (``module.name``)."""
    classes = candidate.__mro__ if isinstance(candidate, type) else (candidate,)
    for cls in classes:
        module = str(getattr(cls, "__module__", ""))
        if module.split(".")[0] in packages and getattr(cls, "__name__", "") == target:
            return f"{module}.{target}"
    return ""


def _run(job: dict) -> tuple[str, str]:
    import builtins
    import contextlib
    import importlib
    import io

    checks = importlib.import_module(job["checks_module"])
    check = getattr(checks, job["check"])
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    for label, source in job["program"]:
        try:
            exec(compile(source, f"<{label}>", "exec"), namespace)
        except BaseException as exc:
            return "fail", f"{label}: running the definition raised {type(exc).__name__}: {exc}"
    candidate = namespace.get(job["target"])
    reference = _reference_base(candidate, job["target"], job["reference_packages"])
    if reference:
        return "fail", f"uses the reference implementation `{reference}` instead of your own"
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            check(candidate)
    except AssertionError as exc:
        return "fail", str(exc) or "the check failed"
    except BaseException as exc:
        return "fail", f"the check crashed on your code: {type(exc).__name__}: {exc}"
    lines = [ln for ln in captured.getvalue().splitlines() if ln.startswith("PASSED")]
    return "pass", lines[-1] if lines else "PASSED"


def _not_dumpable() -> None:
    """Children running learner code cannot ptrace this process or read its memory."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def _in_child(exercise: dict, job: dict, grader_fd: int) -> tuple[str, str]:
    """Run one exercise in a forked child; its report, or why there is none."""
    nonce = secrets.token_hex(16)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop the grader's channel before any learner code runs
        try:
            os.close(grader_fd)
            os.close(read_end)
            os.setsid()
            status, message = _run({**job, **exercise})
            record = {"nonce": nonce, "status": status, "message": str(message)[:2000]}
            os.write(write_end, (json.dumps(record) + "\n").encode("utf-8"))
        finally:
            os._exit(0)  # no atexit or finalizer of the learner's code runs after the result
    os.close(write_end)
    finished, data = _read_until(read_end, None, job["timeout"])
    os.close(read_end)
    if not finished:
        os.kill(pid, signal.SIGKILL)
    _, wait_status = os.waitpid(pid, 0)
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
    if not finished:
        return "timeout", f"the check did not finish in {job['timeout']:g} s"
    return _parse(data, os.waitstatus_to_exitcode(wait_status), nonce)


def main() -> None:  # pragma: no cover - runs in the sandbox (tested through run_checks)
    import importlib

    fd = int(sys.argv[1])
    job = json.loads(sys.stdin.read())
    nonce = job.pop("nonce")
    os.set_inheritable(fd, False)
    importlib.import_module(job["checks_module"])  # once, before any clock starts: torch etc.
    _not_dumpable()
    os.write(fd, b"ready\n")
    for index, exercise in enumerate(job.pop("exercises")):
        try:
            status, message = _in_child(exercise, job, fd)
        except OSError as exc:  # fork failed: out of processes or memory
            status, message = "error", f"the checker could not run it: {exc}"
        record = {"nonce": nonce, "index": index, "status": status, "message": message}
        os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
    os._exit(0)


if __name__ == "__main__":
    main()
