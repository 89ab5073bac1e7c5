"""The checkpoint lessons 07 and 08 sample from: the one lesson 06 trained, else a stand-in.

Lesson 06 saves ``checkpoints/gpt.pt``. A later `python -m shared train` or `run` keeps that model
under a dated name (``gpt.2026-12-07-1405.pt``, ``shared.engine.checkpoint.keep_aside``) and writes lesson
10's modern GPT in its place: these lessons then open the newest kept GPT of lessons 03-06.
Each lesson runs on its own, so a learner who trained none still gets a model: a small one,
trained for a minute (seconds in quick mode), saved apart so it never replaces a real one.
"""

from __future__ import annotations

from pathlib import Path

from shared.data import load_corpus
from shared.engine.checkpoint import kept_versions, read_checkpoint
from shared.engine.config import default_checkpoint_path, quick_mode
from shared.engine.errors import CourseError, shared_command
from shared.engine.train_config import default_train_config
from shared.train import train


def quick_checkpoint_path() -> Path:
    """Where quick-mode and stand-in runs save, so they never overwrite a real checkpoint."""
    return default_checkpoint_path().with_name("gpt_small.pt")


def holds_lesson_gpt(path: Path) -> bool:
    """True when ``path`` holds the GPT of lessons 03-06 on characters (or is damaged: loading
    it says so in its own words); False for lesson 10's modern GPT or a BPE model."""
    try:
        payload = read_checkpoint(path)
    except CourseError:
        return True
    tokenizer = payload.get("tokenizer")
    bpe = isinstance(tokenizer, dict) and tokenizer.get("type") == "bpe"
    return payload.get("architecture", "gpt") == "gpt" and not bpe


def lesson_checkpoint(wanted: Path) -> Path | None:
    """``wanted`` if it holds the lessons' GPT, else the newest copy of it kept aside that does
    (saying why); None when there is none."""
    if wanted.is_file() and holds_lesson_gpt(wanted):
        return wanted
    found = next((p for p in kept_versions(wanted) if holds_lesson_gpt(p)), None)
    if wanted.is_file():
        instead = f"uses {found.name}, kept from an earlier run" if found else "uses the stand-in"
        print(
            f"{wanted.name} holds lesson 10's modern GPT or a BPE model (what `{shared_command()} "
            f"train` and `run` write by default); this lesson opens the character GPT of lessons "
            f"03-06, so it {instead}."
        )
    elif found:
        print(f"No checkpoint at {wanted.name}; using {found.name}, kept from an earlier run.")
    return found


def ensure_checkpoint(path=None, quick_train_if_missing=True) -> Path:
    """A trained checkpoint for lessons 07/08: ``path`` (default checkpoints/gpt.pt) if it holds
    the lessons' GPT, else its newest such copy kept aside, else the small stand-in (trained
    now, quickly, if missing)."""
    wanted = Path(path) if path else default_checkpoint_path()
    found = lesson_checkpoint(wanted)
    if found is not None:
        return found
    small = quick_checkpoint_path() if path is None else wanted
    if small.is_file() and holds_lesson_gpt(small):
        print(
            f"No checkpoint of lesson 06 at {wanted.name}; using the small stand-in {small.name}."
        )
        return small
    if not quick_train_if_missing:
        raise CourseError(
            f"no trained checkpoint at {wanted}; run lesson 06_train or "
            f"`{shared_command('train --recipe classic')}`"
        )
    config = default_train_config(time_budget=15.0 if quick_mode() else 60.0)
    print(
        f"No trained checkpoint at {wanted.name} (lesson 06_train writes it). Training a small "
        f"stand-in for up to {config.time_budget:.0f} s so this lesson can run; its text will be "
        "rougher than a full run's."
    )
    train(load_corpus(), config, out=small, progress=False)
    return small
