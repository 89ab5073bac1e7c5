"""Small settings shared by every module: where files live, quick mode, device choice."""

from __future__ import annotations

import os
from pathlib import Path

QUICK_ENV = "GPT_COURSE_QUICK"
DATA_DIR_ENV = "GPT_COURSE_DATA_DIR"
CHECKPOINT_DIR_ENV = "GPT_COURSE_CHECKPOINT_DIR"  # the test suite points these two at a
OUTPUTS_DIR_ENV = "GPT_COURSE_OUTPUTS_DIR"  # temporary folder: never the learner's files


def quick_mode() -> bool:
    """True when long cells (training) should shrink: set by CI and by the grader.

    Learners get the real budget by default; ``GPT_COURSE_QUICK=1`` turns quick mode on.
    """
    return os.environ.get(QUICK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def project_root(start: Path | None = None) -> Path:
    """The course repository's root folder, wherever a notebook or command runs from.

    Walks up from ``start`` (default: the current directory) looking for the folder that holds
    both ``pyproject.toml`` and ``shared/``; notebooks run from ``lessons/`` therefore share the
    root's ``data/`` and ``checkpoints/``. Falls back to the current directory.
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "shared").is_dir():
            return folder
    package_parent = Path(__file__).resolve().parents[2]
    if (package_parent / "pyproject.toml").is_file():
        return package_parent
    return here


def default_data_dir() -> Path:
    """``$GPT_COURSE_DATA_DIR`` if set, else ``data/`` at the project root."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else project_root() / "data"


def default_checkpoint_path() -> Path:
    """Where lesson 06 and ``python -m shared train`` save the trained model:
    ``$GPT_COURSE_CHECKPOINT_DIR/gpt.pt`` if set, else ``checkpoints/gpt.pt`` at the root."""
    env = os.environ.get(CHECKPOINT_DIR_ENV)
    return (Path(env).expanduser() if env else project_root() / "checkpoints") / "gpt.pt"


def default_outputs_dir() -> Path:
    """Where ``python -m shared run`` writes samples and the attention GIF:
    ``$GPT_COURSE_OUTPUTS_DIR`` if set, else ``outputs/`` at the project root."""
    env = os.environ.get(OUTPUTS_DIR_ENV)
    return Path(env).expanduser() if env else project_root() / "outputs"


def shown_path(path: Path) -> str:
    """``path`` relative to the project root when it lies inside it (``outputs/a.gif``), else
    the full path."""
    path = Path(path)
    try:
        return path.resolve().relative_to(project_root()).as_posix()
    except ValueError:
        return str(path)


def pick_device(requested: str = "auto") -> str:
    """``auto`` picks cuda, then mps, then cpu; anything else must be available or we say so."""
    import torch

    from shared.engine.errors import CourseError

    requested = (requested or "auto").lower()
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise CourseError(
                "device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'"
            )
        return "cuda"
    if requested == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise CourseError(
                "device 'mps' was asked for but Apple MPS is not available; use 'auto' or 'cpu'"
            )
        return "mps"
    raise CourseError(f"unknown device {requested!r}; choose one of auto, cpu, cuda, mps")
