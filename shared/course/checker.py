"""Check one exercise's extracted definition in a fresh sandboxed process.

Grader side, ``run_check``: starts ``python -m shared.course.checker FD`` in the sandbox with a
pipe on ``FD``, sends the job (the program from ``shared.course.extract``, the check's name, a
random nonce) on stdin, and waits at most the time limit (then the whole sandbox is killed).
The result counts only when it arrives on that pipe as one record carrying the nonce, and the
process exits with status 0; anything else is an error, never a pass. Nothing the process
prints is read.

Sandbox side, ``main``: reads the job, imports the installed checks, keeps the pipe and the
functions it needs to report, and only then runs the learner's program (imports, helpers, the
definition: nothing else of the notebook) and calls the check on the definition.
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
LIVE: set[subprocess.Popen] = set()  # running checkers, killed on Ctrl-C (kill_all)


def run_check(sandbox, job: dict, *, timeout: float, cwd: str) -> tuple[str, str]:
    """(status, message) for one exercise; ``job`` is the extraction plus the check's name."""
    nonce = secrets.token_hex(16)
    read_end, write_end = os.pipe()
    command = [sys.executable, "-m", "shared.course.checker", str(write_end)]
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
        return "error", f"could not start the checker: {exc}"
    os.close(write_end)
    LIVE.add(process)
    try:
        try:
            process.stdin.write(json.dumps({**job, "nonce": nonce}).encode("utf-8"))
            process.stdin.close()
        except OSError:
            pass
        ready, data = _read_until(read_end, b"ready\n", STARTUP_ALLOWANCE_S)
        if not ready:
            return "error", "the checker did not start (out of memory, or a broken install?)"
        finished, data = _read_until(read_end, None, timeout, data[len(b"ready\n") :])
        if not finished:
            return "timeout", f"the check did not finish in {timeout:g} s"
        try:
            code = process.wait(10)
        except subprocess.TimeoutExpired:
            code = -9
    finally:
        _kill(process)
        LIVE.discard(process)
        os.close(read_end)
    return _parse(data, code, nonce)


def _read_until(fd: int, marker: bytes | None, limit: float, data: bytes = b""):
    """Read ``fd`` until ``data`` starts with ``marker`` (None: until end of file) or ``limit``."""
    deadline = time.monotonic() + limit
    while len(data) <= MAX_RESULT_BYTES:
        if marker is not None and data.startswith(marker):
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
    lines = data.decode("utf-8", "replace").splitlines()
    records = []
    for line in lines:
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


def main() -> None:  # pragma: no cover - runs in the sandbox (tested through run_check)
    fd = int(sys.argv[1])
    job = json.loads(sys.stdin.read())
    nonce = job.pop("nonce")
    os.set_inheritable(fd, False)
    write, dumps, exit_now = os.write, json.dumps, os._exit
    import importlib

    importlib.import_module(job["checks_module"])  # before the clock starts: torch etc.
    write(fd, b"ready\n")
    start = time.monotonic()
    try:
        status, message = _run(job)
    except BaseException as exc:  # the checks themselves could not load
        status, message = "error", f"the checker failed: {type(exc).__name__}: {exc}"
    record = {"nonce": nonce, "status": status, "message": str(message)[:2000]}
    record["seconds"] = round(time.monotonic() - start, 3)
    write(fd, (dumps(record) + "\n").encode("utf-8"))
    exit_now(0)  # no atexit or finalizer of the learner's code runs after the result


if __name__ == "__main__":
    main()
