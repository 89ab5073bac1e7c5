"""The checkpoint lessons 07 and 08 sample from: the one lesson 06 trained, else a stand-in.

Each lesson runs on its own, so a learner who skipped lesson 06 still gets a model: a small
one, trained for a minute (seconds in quick mode), saved apart so it never replaces a real one.
"""

from __future__ import annotations

from pathlib import Path

from shared.data import load_corpus
from shared.engine.config import default_checkpoint_path, project_root, quick_mode
from shared.engine.errors import CourseError
from shared.engine.train_config import default_train_config
from shared.train import train


def quick_checkpoint_path() -> Path:
    """Where quick-mode and stand-in runs save, so they never overwrite a real checkpoint."""
    return project_root() / "checkpoints" / "gpt_small.pt"


def holds_lesson_gpt(path: Path) -> bool:
    """True unless ``path`` holds lesson 10's modern GPT (what `python -m shared train` and `run`
    write on a CPU): lessons 07 and 08 open the GPT of lessons 03-06 (learned positions, its
    blocks), so they say so and use the stand-in instead."""
    from shared.engine.checkpoint import read_checkpoint

    try:
        architecture = read_checkpoint(path).get("architecture", "gpt")
    except CourseError:
        return True  # damaged: loading it says so in its own words
    if architecture == "gpt":
        return True
    print(
        f"{path.name} holds lesson 10's {architecture} GPT (the default of `python -m shared "
        "train` and `run`); this lesson opens the GPT of lessons 03-06, so it uses the stand-in "
        "(run lesson 06, or `python -m shared train --recipe classic`, for a full one)."
    )
    return False


def ensure_checkpoint(path=None, quick_train_if_missing=True) -> Path:
    """A trained checkpoint for lessons 07/08: ``path`` (default checkpoints/gpt.pt) if it exists,
    else the small stand-in (trained now, quickly, if missing)."""
    wanted = Path(path) if path else default_checkpoint_path()
    if wanted.is_file() and holds_lesson_gpt(wanted):
        return wanted
    small = quick_checkpoint_path() if path is None else wanted
    if small.is_file():
        print(f"No checkpoint at {wanted.name}; using the small stand-in {small.name}.")
        return small
    if not quick_train_if_missing:
        raise CourseError(
            f"no trained checkpoint at {wanted}; run lesson 06_train or `python -m shared train`"
        )
    config = default_train_config(time_budget=15.0 if quick_mode() else 60.0)
    print(
        f"No trained checkpoint at {wanted.name} (lesson 06_train writes it). Training a small "
        f"stand-in for up to {config.time_budget:.0f} s so this lesson can run; its text will be "
        "rougher than a full run's."
    )
    train(load_corpus(), config, out=small, progress=False)
    return small
