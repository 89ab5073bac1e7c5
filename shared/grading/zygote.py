"""The zygote: one student's sandbox, started once, forking a kernel and a worker per notebook.

Starting Python and importing torch, ipykernel and the checks takes a second or two; a class
of 30 x 10 notebooks paid it twice per notebook (the kernel and the checks' worker). The
grader (``shared.grading.student_sandbox``) now starts one bubblewrap sandbox per student with
this process inside as PID 1 (``bwrap --as-pid-1``). It imports everything once, makes itself
non-dumpable and then only answers the grader's requests on its control socket:

- ``kernel``: fork a Jupyter kernel (ipykernel) on the given connection file;
- ``worker``: fork the checks' worker (``shared.grading.worker``) on the pipes it is sent;
- ``poll`` / ``signal``: the state of a child, a signal to its process group;
- ``reset``: kill every other process of the sandbox and empty its writable folders, so the
  next notebook starts as if in a fresh sandbox.

The children run learner code; this process never does. As the PID 1 of its own PID namespace
it cannot be killed from inside, and being non-dumpable it cannot be traced or read: a notebook
can change nothing of the next one but what ``reset`` wipes. Other students never share it.
Without a sandbox (``--no-sandbox``) it is a plain process and kills only its own children.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import socket
import sys

from shared.grading.sandbox import HOME, ROOT, WORK

WIPED = (ROOT, "/tmp", "/dev/shm")  # the sandbox's writable places (bound files stay)
KEPT = (WORK, HOME, ROOT + "/shared")  # the layout a fresh sandbox starts with
IGNORED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def zygote_main() -> None:  # pragma: no cover - runs in the sandbox (tested through grading)
    control = socket.socket(fileno=int(sys.argv[-1]))
    config = json.loads(control.recv(1 << 16))
    for name in config["preload"]:
        try:
            importlib.import_module(name)
        except Exception:  # a notebook that needs it says so itself
            pass
    from shared.grading.worker import set_dumpable

    set_dumpable(False)
    for signum in IGNORED:  # only the grader stops this process (SIGKILL, or closing the socket)
        signal.signal(signum, signal.SIG_IGN)
    Zygote(control, own_namespace=config["own_pid_namespace"]).serve()


class Zygote:
    def __init__(self, control: socket.socket, own_namespace: bool):
        self.control = control
        self.own_namespace = own_namespace
        self.children: dict[int, int | None] = {}  # pid -> exit code (None: running)

    def serve(self) -> None:
        self.control.send(json.dumps({"ready": True}).encode("utf-8"))
        while True:
            self.reap()
            if not select.select([self.control], [], [], 0.5)[0]:
                continue  # orphans of learner code are reaped twice a second
            try:
                data, fds, _, _ = socket.recv_fds(self.control, 1 << 20, 64)
            except OSError:
                os._exit(0)
            if not data:  # the grader is gone
                self.kill_all()
                os._exit(0)
            try:
                reply = self.handle(json.loads(data), fds)
            except Exception as exc:  # fork failed (out of processes, memory): say so, go on
                for fd in fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            self.control.send(json.dumps(reply).encode("utf-8"))

    def handle(self, request: dict, fds: list[int]) -> dict:
        op = request.get("op")
        if op == "kernel":
            return {"pid": self.fork(_run_kernel, request["connection_file"])}
        if op == "worker":
            job = request["job"]
            job["fds"] = [[fds[2 * i], fds[2 * i + 1]] for i in range(len(fds) // 2)]
            pid = self.fork(_run_worker, job)
            for fd in fds:
                os.close(fd)
            return {"pid": pid}
        if op == "poll":
            self.reap()
            return {"exit": self.children.get(request["pid"], -1)}
        if op == "signal":
            try:
                os.killpg(request["pid"], request["signum"])
            except OSError:
                pass
            return {}
        if op == "reset":
            self.kill_all()
            if request.get("files") and self.own_namespace:
                for folder in WIPED:
                    _empty(folder)
                for folder in KEPT:
                    os.makedirs(folder, exist_ok=True)
                os.chdir(WORK)
            return {"ok": True}
        return {"error": f"unknown request {op!r}"}

    def fork(self, run, argument) -> int:
        pid = os.fork()
        if pid == 0:
            try:
                self.control.close()
                os.setsid()
                signal.signal(signal.SIGINT, signal.default_int_handler)
                for signum in IGNORED[1:]:
                    signal.signal(signum, signal.SIG_DFL)
                run(argument)
            finally:
                os._exit(0)
        self.children = {p: code for p, code in self.children.items() if code is None}
        self.children[pid] = None
        return pid

    def reap(self, wait: bool = False) -> None:
        """Collect finished children (``wait``: until none is left), keeping our children's
        exit codes; orphans of learner code end here too."""
        while True:
            try:
                pid, status = os.waitpid(-1, 0 if wait else os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.children:
                self.children[pid] = os.waitstatus_to_exitcode(status)

    def kill_all(self) -> None:
        """Every process of the sandbox but this one (or, without a sandbox, our children's)."""
        if self.own_namespace:
            try:
                os.kill(-1, signal.SIGKILL)  # PID 1 and its namespace: everyone else, at once
            except OSError:
                pass
        else:
            for pid in [p for p, code in self.children.items() if code is None]:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
        self.reap(wait=True)


def _run_kernel(connection_file: str) -> None:
    """A Jupyter kernel, as ``python -m ipykernel_launcher -f FILE`` started in the work folder."""
    from ipykernel.kernelapp import IPKernelApp

    from shared.grading.worker import set_dumpable

    set_dumpable(True)  # a kernel like any other (the zygote and the worker stay non-dumpable)
    sys.path.insert(0, os.getcwd())
    sys.argv = [sys.executable, "-f", connection_file]
    IPKernelApp.launch_instance(argv=["-f", connection_file])


def _run_worker(job: dict) -> None:
    from shared.grading.worker import serve_job

    serve_job(job)


def _empty(folder: str, device: int | None = None) -> None:
    """Delete what ``folder`` holds, never crossing into a mount (the grader's bound folders)."""
    try:
        device = os.stat(folder).st_dev if device is None else device
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.stat(follow_symlinks=False).st_dev != device:
                continue
            if entry.is_dir(follow_symlinks=False):
                _empty(entry.path, device)
                os.rmdir(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:  # a folder holding a mount stays
            pass
