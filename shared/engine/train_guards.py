"""Guards of a training run: it never loses finished work and never saves broken weights.

- ``stop_reason``: why this process wants to stop (time budget, Ctrl-C, a non-finite loss);
- ``stop_if_diverged``: a NaN/inf loss or weight ends the run with one clear error, and the last
  good checkpoint is kept;
- ``save_safely``: a save that a Ctrl-C cannot cut in half, and that falls back to the temporary
  folder (and says where) when the disk is full or the folder is gone.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import torch

from shared.engine.errors import CourseError


def weights_finite(model) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def stop_if_diverged(value: float, what: str, step: int, config, out, saved_step) -> None:
    """A NaN/inf loss means the run diverged: stop now, before bad weights overwrite good ones."""
    if math.isfinite(value):
        return
    kept = (
        f"the last good checkpoint (step {saved_step}) is kept at {out}"
        if saved_step is not None
        else "no checkpoint was written"
    )
    raise CourseError(
        f"training diverged at step {step}: {what} became {value} (the learning rate "
        f"{config.learning_rate:g} is too high for this model: lower `learning_rate`); {kept}"
    )


@contextmanager
def interrupts_held(reraise: bool):
    """Ctrl-C while a checkpoint is written waits until the file is complete (then, with
    ``reraise``, stops the run); without it, a second Ctrl-C during the last save is ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if caught and reraise:
        raise KeyboardInterrupt


def save_safely(save_to, out: Path, final: bool = False) -> Path:
    """``save_to(out)``; if that fails (full disk, folder gone), save into the temporary folder
    instead and say where. Returns the path that holds the checkpoint."""
    with interrupts_held(reraise=not final):
        try:
            save_to(out)
            return out
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            rescue = Path(tempfile.gettempdir()) / f"{out.stem}-rescued-{os.getpid()}{out.suffix}"
            try:
                save_to(rescue)
            except OSError:
                raise CourseError(
                    f"could not save the checkpoint to {out} ({why}), nor to {rescue}; "
                    "free some disk space and train again"
                ) from None
            print(
                f"warning: could not save the checkpoint to {out} ({why}); "
                f"saved it to {rescue} instead",
                file=sys.stderr,
            )
            return rescue


def stop_reason(config, elapsed: float, interrupted: bool, loss: float):
    """Why this rank wants to stop now, if it does (``shared.engine.distributed.STOP_REASONS``)."""
    if not math.isfinite(loss):
        return "diverged"
    if interrupted:
        return "interrupted"
    if config.time_budget and elapsed >= config.time_budget:
        return "time_budget"
    return None


def check_given_model(model, tokenizer) -> None:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "vocab_size"):
        raise CourseError(
            "train(model=...) needs a shared.model.GPT (it has .config); build it with "
            "GPT(GPTConfig(...), block=YourBlock)"
        )
    if config.vocab_size != tokenizer.vocab_size:
        raise CourseError(
            f"the model's vocab_size is {config.vocab_size} but the corpus has "
            f"{tokenizer.vocab_size} tokens; build it with vocab_size=corpus.vocab_size"
        )


def check_resumable(saved: dict, path: Path, tokenizer, model_config) -> None:
    mine = tokenizer.to_dict()  # a BPE checkpoint also stores its merges (shared.bpe)
    if list(saved["vocab"]) != list(mine.get("chars", [])) or saved.get("tokenizer", mine) != mine:
        raise CourseError(
            f"cannot resume from {path}: it was trained on a different vocabulary or tokenizer "
            f"(this corpus has {tokenizer.vocab_size} tokens); to continue it, train with its "
            "tokenizer; to train a new model, give `out` a new file name"
        )
    mine = model_config.to_dict()
    theirs = saved["model_config"]
    diff = [f"{k} {theirs.get(k)} vs {mine[k]}" for k in mine if theirs.get(k) != mine[k]]
    if diff:
        raise CourseError(
            f"cannot resume from {path}: its model differs ({', '.join(diff)}); to continue it, "
            "use the same model settings; to train a new model, give `out` a new file name"
        )
