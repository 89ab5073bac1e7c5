"""Run a notebook's cells in a kernel inside the student's sandbox (``shared.grading.sandbox``).

The kernel is this interpreter's ipykernel, whatever the notebook's metadata says, forked by
the zygote of the student's sandbox (``shared.grading.student_sandbox``): ``ZygoteProvisioner``
is jupyter_client's local provisioner with the launch, poll and signals sent to the zygote.
With no network in the sandbox the kernel talks to nbclient over ``ipc`` (Unix sockets) in a
per-notebook folder of the one host folder bound read-write. The kernel interrupts itself on an
``interrupt_request`` message (``interrupt_mode: message``): the grader sends it no signal.

``SandboxClient`` leaves Ctrl-C to the grader, records cells that timed out, stops a cell that ignores the interrupt
(``StuckCell``) and caps how much output a cell may pile up.
"""

from __future__ import annotations

import sys
import time
from contextlib import asynccontextmanager

KERNEL_NAME = "gpt-course-sandbox"
MAX_CELL_OUTPUT_CHARS = 200_000  # a cell printing forever must not eat the grader's memory
STUCK_GRACE_S = 10  # after an interrupt, how long a cell may take to stop before the kill


class StuckCell(Exception):
    """A cell kept running after it was interrupted: the kernel is stopped."""


def _spec_manager():
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    spec = KernelSpec(
        argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],  # not run
        display_name="course sandbox",
        language="python",
        interrupt_mode="message",
        env={},
    )

    class SandboxSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return spec

    return SandboxSpecs()


def zygote_provisioner(place, km):
    """A provisioner for ``km`` whose kernel the zygote of ``place`` forks."""
    import asyncio
    import signal

    from jupyter_client.provisioning import LocalProvisioner

    from shared.grading.checker import SandboxGone

    class ZygoteProvisioner(LocalProvisioner):
        kernel_pid = None  # inside the sandbox's PID namespace: only the zygote can use it

        @property
        def has_process(self) -> bool:
            return self.kernel_pid is not None

        async def _ask(self, **message) -> dict:
            return await asyncio.to_thread(place.request, message)

        async def launch_kernel(self, cmd, **kwargs):
            reply = await self._ask(op="kernel", connection_file=km.connection_file)
            self.kernel_pid = reply["pid"]
            return self.connection_info

        async def poll(self):
            if self.kernel_pid is None:
                return 0
            try:
                return (await self._ask(op="poll", pid=self.kernel_pid))["exit"]
            except SandboxGone:
                return -signal.SIGKILL

        async def wait(self):
            while (code := await self.poll()) is None:
                await asyncio.sleep(0.1)
            self.kernel_pid = None
            return code

        async def send_signal(self, signum: int) -> None:
            if self.kernel_pid is not None:
                try:
                    await self._ask(op="signal", pid=self.kernel_pid, signum=int(signum))
                except SandboxGone:
                    pass

        async def kill(self, restart: bool = False) -> None:
            await self.send_signal(signal.SIGKILL)

        async def terminate(self, restart: bool = False) -> None:
            await self.send_signal(signal.SIGTERM)

    return ZygoteProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)


def client_class():
    from nbclient import NotebookClient

    class SandboxClient(NotebookClient):
        """nbclient with: the sandboxed kernel, a record of timed-out cells, capped outputs."""

        place: object  # the student's sandbox (shared.grading.student_sandbox)
        conn_dir: str

        def create_kernel_manager(self):
            import uuid

            self.kernel_name = KERNEL_NAME
            self.km = self.kernel_manager_class(
                kernel_name=KERNEL_NAME,
                kernel_spec_manager=_spec_manager(),
                transport="ipc",
                connection_file=f"{self.conn_dir}/kernel.json",
                config=self.config,
            )
            self.km.kernel_id = str(uuid.uuid4())
            self.km.provisioner = zygote_provisioner(self.place, self.km)
            return self.km

        @asynccontextmanager
        async def async_setup_kernel(self, **kwargs):
            """nbclient's, without its SIGINT/SIGTERM handlers and atexit hook: the grader
            handles Ctrl-C for all its sandboxes, and bwrap dies with the grader anyway."""
            if self.km is None:
                self.km = self.create_kernel_manager()
            if not self.km.has_kernel:
                await self.async_start_new_kernel(**kwargs)
            if self.kc is None:
                await self.async_start_new_kernel_client()
            try:
                yield
            finally:
                await self._async_cleanup_kernel()

        async def async_execute_cell(
            self, cell, cell_index, execution_count=None, store_history=True
        ):
            self.current_index = cell_index
            self.output_chars = 0
            return await super().async_execute_cell(
                cell, cell_index, execution_count, store_history
            )

        async def _async_handle_timeout(self, timeout, cell=None):
            # nbclient interrupts and waits again; a cell still running a grace period after
            # the first interrupt ignores interrupts (or is stuck in native code): give up.
            now = time.monotonic()
            first = self.interrupted_at.setdefault(self.current_index, now)
            if now - first >= max(timeout, STUCK_GRACE_S):
                raise StuckCell(self.current_index)
            if self.current_index not in self.timed_out:
                self.timed_out.append(self.current_index)
            return await super()._async_handle_timeout(timeout, cell)

        def output(self, outs, msg, display_id, cell_index):
            content = msg.get("content", {})
            self.output_chars += len(str(content.get("text", ""))) + len(
                str(content.get("data", ""))
            )
            if self.output_chars > MAX_CELL_OUTPUT_CHARS:
                return None
            return super().output(outs, msg, display_id, cell_index)

    return SandboxClient
