"""The worker: a learner's definitions, in the sandbox, answering the judge's requests.

Forked by the student sandbox's zygote (``shared.grading.zygote``: torch and the course
already imported, non-dumpable), ``serve_job`` forks, for each exercise, a child that keeps
only that exercise's pipes, runs the learner's program (imports, helpers, the definition:
nothing else of the notebook) and lends the definition to the judge
(``shared.grading.remote``): it never sees a check, a comparison or a verdict.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

from shared.grading.checker import SLACK_S


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
    from shared.grading.remote import Link

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


def set_dumpable(dumpable: bool) -> None:
    """``False``: processes running learner code cannot ptrace this one or read its memory."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, int(dumpable), 0, 0, 0)  # PR_SET_DUMPABLE = 4
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


def serve_job(job: dict) -> None:
    """Every exercise of ``job``, one forked child each, in order; then this process ends."""
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
