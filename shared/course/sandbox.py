"""A fresh, isolated place to run one untrusted notebook: folder, environment, kernel client.

- ``make_sandbox``: a temporary folder per notebook that looks like a project root (so lesson
  files such as checkpoints land there), with its own HOME, IPython profile and copy of the
  corpus: no notebook can change what another one reads, or plant startup files for it.
- ``kernel_env``: quick mode, headless matplotlib, one thread per kernel, no user site-packages.
- ``client_class()``: nbclient's ``NotebookClient`` using this interpreter's kernel whatever
  the notebook's metadata says, recording the cells that timed out, stopping a cell that ignores
  the interrupt (``StuckCell``), and capping how much output a cell may pile up.

This isolates notebooks from each other, not from your machine: see README (grading).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import nbformat

CURRENT_ENV_KERNEL = "gpt-course-grader"  # this interpreter, whatever the notebook metadata says
MAX_CELL_OUTPUT_CHARS = 200_000  # a cell printing forever must not eat the grader's memory
# After an interrupt, how long a cell may take to stop before its kernel is killed.
STUCK_GRACE_S = 10
MAX_DATA_FILE_BYTES = 100_000_000  # the corpus (2 MB) is copied into each sandbox


def kernel_env(sandbox: Path) -> dict[str, str]:
    """The kernel's environment: quick mode, headless, one thread, and its own HOME/profile."""
    env = dict(os.environ)
    home = sandbox / "home"
    env.update(
        GPT_COURSE_QUICK="1",
        GPT_COURSE_DATA_DIR=str(sandbox / "data"),
        MPLBACKEND="Agg",
        MPLCONFIGDIR=str(home / ".config" / "matplotlib"),  # own cache: ~0.5 s per kernel
        OMP_NUM_THREADS="1",  # N kernels in parallel: one thread each
        MKL_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        HOME=str(home),  # no shared ~/.ipython startup files, ~/.local site-packages, caches
        IPYTHONDIR=str(home / ".ipython"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        PYTHONNOUSERSITE="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    return env


def make_sandbox(notebook: nbformat.NotebookNode, name: str, data_dir: Path) -> tuple[Path, Path]:
    """A fresh folder per notebook: sandbox/work is the cwd; sandbox looks like a project root,
    so files a lesson saves (checkpoints, outputs) land in the sandbox, not in the course; it
    reads its own copy of the corpus, so no notebook can change another one's data."""
    sandbox = Path(tempfile.mkdtemp(prefix="gpt-course-grade-"))
    (sandbox / "pyproject.toml").write_text("# grading sandbox\n", encoding="utf-8")
    (sandbox / "shared").mkdir()  # marker for shared.config.project_root(); never imported
    (sandbox / "home").mkdir()
    (sandbox / "data").mkdir()
    if data_dir.is_dir():
        for item in data_dir.iterdir():
            if item.is_file() and item.stat().st_size <= MAX_DATA_FILE_BYTES:
                shutil.copyfile(item, sandbox / "data" / item.name)
    work = sandbox / "work"
    work.mkdir()
    nbformat.write(notebook, str(work / name))
    return sandbox, work


class StuckCell(Exception):
    """A cell kept running after it was interrupted: the kernel is stopped."""


def _kernel_spec_manager():
    import ipykernel.kernelspec
    from jupyter_client.kernelspec import KernelSpecManager

    class CurrentEnvSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            if kernel_name == CURRENT_ENV_KERNEL:
                return self.kernel_spec_class(
                    resource_dir=ipykernel.kernelspec.RESOURCES,
                    **ipykernel.kernelspec.get_kernel_dict(),
                )
            return super().get_kernel_spec(kernel_name)

    return CurrentEnvSpecs()


def client_class():
    from nbclient import NotebookClient

    class SandboxClient(NotebookClient):
        """nbclient with: this env's kernel, a record of timed-out cells, capped outputs."""

        def create_kernel_manager(self):
            self.kernel_name = CURRENT_ENV_KERNEL
            self.km = self.kernel_manager_class(
                kernel_name=CURRENT_ENV_KERNEL,
                kernel_spec_manager=_kernel_spec_manager(),
                config=self.config,
            )
            return self.km

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
            if self.output_chars > self.output_limit:
                return None
            return super().output(outs, msg, display_id, cell_index)

    return SandboxClient
