"""Checkpoint files: everything needed to sample from, or keep training, a model.

A checkpoint is one ``torch.save`` dict of *plain* types (tensors, numbers, strings, lists,
dicts), so it loads with ``torch.load(weights_only=True)``: loading never runs pickled code.

    {"format": "gpt-quijote-checkpoint", "version": 1,
     "model": state_dict, "model_config": GPTConfig.to_dict(), "vocab": ["\\n", " ", ...],
     "tokenizer": {"type": "char", "chars": [...]} or {"type": "bpe", "merges": [[a, b], ...]},
     "train_config": asdict(TrainConfig), "optimizer": optimizer.state_dict(),
     "step": int, "elapsed": float, "history": {...}, "rng": {...},
     "source": "reference GPT" | "your Block (lessons 03-05)" | ...,
     "architecture": "gpt" | "modern"}   (lesson 10's ModernGPT; older checkpoints: "gpt")

The weights are always in the reference layout (fused attention, ``shared.model.GPT``): a GPT
built from your own per-head Block is converted on save (``shared.engine.convert``), so every
checkpoint loads the same way; ``source`` says which model was trained.

Writes are atomic (temporary file in the same folder, then ``os.replace``): an interrupted save
never leaves a half-written checkpoint behind. A new training run never replaces a model trained
earlier: ``keep_aside`` first moves it to a dated name next to it (``gpt.2026-12-07-1405.pt``).
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from shared.engine.errors import CourseError, shared_command
from shared.engine.tempfiles import remove_abandoned, temp_prefix

FORMAT = "gpt-quijote-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("model", "model_config", "vocab", "step")
COMPILE_PREFIX = "_orig_mod."  # torch.compile wraps the model and prefixes every key with this


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model is ready to sample (eval mode)."""

    model: Any  # shared.model.GPT
    tokenizer: Any  # shared.data.CharTokenizer
    model_config: Any  # shared.model.GPTConfig
    train_config: dict = field(default_factory=dict)
    step: int = 0
    history: dict = field(default_factory=dict)
    optimizer_state: dict | None = None
    elapsed: float = 0.0
    rng: dict = field(default_factory=dict)
    path: Path | None = None
    source: str = "reference GPT"  # which model was trained (older checkpoints: the reference)


def strip_compile_prefix(state_dict: dict) -> dict:
    """``torch.compile`` saves ``_orig_mod.x``; plain models want ``x``."""
    return {
        (k[len(COMPILE_PREFIX) :] if k.startswith(COMPILE_PREFIX) else k): v
        for k, v in state_dict.items()
    }


def save_checkpoint(
    path: str | Path,
    *,
    model,
    tokenizer,
    train_config: dict | None = None,
    optimizer=None,
    step: int = 0,
    history: dict | None = None,
    elapsed: float = 0.0,
    rng: dict | None = None,
    source: str = "reference GPT",
) -> Path:
    """Write a checkpoint atomically; returns the path. ``source`` says which model this is."""
    from shared.engine.convert import is_reference_layout, to_reference
    from shared.modern import is_modern

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    architecture = "modern" if is_modern(model) else "gpt"
    if architecture == "gpt" and not is_reference_layout(model):  # your per-head Block: fused
        model = to_reference(model)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": {k: v.detach().cpu() for k, v in strip_compile_prefix(model.state_dict()).items()},
        "model_config": model.config.to_dict(),
        "vocab": list(getattr(tokenizer, "chars", [])),  # [] for BPE: see "tokenizer"
        "tokenizer": tokenizer.to_dict(),  # {"type": "char" | "bpe", ...} (shared.bpe)
        "train_config": dict(train_config or {}),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": int(step),
        "elapsed": float(elapsed),
        "history": history or {},
        "rng": rng or {},
        "source": str(source),
        "architecture": architecture,
    }
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes it private; use normal rights
        os.replace(tmp_name, path)  # atomic on POSIX and Windows
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict; any unreadable file becomes one clear ``CourseError``."""
    path = Path(path)
    if path.is_dir():
        raise CourseError(
            f"{path} is a folder, not a checkpoint file; give the file inside it, e.g. "
            f"{path / 'gpt.pt'}"
        )
    if not path.is_file():
        raise CourseError(f"no checkpoint at {path}; {missing_advice(path)}")
    if foreign_file(path):  # a text file, an image: the user's file, not a damaged checkpoint
        raise CourseError(
            f"{path} is not a checkpoint (it is some other kind of file); give the path of a "
            f"checkpoint made by `{shared_command('train')}` (default: checkpoints/gpt.pt)"
        )
    try:
        with warnings.catch_warnings():  # a plain pickle: torch's warning, then our clear line
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, random bytes, pickled code, ...
        raise CourseError(
            f"{path} is not a readable checkpoint: truncated, corrupted, or not made by this "
            f"course ({type(exc).__name__}); {TRAIN_AGAIN}"
        ) from None
    if not isinstance(payload, dict) or any(key not in payload for key in REQUIRED_KEYS):
        raise CourseError(
            f"{path} is not a checkpoint made by this course (missing model/config/vocab); "
            f"train one with `{shared_command('train')}`"
        )
    check_payload(payload, path)
    return payload


def missing_advice(path: Path) -> str:
    """What to do when ``path`` holds no checkpoint: the models kept aside next to it, if any."""
    kept = kept_versions(path)
    if kept:
        names = ", ".join(p.name for p in kept[:3])
        return f"earlier models kept next to it: {names}; give one as `checkpoint`"
    return f"train one first with `{shared_command('train')}` (or run lesson 06_train)"


def kept_versions(path: str | Path) -> list[Path]:
    """The dated copies ``keep_aside`` made of ``path`` (``gpt.2026-12-07-1405.pt``), newest
    first."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    found = [p for p in path.parent.glob(f"{path.stem}.*{path.suffix}") if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def keep_aside(path: str | Path) -> Path | None:
    """Move the file at ``path`` to a dated name next to it, named after the time it was last
    saved (``gpt.pt`` -> ``gpt.2026-12-07-1405.pt``; ``-2``, ``-3``... if that name is taken:
    nothing is ever overwritten). Returns the new path; None when there was no file."""
    path = Path(path)
    if not path.is_file():
        return None
    stamp = time.strftime("%Y-%m-%d-%H%M", time.localtime(path.stat().st_mtime))
    for n in itertools.count(1):
        target = path.with_name(f"{path.stem}.{stamp}{'' if n == 1 else f'-{n}'}{path.suffix}")
        try:
            os.link(path, target)  # refuses an existing target: atomic "never overwrite"
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links
            if target.exists():
                continue
            os.rename(path, target)
            return target
        path.unlink()
        return target
    return None  # unreachable: count() never ends


def describe_file(path: str | Path) -> str:
    """``modern GPT, BPE tokens, step 1,150``: what a checkpoint holds, in a few words."""
    try:
        payload = read_checkpoint(path)
    except CourseError:
        return "not a readable checkpoint"
    tokenizer = payload.get("tokenizer") if isinstance(payload.get("tokenizer"), dict) else {}
    tokens = "BPE tokens" if tokenizer.get("type") == "bpe" else "characters"
    architecture = "modern GPT" if payload.get("architecture") == "modern" else "classic GPT"
    return f"{architecture}, {tokens}, step {payload['step']:,}"


def foreign_file(path: str | Path) -> bool:
    """True for a file with content that does not start the way ``torch.save`` files do (a zip
    archive, or a pickle in the old format): a text file, an image... someone else's file.
    False for a missing, empty or unreadable file."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(4)
    except OSError:
        return False
    return bool(start) and not start.startswith((b"PK\x03\x04", b"\x80"))


def load_checkpoint(path: str | Path, device: str = "cpu") -> Checkpoint:
    """Load a checkpoint and rebuild its model (eval mode) and tokenizer."""
    from shared.bpe import tokenizer_from_dict
    from shared.data import CharTokenizer

    payload = read_checkpoint(path)
    try:
        config_class, model_class = architecture_classes(payload)
        model_config = config_class.from_dict(payload["model_config"])
        tokenizer = (
            tokenizer_from_dict(payload["tokenizer"])
            if isinstance(payload.get("tokenizer"), dict)  # older checkpoints: characters only
            else CharTokenizer.from_chars(list(payload["vocab"]))
        )
        if tokenizer.vocab_size != model_config.vocab_size:
            raise ValueError(
                f"vocab has {tokenizer.vocab_size} tokens but the model expects "
                f"{model_config.vocab_size}"
            )
        model = model_class(model_config)
        model.load_state_dict(strip_compile_prefix(payload["model"]))
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise damaged(path, f"its model does not load ({reason})") from None
    model.to(device).eval()
    return Checkpoint(
        model=model,
        tokenizer=tokenizer,
        model_config=model_config,
        train_config=dict(payload.get("train_config") or {}),
        step=int(payload["step"]),
        history=dict(payload.get("history") or {}),
        optimizer_state=payload.get("optimizer"),
        elapsed=float(payload.get("elapsed", 0.0)),
        rng=dict(payload.get("rng") or {}),
        path=Path(path),
        source=str(payload.get("source") or "reference GPT"),
    )


def architecture_classes(payload: dict):
    """(config class, model class) of the architecture a checkpoint records."""
    from shared.model import GPT, GPTConfig
    from shared.modern import ModernConfig, ModernGPT

    architecture = payload.get("architecture", "gpt")
    classes = {"gpt": (GPTConfig, GPT), "modern": (ModernConfig, ModernGPT)}
    if architecture not in classes:
        raise ValueError(f"unknown architecture {architecture!r}; expected one of {list(classes)}")
    return classes[architecture]


# ----------------------------------------------------------------------------- validation
HISTORY_CURVES = ("step", "train", "val")  # the periodic estimates: parallel lists
TRAINING_ONLY_HISTORY = ("elapsed", "lr", "iter_loss")


TRAIN_AGAIN = (
    "use another checkpoint, or train a new one (training keeps this file aside under a dated "
    "name, it never overwrites it)"
)


def damaged(path, what: str) -> CourseError:
    """The one error for a checkpoint that loads but whose contents are wrong."""
    return CourseError(f"checkpoint {path} is damaged: {what}; {TRAIN_AGAIN}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_payload(payload: dict, path) -> None:
    """Types and values of every field, so a hand-edited file fails here in one line."""
    weights = payload["model"]
    if not isinstance(weights, dict) or not weights:
        raise damaged(path, "'model' is not a dict of tensors")
    bad = [k for k, v in weights.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise damaged(path, f"'model' entry {bad[0]!r} is not a tensor")
    if not isinstance(payload["model_config"], dict):
        raise damaged(path, "'model_config' is not a dict")
    vocab = payload["vocab"]
    if not isinstance(vocab, (list, tuple)) or not all(isinstance(c, str) for c in vocab):
        raise damaged(path, "'vocab' is not a list of characters")
    step = payload["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise damaged(path, f"'step' should be a whole number >= 0, not {step!r}")
    elapsed = payload.get("elapsed", 0.0)
    if not _is_number(elapsed) or not 0 <= elapsed < float("inf"):
        raise damaged(path, f"'elapsed' should be seconds >= 0, not {elapsed!r}")
    for key in ("train_config", "rng", "optimizer"):
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise damaged(path, f"{key!r} should be a dict, not {type(payload[key]).__name__}")
    check_history(payload.get("history"), path)
    check_finite(weights, path)


def check_history(history, path) -> None:
    """``{}`` or a dict of lists of numbers with the curves step/train/val of equal length."""
    if history is None or history == {}:
        return
    if not isinstance(history, dict):
        raise damaged(path, f"'history' should be a dict, not {type(history).__name__}")
    missing = [k for k in HISTORY_CURVES if k not in history]
    if missing:
        raise damaged(path, f"'history' has no {missing[0]!r} list")
    for key, values in history.items():
        if not isinstance(values, (list, tuple)) or not all(_is_number(v) for v in values):
            raise damaged(path, f"'history' entry {key!r} is not a list of numbers")
    lengths = {k: len(history[k]) for k in HISTORY_CURVES}
    if len(set(lengths.values())) != 1:
        raise damaged(path, f"the 'history' lists differ in length ({lengths})")


def check_finite(weights: dict, path) -> None:
    """Refuse NaN/inf weights: the run that made them diverged, and sampling would crash."""
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CourseError(
                f"checkpoint {path} holds NaN/inf weights ({name}): its training diverged; "
                "train again with a lower `learning_rate`"
            )


def restore_training_state(saved: dict, path, model, optimizer, batch_gen) -> dict:
    """Put a validated checkpoint's weights, optimizer and RNG back (``--resume``); returns its
    history with every list the training loop appends to."""
    from shared.engine.convert import load_reference_state
    from shared.modern import is_modern

    try:
        state = strip_compile_prefix(saved["model"])
        if saved.get("architecture", "gpt") != ("modern" if is_modern(model) else "gpt"):
            raise ValueError("the checkpoint holds another architecture than the model")
        if is_modern(model):
            model.load_state_dict(state)
        else:
            load_reference_state(model, state)  # yours or the reference
        if saved.get("optimizer"):
            optimizer.load_state_dict(saved["optimizer"])
        rng = saved.get("rng") or {}
        if "batch" in rng:
            batch_gen.set_state(rng["batch"])
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
    except Exception as exc:  # a missing tensor, a wrong shape, a hand-edited optimizer or rng
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise damaged(path, f"cannot restore the training state ({reason})") from None
    history = {k: list(v) for k, v in (saved.get("history") or {}).items()}
    for key in (*HISTORY_CURVES, *TRAINING_ONLY_HISTORY):
        history.setdefault(key, [])
    return history


def remove_abandoned_temps(path) -> list[Path]:
    """Temporary files of saves of ``path`` that a hard kill interrupted (see shared.engine.tempfiles)."""
    path = Path(path)
    return remove_abandoned(path.parent, path.name, ".tmp") if path.parent.is_dir() else []
