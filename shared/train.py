"""Training loop: AdamW, warmup + cosine learning rate, gradient clipping, checkpoints.

    python -m shared train --time-budget 240          # the default CPU recipe, ~4 minutes
    python -m shared train --resume                   # keep going from checkpoints/gpt.pt

The loop stops at ``max_iters`` or when the wall-clock ``time_budget`` runs out, whichever
comes first. With a time budget the learning rate decays over *time* as well as steps, so a
slow laptop still finishes its budget with a small, annealed learning rate. For bit-for-bit
reproducible runs use ``time_budget=None`` (``--time-budget none``): then only steps count.
The ``train`` command's flags are parsed in ``shared/train_cli.py``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from shared.checkpoint import Checkpoint, load_checkpoint, read_checkpoint, save_checkpoint
from shared.config import default_checkpoint_path, pick_device, project_root, quick_mode
from shared.data import get_batch
from shared.errors import CourseError

__all__ = [
    "Checkpoint",
    "TrainConfig",
    "TrainResult",
    "default_train_config",
    "ensure_checkpoint",
    "estimate_loss",
    "get_lr",
    "load_checkpoint",
    "plot_history",
    "save_checkpoint",
    "train",
    "train_step",
    "warmup_cosine_lr",
]

_TORCH_DEFAULT_THREADS = torch.get_num_threads()  # before anyone changes it
MODEL_FIELDS = ("block_size", "n_layer", "n_head", "n_embd", "dropout")
BETAS = (0.9, 0.99)  # beta2=0.99 (not 0.999): few tokens per step, so adapt faster (nanoGPT char)


@dataclass
class TrainConfig:
    """Model size and optimisation settings; defaults are the CPU recipe measured in benchmarks/."""

    batch_size: int = 32
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    learning_rate: float = 3e-3
    min_lr: float = 3e-4
    warmup_iters: int = 100
    max_iters: int = 5000
    time_budget: float | None = 240.0  # seconds of wall clock; None = only max_iters counts
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_iters: int = 20
    seed: int = 1337
    device: str = "auto"
    num_threads: int | None = None  # CPU threads; None = default_num_threads()

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def default_num_threads() -> int:
    """PyTorch's own choice: one thread per physical core.

    Measured on an idle 2-core machine: 2 threads train ~1.6-1.9x faster than 1 (13-14k vs
    7-9k tokens/s). On a machine busy with other work, fewer threads can be faster: pass
    ``num_threads`` (``--num-threads``) then. See benchmarks/RESULTS.md.
    """
    return max(1, _TORCH_DEFAULT_THREADS)


def default_train_config(**overrides) -> TrainConfig:
    """The measured CPU recipe (readable Spanish in a few minutes); tiny and fast in quick mode."""
    config = TrainConfig()
    if quick_mode():  # CI, tests and the grader: seconds, not minutes
        config = replace(
            config,
            batch_size=16,
            block_size=64,
            n_layer=2,
            n_head=2,
            n_embd=64,
            learning_rate=3e-3,
            min_lr=3e-4,
            warmup_iters=20,
            max_iters=150,
            time_budget=15.0,
            eval_interval=50,
            eval_iters=5,
        )
    return replace(config, **overrides)


@dataclass
class TrainResult:
    model: torch.nn.Module
    tokenizer: object
    config: TrainConfig
    history: dict
    step: int
    elapsed: float
    stopped: str  # "max_iters", "time_budget" or "interrupted"
    checkpoint: Path | None = None

    @property
    def final_losses(self) -> dict:
        h = self.history
        return {"train": h["train"][-1], "val": h["val"][-1]} if h.get("val") else {}


def warmup_cosine_lr(
    step: float, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int
) -> float:
    """Linear warmup to ``max_lr`` (step 0 gets max_lr / warmup_steps, step warmup_steps - 1 gets
    max_lr), then a cosine from ``max_lr`` down to ``min_lr`` at ``max_steps``; ``min_lr`` after."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))  # 0 -> 1
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return min_lr + cosine * (max_lr - min_lr)


def get_lr(step: int, config: TrainConfig, elapsed: float = 0.0) -> float:
    """``warmup_cosine_lr`` with the config's settings; under a time budget the decay follows
    the clock instead whenever the clock is further along than the step count."""
    warmup, max_steps = config.warmup_iters, config.max_iters
    if config.time_budget and step >= warmup:
        step = max(step, warmup + elapsed / config.time_budget * (max_steps - warmup))
    return warmup_cosine_lr(step, config.learning_rate, config.min_lr, warmup, max_steps)


@torch.no_grad()
def estimate_loss(
    model, train_data, val_data, block_size, batch_size, eval_iters, device="cpu", generator=None
) -> dict:
    """Mean loss over ``eval_iters`` random batches of each split, in eval mode, without gradients."""
    was_training = model.training
    model.eval()  # dropout off: we measure the model, not a noisy version of it
    out = {}
    try:
        for split, data in (("train", train_data), ("val", val_data)):
            losses = torch.zeros(eval_iters)
            for i in range(eval_iters):
                xb, yb = get_batch(data, block_size, batch_size, device, generator)
                _, loss = model(xb, yb)
                losses[i] = loss.item()
            out[split] = losses.mean().item()
    finally:
        model.train(was_training)  # give the model back the way we found it
    return out


def train_step(model, optimizer, xb, yb, grad_clip: float | None = None) -> float:
    """One optimisation step on a batch; returns the batch loss before the update."""
    optimizer.zero_grad(set_to_none=True)  # gradients accumulate otherwise
    _, loss = model(xb, yb)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def make_optimizer(model, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay only on matrices (not on biases, LayerNorm gains)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=BETAS)


def _check_config(config: TrainConfig) -> None:
    if config.n_embd % config.n_head:
        raise CourseError(
            f"n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head}); "
            "change --n-embd or --n-head"
        )


def _model_config(config: TrainConfig, vocab_size: int):
    from shared.model import GPTConfig

    return GPTConfig(vocab_size=vocab_size, **{k: getattr(config, k) for k in MODEL_FIELDS})


def train(
    corpus,
    config: TrainConfig | None = None,
    out=None,
    resume=False,
    progress=True,
    model=None,
    source: str | None = None,
):
    """Train a GPT on ``corpus`` (a ``shared.data.Corpus``); checkpoint to ``out`` if given.

    ``model``: train this GPT (e.g. ``GPT(config, block=YourBlock)``) instead of a fresh
    reference one; its ``model.config`` sets the model fields (block_size, n_layer, ...) of
    ``config``. ``source``: a note saved in the checkpoint saying which model this is.
    Ctrl-C (KeyboardInterrupt) stops cleanly: the checkpoint is saved and the result returned
    with ``stopped == "interrupted"``; ``resume=True`` continues from ``out``.
    """
    from shared.convert import load_reference_state
    from shared.model import GPT

    config = config or default_train_config()
    tokenizer = corpus.tokenizer
    if model is not None:
        _check_given_model(model, tokenizer)
        config = replace(config, **{k: getattr(model.config, k) for k in MODEL_FIELDS})
        source = source or "a GPT you passed to train()"
    _check_config(config)
    device = pick_device(config.device)
    if device == "cpu":
        torch.set_num_threads(config.num_threads or default_num_threads())
    out = Path(out) if out else None
    model_config = _model_config(config, tokenizer.vocab_size)
    source = source or "reference GPT"

    torch.manual_seed(config.seed)
    model = (GPT(model_config) if model is None else model).to(device)
    optimizer = make_optimizer(model, config)
    batch_gen = torch.Generator().manual_seed(config.seed)
    history = {"step": [], "train": [], "val": [], "elapsed": [], "lr": [], "iter_loss": []}
    step, elapsed_before = 0, 0.0

    if resume and out and out.exists():
        saved = read_checkpoint(out)
        _check_resumable(saved, out, tokenizer, model_config)
        load_reference_state(model, saved["model"])  # checkpoints hold the reference layout
        if saved.get("optimizer"):
            optimizer.load_state_dict(saved["optimizer"])
        step, elapsed_before = int(saved["step"]), float(saved.get("elapsed", 0.0))
        history = {k: list(v) for k, v in saved["history"].items()} or history
        rng = saved.get("rng") or {}
        if "batch" in rng:
            batch_gen.set_state(rng["batch"])
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
    elif resume and out and progress:
        print(f"nothing to resume at {out}; starting a fresh run")

    def evaluate_and_save(step: int, elapsed: float) -> None:
        eval_gen = torch.Generator().manual_seed(config.seed + 1)  # same batches every eval
        losses = estimate_loss(
            model, corpus.train_data, corpus.val_data, config.block_size,
            config.batch_size, config.eval_iters, device, eval_gen,
        )  # fmt: skip
        if not history["step"] or history["step"][-1] != step:
            for key, value in (("step", step), ("elapsed", elapsed), *losses.items()):
                history[key].append(value)
            if progress:
                tqdm.write(
                    f"step {step:5d}: train {losses['train']:.4f}, val {losses['val']:.4f} "
                    f"({elapsed:.0f}s)"
                )
        save(step, elapsed)

    def save(step: int, elapsed: float) -> None:
        if out is not None:
            rng = {"batch": batch_gen.get_state(), "torch": torch.get_rng_state()}
            save_checkpoint(
                out, model=model, tokenizer=tokenizer, train_config=asdict(config),
                optimizer=optimizer, step=step, history=history, elapsed=elapsed, rng=rng,
                source=source,
            )  # fmt: skip

    model.train()
    start = time.perf_counter() - elapsed_before
    stopped = "max_iters"
    # Under a time budget the bar counts seconds, so its ETA is the real one (max_iters rarely binds).
    by_time = bool(config.time_budget)
    bar = tqdm(
        total=config.time_budget if by_time else config.max_iters,
        initial=min(elapsed_before, config.time_budget) if by_time else step,
        unit="s" if by_time else "it", desc="training", disable=not progress,
        dynamic_ncols=True, leave=True,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]"
        if by_time else None,
    )  # fmt: skip
    try:
        while step < config.max_iters:
            elapsed = time.perf_counter() - start
            if config.time_budget and elapsed >= config.time_budget:
                stopped = "time_budget"
                break
            if step % config.eval_interval == 0 and step > 0:
                evaluate_and_save(step, elapsed)
            lr = get_lr(step, config, elapsed)
            for group in optimizer.param_groups:
                group["lr"] = lr
            xb, yb = get_batch(
                corpus.train_data, config.block_size, config.batch_size, device, batch_gen
            )
            loss = train_step(model, optimizer, xb, yb, config.grad_clip)
            step += 1
            history["iter_loss"].append(loss)
            history["lr"].append(lr)
            if by_time:
                bar.update(min(time.perf_counter() - start, config.time_budget) - bar.n)
            else:
                bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(step=step, loss=f"{loss:.3f}", lr=f"{lr:.1e}", refresh=False)
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    if stopped == "interrupted":
        save(step, elapsed)  # quick: no eval, so Ctrl-C returns at once
        if progress:
            where = f"; checkpoint saved to {out} (--resume continues)" if out else ""
            print(f"interrupted at step {step}{where}")
    else:
        evaluate_and_save(step, elapsed)
    model.eval()
    return TrainResult(model, tokenizer, config, history, step, elapsed, stopped, out)


def _check_given_model(model, tokenizer) -> None:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "vocab_size"):
        raise CourseError(
            "train(model=...) needs a shared.model.GPT (it has .config); build it with "
            "GPT(GPTConfig(...), block=YourBlock)"
        )
    if config.vocab_size != tokenizer.vocab_size:
        raise CourseError(
            f"the model's vocab_size is {config.vocab_size} but the corpus has "
            f"{tokenizer.vocab_size} characters; build it with vocab_size=corpus.vocab_size"
        )


def _check_resumable(saved: dict, path: Path, tokenizer, model_config) -> None:
    if list(saved["vocab"]) != list(tokenizer.chars):
        raise CourseError(
            f"cannot resume from {path}: it was trained on a different vocabulary "
            f"({len(saved['vocab'])} characters, this corpus has {tokenizer.vocab_size}); "
            "drop --resume or choose another --out"
        )
    mine = model_config.to_dict()
    theirs = saved["model_config"]
    diff = [f"{k} {theirs.get(k)} vs {mine[k]}" for k in mine if theirs.get(k) != mine[k]]
    if diff:
        raise CourseError(
            f"cannot resume from {path}: its model differs ({', '.join(diff)}); "
            "use the same model flags, drop --resume, or choose another --out"
        )


def quick_checkpoint_path() -> Path:
    """Where quick-mode and stand-in runs save, so they never overwrite a real checkpoint."""
    return project_root() / "checkpoints" / "gpt_small.pt"


def ensure_checkpoint(path=None, quick_train_if_missing=True) -> Path:
    """A trained checkpoint for lessons 07/08: ``path`` (default checkpoints/gpt.pt) if it exists,
    else the small stand-in (trained now, quickly, if missing)."""
    wanted = Path(path) if path else default_checkpoint_path()
    if wanted.is_file():
        return wanted
    small = quick_checkpoint_path() if path is None else wanted
    if small.is_file():
        print(f"No checkpoint at {wanted.name}; using the small stand-in {small.name}.")
        return small
    if not quick_train_if_missing:
        raise CourseError(
            f"no trained checkpoint at {wanted}; run lesson 06_train or `python -m shared train`"
        )
    from shared.data import load_corpus

    config = default_train_config(time_budget=15.0 if quick_mode() else 60.0)
    print(
        f"No trained checkpoint at {wanted.name} (lesson 06_train writes it). Training a small "
        f"stand-in for up to {config.time_budget:.0f} s so this lesson can run; its text will be "
        "rougher than a full run's."
    )
    train(load_corpus(), config, out=small, progress=False)
    return small


def plot_history(history: dict, ax=None):
    """Loss curves: every training step (faint) and the periodic train/val estimates."""
    import matplotlib.pyplot as plt

    fig = ax.figure if ax is not None else plt.subplots(figsize=(7, 4))[0]
    ax = ax or fig.axes[0]
    if history.get("iter_loss"):
        ax.plot(range(1, len(history["iter_loss"]) + 1), history["iter_loss"], alpha=0.3,
                label="batch loss")  # fmt: skip
    ax.plot(history["step"], history["train"], "o-", label="train (estimate)")
    ax.plot(history["step"], history["val"], "o-", label="val (estimate)")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/char)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig
