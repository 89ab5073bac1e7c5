"""Run a notebook's cells in a kernel inside the sandbox (``shared.course.sandbox``).

The kernel is this interpreter's ipykernel, whatever the notebook's metadata says; its command
line is wrapped in bwrap. With no network in the sandbox the kernel talks to nbclient over
``ipc`` (Unix sockets) in a per-notebook folder, the one host folder bound read-write. The kernel
interrupts itself on an ``interrupt_request`` message (``interrupt_mode: message``): a signal
sent from the grader would reach bwrap, not the kernel.

``SandboxClient`` leaves Ctrl-C to the grader, records cells that timed out, stops a cell that ignores the interrupt
(``StuckCell``) and caps how much output a cell may pile up.
"""

from __future__ import annotations

import sys
import time
from contextlib import asynccontextmanager

from shared.course.sandbox import Sandbox

KERNEL_NAME = "gpt-course-sandbox"
MAX_CELL_OUTPUT_CHARS = 200_000  # a cell printing forever must not eat the grader's memory
STUCK_GRACE_S = 10  # after an interrupt, how long a cell may take to stop before the kill


class StuckCell(Exception):
    """A cell kept running after it was interrupted: the kernel is stopped."""


def _spec_manager(sandbox: Sandbox, conn_dir: str):
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    command = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = KernelSpec(
        argv=sandbox.argv(command, rw_paths=(conn_dir,)),
        display_name="course sandbox",
        language="python",
        interrupt_mode="message",
        env={},
    )

    class SandboxSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return spec

    return SandboxSpecs()


def client_class():
    from nbclient import NotebookClient

    class SandboxClient(NotebookClient):
        """nbclient with: the sandboxed kernel, a record of timed-out cells, capped outputs."""

        sandbox: Sandbox
        conn_dir: str

        def create_kernel_manager(self):
            self.kernel_name = KERNEL_NAME
            self.km = self.kernel_manager_class(
                kernel_name=KERNEL_NAME,
                kernel_spec_manager=_spec_manager(self.sandbox, self.conn_dir),
                transport="ipc",
                connection_file=f"{self.conn_dir}/kernel.json",
                config=self.config,
            )
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
