"""The judge: the real checks, run against proxies of a learner's definitions (issue #23).

Trusted code only, outside the sandbox. ``judge_main`` grades one notebook's exercises;
``judge_server_main`` imports the checks once per grading run and forks one judge per notebook
(``shared.grading.checker.JudgeServer``). Each exercise's definition lives in the sandboxed
worker (``shared.grading.worker``); everything the check does to it is a request over that
exercise's pipes (``shared.grading.remote``), and the verdict is decided here.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from shared.grading.checker import NO_RESULT, SLACK_S, STARTUP_ALLOWANCE_S, TAMPERED


def _uses_reference(candidate, target: str, packages: list[str]) -> str:
    """The reference class or function the candidate is or subclasses, if any (``module.name``)."""
    for path in getattr(candidate, "_desc", {}).get("own", []):
        module, _, qualname = path.partition(":")
        if module.split(".")[0] in packages and qualname.split(".")[-1] == target:
            return f"{module}.{target}"
    return ""


def _channel_outcome(exc: BaseException, late: str, timeout: float) -> tuple[str, str]:
    """The result when the channel to the worker fails: too late, forged, or gone."""
    from shared.grading import remote

    if isinstance(exc, remote.Deadline):
        return "timeout", f"{late} in {timeout:g} s"
    if isinstance(exc, remote.Tampered):
        return "fail", TAMPERED
    return "error", NO_RESULT


def judge_one(link, exercise: dict, job: dict, checks) -> tuple[str, str]:
    """Run one real check here against the learner's definition, which lives in the worker."""
    import contextlib
    import io

    from shared.grading import remote

    check = getattr(checks, exercise["check"])
    try:
        first = link.receive()
        if "fail" in first:
            return "fail", str(first["fail"])[:2000]
        candidate = link.decode(first.get("candidate"))
    except (remote.Deadline, remote.ChannelClosed) as exc:  # ChannelClosed: Tampered too
        return _channel_outcome(exc, "the definition did not finish loading", job["timeout"])
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
    except (remote.Deadline, remote.ChannelClosed) as exc:
        return _channel_outcome(exc, "the check did not finish", job["timeout"])
    except AssertionError as exc:
        return "fail", str(exc) or "the check failed"
    except Exception as exc:
        return "fail", f"the check crashed on your code: {type(exc).__name__}: {exc}"
    lines = [ln for ln in captured.getvalue().splitlines() if ln.startswith("PASSED")]
    return "pass", lines[-1] if lines else "PASSED"


def _judge(job: dict, checks, pairs, out: int) -> None:
    """Every exercise of one notebook, in order; one JSON line per result on ``out``."""
    from shared.grading.remote import ChannelClosed, Link

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
