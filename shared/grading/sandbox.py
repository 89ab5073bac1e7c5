"""The operating-system sandbox every piece of student code runs in: bubblewrap (``bwrap``).

``Sandbox.argv(...)`` wraps a command so that it sees:

- the system (``/usr``, ``/etc`` basics), this Python and its packages, the course package and
  the corpus, all **read-only**; nothing else of the host: no home folder, no submissions, no
  gradebook, no other student's files;
- a fresh size-limited tmpfs as project root and cwd (``/sandbox``: ``work/`` is the cwd,
  ``home/`` is HOME) and its own ``/tmp``: the only writable places, gone when it ends;
- its own user (an unprivileged uid), no capabilities, a new session, no network, its own
  process namespace (no ``/proc`` view of the grader or classmates; every process it starts
  dies with it, and it dies with the grader: ``--die-with-parent``);
- a minimal environment (``--clearenv``): no secret of the instructor's can leak through it;
- rlimits (``prlimit``): memory, processes, file size, no core dumps.

The one exception: ``rw_paths`` (the folder of a kernel's connection file and IPC sockets, which
the grader must reach) are bound read-write at the same path.

Where ``bwrap`` is missing grading refuses, unless the instructor passes ``--no-sandbox``
(then ``Sandbox(enabled=False)`` runs commands as they are: only for trusted notebooks).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from shared.engine.errors import CourseError

ROOT = "/sandbox"  # inside: looks like a project root, so lesson files land here
WORK = ROOT + "/work"
HOME = ROOT + "/home"
DATA = ROOT + "/data"
SANDBOX_UID = 1000
MAX_SANDBOX_BYTES = 1 << 30  # tmpfs for the project root; /tmp gets the same
MAX_MEMORY_BYTES = 8 << 30  # address space per process
MAX_PROCESSES = 256  # per sandbox (counted per user namespace on Linux >= 5.14)
MAX_FILE_BYTES = 512 << 20
BOUND_IF_ELSEWHERE = ("torch", "numpy", "ipykernel", "matplotlib")  # what checks and kernels use
STARTUP_PROBE_S = 180  # importing torch in a fresh sandbox on a busy laptop
CONTAINER_HINT = (
    "install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`), or grade inside the "
    "container described in README.md (For instructors); `--no-sandbox` runs student code "
    "unconfined, with your permissions: only for notebooks you trust"
)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
)
SYSTEM_ETC_DIRS = ("/etc/ld.so.conf.d", "/etc/fonts", "/etc/alternatives")


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


def python_dirs() -> list[str]:
    """This interpreter's installation and its site-packages (bound read-only)."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    dirs |= {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return sorted({os.path.realpath(d) for d in dirs if d and os.path.isdir(d)})


def module_location(name: str) -> tuple[str, str]:
    """(path to bind, folder to put on PYTHONPATH) for an importable top-level module."""
    import importlib

    module = importlib.import_module(name)
    if hasattr(module, "__path__"):
        path = os.path.realpath(list(module.__path__)[0])
    else:
        path = os.path.realpath(module.__file__)
    return path, os.path.dirname(path)


def find_location(name: str) -> tuple[str, str]:
    """Like ``module_location``, without importing the module (torch takes seconds)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not (spec.submodule_search_locations or spec.origin):
        raise ImportError(name)
    if spec.submodule_search_locations:
        path = os.path.realpath(list(spec.submodule_search_locations)[0])
    else:
        path = os.path.realpath(spec.origin)
    return path, os.path.dirname(path)


@dataclass
class Sandbox:
    """How to wrap commands; one per grading run (``make_sandbox``)."""

    enabled: bool
    bwrap: str | None = None
    ro_paths: list[str] = field(default_factory=list)  # same path inside
    pythonpath: list[str] = field(default_factory=list)
    data_dir: str | None = None
    marker: str | None = None  # an empty file bound as /sandbox/pyproject.toml
    prlimit: str | None = None
    memory_bytes: int = MAX_MEMORY_BYTES
    home_outside: str = ""  # --no-sandbox: a temporary HOME on the host
    notes: list[str] = field(default_factory=list)  # what the instructor should know (limits)
    threads: int = 1  # per sandbox: the usable cores shared by the sandboxes running at once

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The whole environment inside: nothing of the grader's but what is listed here."""
        home = HOME if self.enabled else self.home_outside
        env = {
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"]),
            "LANG": "C.UTF-8",
            "HOME": home,
            "TMPDIR": "/tmp" if self.enabled else self.home_outside,
            "PYTHONPATH": os.pathsep.join(self.pythonpath),
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "GPT_COURSE_QUICK": "1",
            "GPT_COURSE_DATA_DIR": DATA if self.enabled else (self.data_dir or ""),
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": home + "/.config/matplotlib",
            "IPYTHONDIR": home + "/.ipython",
            "XDG_CACHE_HOME": home + "/.cache",
            "XDG_CONFIG_HOME": home + "/.config",
            "OMP_NUM_THREADS": str(self.threads),  # usable cores / sandboxes in parallel
            "MKL_NUM_THREADS": str(self.threads),
            "OPENBLAS_NUM_THREADS": str(self.threads),
        }
        env.update(extra or {})
        return env

    def argv(
        self, command: list[str], *, rw_paths: tuple[str, ...] = (), as_pid_1: bool = False
    ) -> list[str]:
        """``command`` wrapped in bwrap (or as it is, with rlimits, when disabled).

        ``as_pid_1``: the command is the sandbox's PID 1 (it reaps orphans; nothing inside
        can kill it) instead of bwrap's own init."""
        limits = []
        if self.prlimit:
            limits = [
                self.prlimit,
                f"--as={self.memory_bytes}",
                f"--fsize={MAX_FILE_BYTES}",
                "--core=0",
            ]
            if self.enabled:  # without a user namespace the count is the instructor's
                limits.append(f"--nproc={MAX_PROCESSES}")
            limits.append("--")
        if not self.enabled:
            return [*limits, *command]
        args = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
        args += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        args += ["--cap-drop", "ALL", "--clearenv"]
        if as_pid_1:
            args.append("--as-pid-1")
        for directory in SYSTEM_DIRS:
            if os.path.islink(directory):
                args += ["--symlink", os.readlink(directory), directory]
            elif os.path.isdir(directory):
                args += ["--ro-bind", directory, directory]
        for path in (*SYSTEM_FILES, *SYSTEM_ETC_DIRS):
            if os.path.exists(path):
                args += ["--ro-bind", path, path]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--size", str(MAX_SANDBOX_BYTES), "--tmpfs", "/tmp"]  # before binds below it
        for path in self.ro_paths:
            args += ["--ro-bind", path, path]
        args += ["--size", str(MAX_SANDBOX_BYTES), "--tmpfs", ROOT]
        for folder in (WORK, HOME, ROOT + "/shared"):  # shared/: marker for project_root()
            args += ["--dir", folder]
        if self.marker:
            args += ["--ro-bind", self.marker, ROOT + "/pyproject.toml"]
        if self.data_dir:
            args += ["--ro-bind", self.data_dir, DATA]
        for path in rw_paths:
            args += ["--bind", path, path]
        args += ["--chdir", WORK]
        for key, value in self.env().items():
            args += ["--setenv", key, value]
        return [*args, "--", *limits, *command]


def make_sandbox(
    modules: list[str],
    data_dir: Path | None,
    scratch: Path,
    *,
    enabled: bool = True,
    memory_bytes: int = MAX_MEMORY_BYTES,
    probe_modules: tuple[str, ...] = (),
) -> Sandbox:
    """The sandbox for one grading run; ``scratch`` is a private host folder of the grader."""
    bwrap = find_bwrap() if enabled else None
    if enabled and bwrap is None:
        raise CourseError(f"bubblewrap (bwrap) is not installed: {CONTAINER_HINT}")
    ro_paths, pythonpath = [], []
    for name in modules:
        path, parent = module_location(name)
        ro_paths.append(path)
        pythonpath.append(parent)
    for name in (*probe_modules, *BOUND_IF_ELSEWHERE):  # user site, PYTHONPATH, .pth chains
        try:
            path, parent = find_location(name)
        except (ImportError, ValueError, TypeError):
            continue  # the probe below says what is missing
        if not any(path == d or path.startswith(d + os.sep) for d in python_dirs()):
            ro_paths.append(parent)
            pythonpath.append(parent)
    memory_bytes, notes = inherited_memory_limit(memory_bytes)
    data = str(Path(data_dir).resolve()) if data_dir and Path(data_dir).is_dir() else None
    marker = scratch / "pyproject.toml"
    marker.write_text("# grading sandbox\n", encoding="utf-8")
    home = scratch / "home"
    home.mkdir(exist_ok=True)
    (scratch / "shared").mkdir(exist_ok=True)  # --no-sandbox: project_root() is the scratch
    box = Sandbox(
        enabled=enabled,
        bwrap=bwrap,
        ro_paths=list(dict.fromkeys(python_dirs() + ro_paths)),
        pythonpath=list(dict.fromkeys(pythonpath)),
        data_dir=data,
        marker=str(marker),
        prlimit=shutil.which("prlimit"),
        memory_bytes=memory_bytes,
        home_outside=str(home),
        notes=notes,
    )
    if enabled:
        probe(box)
    if probe_modules:
        probe_imports(box, probe_modules, str(scratch))
    return box


def inherited_memory_limit(wanted: int) -> tuple[int, list[str]]:
    """The memory limit to set: ours, or a lower hard limit we inherited (``ulimit -v``)."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard >= wanted:
        return wanted, []
    note = (
        f"this shell limits memory to {hard / 2**30:.1f} GiB (ulimit -v, a container or a job "
        f"limit), below the sandbox's {wanted / 2**30:.0f} GiB: kept; raise it if checks run "
        "out of memory"
    )
    return hard, [note]


def probe_imports(box: Sandbox, modules: list[str], cwd: str) -> None:
    """Import what the checks need, as a check will: a grader that cannot grade says why now."""
    import subprocess

    code = "; ".join(f"import {name}" for name in modules)
    try:
        result = subprocess.run(
            box.argv([sys.executable, "-c", code]),
            capture_output=True,
            text=True,
            timeout=STARTUP_PROBE_S,
            env=box.env(),
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        raise CourseError(
            f"importing {', '.join(modules)} in the sandbox took more than {STARTUP_PROBE_S} s: "
            "the machine is overloaded; try again with fewer --jobs"
        ) from None
    if result.returncode != 0:
        lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
        why = lines[-1][:300] if lines else f"exit status {result.returncode}"
        raise CourseError(
            f"cannot grade: importing {', '.join(modules)} fails inside the sandbox ({why}). "
            f"Install them into this Python ({sys.prefix}: `{sys.executable} -m pip install "
            "-e .`) rather than a user site, PYTHONPATH or .pth folder the sandbox may not see"
        )


def probe(box: Sandbox) -> None:
    """Start one empty sandbox: a system that forbids them gets one clear error up front."""
    import subprocess

    try:
        result = subprocess.run(
            box.argv([sys.executable, "-c", "pass"], as_pid_1=True),  # as students' sandboxes
            capture_output=True,
            text=True,
            timeout=60,
            env=box.env(),
            cwd=box.home_outside,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CourseError(
            f"bubblewrap could not start a sandbox ({exc}): {CONTAINER_HINT}"
        ) from None
    if result.returncode != 0:
        why = " ".join(result.stderr.split())[:300] or f"exit status {result.returncode}"
        if "prlimit" in why:  # our limits, not the namespaces
            raise CourseError(f"could not set the sandbox's resource limits ({why})")
        raise CourseError(
            f"bubblewrap could not start a sandbox here ({why}); unprivileged user namespaces "
            f"may be disabled: {CONTAINER_HINT}"
        )
