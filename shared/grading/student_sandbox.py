"""One sandbox per student, started once and reused for each of that student's notebooks.

A fresh bubblewrap sandbox per notebook cost two Python starts that import torch (the kernel
and the checks' worker): about 2.5 s of CPU for every notebook of a class. A
``StudentSandbox`` starts one sandbox (``shared.grading.sandbox``) whose PID 1 is the zygote
(``shared.grading.zygote``): it imports torch, ipykernel and the checks once, then forks a
kernel and a worker per notebook. Between notebooks ``reset`` kills every process of the
sandbox and empties its writable folders, so each notebook still starts clean. Students
never share a sandbox.

The grader talks to the zygote over a socket pair (JSON, file descriptors with ``SCM_RIGHTS``).
A zygote that stops answering is killed with its sandbox (``SandboxGone``); the student's next
notebook gets a new one.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

from shared.grading.checker import STARTUP_ALLOWANCE_S, SandboxGone, command, kill_process

# Imported once per student, before any learner code: what kernels and checks use.
PRELOAD = (
    "torch",
    "numpy",
    "matplotlib.pyplot",
    "ipykernel.kernelapp",
    "shared.grading.worker",
    "shared.grading.remote",
    "shared.generate",
    "shared.train",
    "shared.lesson_tools.ladder",
    "shared.viz",
    "shared.modern",
)
REQUEST_S = 60  # a reset waits for every process of the sandbox to die
LIVE: set[StudentSandbox] = set()  # killed on Ctrl-C (kill_all)


class StudentSandbox:
    def __init__(self, box, scratch: str, checks_module: str):
        self.box, self.lock, self.kernels, self.gone = box, threading.Lock(), 0, ""
        # Unix socket paths are limited to ~107 bytes: a long TMPDIR falls back to /tmp.
        short_dir = scratch if len(scratch) <= 48 or not os.path.isdir("/tmp") else "/tmp"
        self.conn_dir = tempfile.mkdtemp(prefix="gpt-course-kernel-", dir=short_dir)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [*command("zygote"), str(theirs.fileno())]
        try:
            self.process = subprocess.Popen(
                box.argv(argv, rw_paths=(self.conn_dir,), as_pid_1=True),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
                start_new_session=True,
                env=box.env(),
                cwd=scratch,
            )
        except OSError as exc:
            shutil.rmtree(self.conn_dir, ignore_errors=True)
            raise SandboxGone(f"could not start the sandbox: {exc}") from None
        finally:
            theirs.close()
        self.socket = ours
        LIVE.add(self)
        preload = [checks_module, *PRELOAD]
        self.request({"preload": preload, "own_pid_namespace": bool(box.enabled)},
                     timeout=STARTUP_ALLOWANCE_S * 3)  # fmt: skip

    def request(self, message: dict, fds=(), timeout: float = REQUEST_S) -> dict:
        """Send ``message`` (and ``fds``) to the zygote, return its answer."""
        with self.lock:
            if self.gone:
                raise SandboxGone(self.gone)
            try:
                socket.send_fds(self.socket, [json.dumps(message).encode("utf-8")], list(fds))
                if not select.select([self.socket], [], [], timeout)[0]:
                    raise TimeoutError
                data = self.socket.recv(1 << 20)
                reply = json.loads(data)
                if not isinstance(reply, dict):
                    raise ValueError
            except (OSError, ValueError) as exc:
                why = "did not answer in time" if isinstance(exc, TimeoutError) else "stopped"
                self._stop(f"the sandbox {why} (out of memory or processes?)")
                raise SandboxGone(self.gone) from None
        if "error" in reply:  # it is alive but could not do it (a fork failed)
            raise OSError(f"the sandbox could not {message.get('op', 'start')}: {reply['error']}")
        return reply

    def kernel_dir(self) -> str:
        """A new folder for a kernel's connection file and sockets, visible inside."""
        self.kernels += 1
        path = os.path.join(self.conn_dir, f"k{self.kernels}")
        os.mkdir(path, 0o700)
        return path

    def start_worker(self, job: dict, fds: list[int]) -> int:
        return self.request({"op": "worker", "job": job}, fds=fds)["pid"]

    def reset(self, files: bool = True) -> None:
        """Kill every process in the sandbox; ``files``: and empty its writable folders."""
        self.request({"op": "reset", "files": files})

    @property
    def alive(self) -> bool:
        return not self.gone and self.process.poll() is None

    def close(self) -> None:
        with self.lock:
            self._stop("the sandbox was closed")

    def _stop(self, why: str) -> None:
        self.gone = self.gone or why
        kill_process(self.process)
        self.socket.close()
        shutil.rmtree(self.conn_dir, ignore_errors=True)
        LIVE.discard(self)


def kill_all() -> None:
    """Kill every student sandbox (from a signal handler: no waiting, no locks)."""
    for place in list(LIVE):
        try:
            os.killpg(place.process.pid, signal.SIGKILL)
        except OSError:
            pass
