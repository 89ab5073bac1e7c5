"""Training loop: AdamW, warmup + cosine learning rate, gradient clipping, checkpoints.

    python -m shared train --time-budget 240          # the default CPU recipe, ~4 minutes
    python -m shared train --resume                   # keep going from checkpoints/gpt.pt
    python -m shared train --device cuda --compile    # the GPU recipe (see gpu_train_config)
    torchrun --standalone --nproc_per_node 2 -m shared train   # 2 processes (shared.distributed)

The loop stops at ``max_iters`` or when the wall-clock ``time_budget`` runs out, whichever
comes first. With a time budget the learning rate decays over *time* as well as steps, so a
slow laptop still finishes its budget with a small, annealed learning rate. For bit-for-bit
reproducible runs use ``time_budget=None`` (``--time-budget none``): then only steps count.
The ``train`` command's flags are parsed in ``shared/course/cli.py``.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from shared import distributed
from shared.bpe_corpus import bits_per_char
from shared.checkpoint import (
    describe_file,
    keep_aside,
    read_checkpoint,
    restore_training_state,
    save_checkpoint,
)
from shared.config import pick_device
from shared.data import get_batch
from shared.model import GPT
from shared.modern import ModernConfig, ModernGPT, is_modern
from shared.optimizers import MuonAdamW
from shared.threads import tuner_for
from shared.train_config import TrainConfig, default_train_config
from shared.train_guards import (
    check_given_model,
    check_resumable,
    save_safely,
    stop_if_diverged,
    stop_reason,
    weights_finite,
)
from shared.train_report import TrainReport

__all__ = [
    "TrainConfig",
    "TrainResult",
    "autocast_for",
    "default_train_config",
    "estimate_loss",
    "get_lr",
    "plot_history",
    "train",
    "train_step",
    "warmup_cosine_lr",
]

BETAS = (0.9, 0.99)  # beta2=0.99 (not 0.999): few tokens per step, so adapt faster (nanoGPT char)


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
    summary: str = ""  # what the run did, in a line or two (train_report.TrainReport.summary)
    threads: int | None = None  # the CPU thread count in use at the end (None: not chosen here)

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


def train_step(model, optimizer, xb, yb, grad_clip: float | None = None, autocast=None) -> float:
    """One optimisation step on a batch; returns the batch loss before the update.

    ``autocast``: a context for the forward pass, e.g. ``autocast_for("cuda")`` (bf16).
    """
    optimizer.zero_grad(set_to_none=True)  # gradients accumulate otherwise
    with autocast or contextlib.nullcontext():
        _, loss = model(xb, yb)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def autocast_for(device: str):
    """bf16 autocast on a GPU that supports it: matmuls in bfloat16 (about 2x faster, no loss
    scaling needed, unlike float16); full precision everywhere else."""
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        torch.backends.cuda.matmul.allow_tf32 = True  # what is left in float32: TF32 tensor cores
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(model, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay only on matrices (not on biases, LayerNorm gains). The modern GPT
    (lesson 10) gets Muon + AdamW instead (``shared.optimizers``)."""
    if is_modern(model):
        return MuonAdamW(model, config.learning_rate, config.muon_lr, config.weight_decay)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=BETAS)


def new_model(config):
    """A fresh model for ``config``: ``ModernGPT`` for a ``ModernConfig``, else ``GPT``."""
    return ModernGPT(config) if isinstance(config, ModernConfig) else GPT(config)


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
    reference one; its ``model.config`` replaces ``config.model``. ``source``: a note saved in
    the checkpoint saying which model this is.
    Ctrl-C (KeyboardInterrupt) stops cleanly: the checkpoint is saved and the result returned
    with ``stopped == "interrupted"``; ``resume=True`` continues from ``out``; otherwise a model
    already at ``out`` is kept under a dated name next to it, never replaced. Started by
    ``torchrun``, every rank trains the same model on its own batches (``shared.distributed``);
    rank 0 alone evaluates, shows progress and saves. On one CPU process the first steps also
    pick the thread count (``shared.threads``; ``config.num_threads`` forces one), and
    ``progress`` shows what happened (``shared.train_report``): the result's ``summary``.
    """
    config = config or default_train_config()
    if model is not None:
        check_given_model(model, corpus.tokenizer)
        config = replace(config, model=model.config)
        source = source or "a GPT you passed to train()"
    source = source or "reference GPT"
    rank = distributed.setup(pick_device(config.device))  # one process unless torchrun made more
    device, progress = rank.device, progress and rank.is_main
    out = Path(out) if out else None
    tokenizer = corpus.tokenizer
    model_config = replace(config.model, vocab_size=tokenizer.vocab_size)

    torch.manual_seed(config.seed)
    model = (new_model(model_config) if model is None else model).to(device)
    optimizer = make_optimizer(model, config)
    batch_gen = torch.Generator().manual_seed(distributed.batch_seed(config.seed, rank.rank))
    history = {"step": [], "train": [], "val": [], "elapsed": [], "lr": [], "iter_loss": []}
    step, elapsed_before = 0, 0.0

    saved_step = None  # the step of the last good checkpoint at `out`, if any
    if resume and out and out.exists():
        saved = read_checkpoint(out)  # validated: a damaged file is one clear error
        check_resumable(saved, out, tokenizer, model_config)
        history = restore_training_state(saved, out, model, optimizer, batch_gen)
        step, elapsed_before = int(saved["step"]), float(saved.get("elapsed", 0.0))
        saved_step = step
    elif resume and out and progress:
        print(f"nothing to resume at {out}; starting a fresh run")
    elif out is not None and out.is_file() and rank.is_main:
        keep_earlier_model(out)
    ddp_model = distributed.prepare_model(model, rank, config.seed, step, batch_gen, config.compile)
    autocast = autocast_for(device)

    def evaluate_and_save(step: int, elapsed: float, final: bool = False) -> None:
        eval_gen = torch.Generator().manual_seed(config.seed + 1)  # same batches every eval
        with autocast:
            losses = estimate_loss(
                model, corpus.train_data, corpus.val_data, config.model.block_size,
                config.batch_size, config.eval_iters, device, eval_gen,
            )  # fmt: skip
        if not rank.enabled:  # under torchrun the agreed stop below handles it on every rank
            stop_if_diverged(losses["val"], "the validation loss", step, config, out, saved_step)
        if not history["step"] or history["step"][-1] != step:
            for key, value in (("step", step), ("elapsed", elapsed), *losses.items()):
                history[key].append(value)
            unit = "nats/token" if per_token else "nats/char"
            report.write(
                f"step {step:5d}: train {losses['train']:.4f}, val {losses['val']:.4f} {unit} "
                f"({bits_per_char(losses['val'], corpus):.3f} bits/char) ({elapsed:.0f}s)"
            )
        save(step, elapsed, final)

    def save(step: int, elapsed: float, final: bool = False) -> None:
        nonlocal out, saved_step
        if out is not None and rank.is_main:
            if not weights_finite(model):
                # Never overwrite a good checkpoint with broken weights. Mid-run under torchrun,
                # the next step's loss is not finite on every rank and the agreed stop raises.
                if final or not rank.enabled:
                    stop_if_diverged(float("nan"), "a weight", step, config, out, saved_step)
                return
            rng = {"batch": batch_gen.get_state(), "torch": torch.get_rng_state()}

            def save_to(path):
                save_checkpoint(
                    path, model=model, tokenizer=tokenizer, train_config=asdict(config),
                    optimizer=optimizer, step=step, history=history, elapsed=elapsed, rng=rng,
                    source=source,
                )  # fmt: skip

            out = save_safely(save_to, out, final)
            saved_step = step

    model.train()
    start = time.perf_counter() - elapsed_before
    stopped = "max_iters"
    # Threads: timed on the first steps (they train too); progress: a bar, or lines in a log.
    per_token = (getattr(corpus, "chars_per_token", None) or {}).get("val")
    report = TrainReport(config, step, elapsed_before, enabled=progress, chars_per_token=per_token)
    tuner = tuner_for(device, config.num_threads, rank.world_size, on_change=report.chose)
    report.start(device, model, tuner)
    interrupt, loss = distributed.InterruptFlag(rank).install(), 0.0
    try:
        while step < config.max_iters:
            elapsed = time.perf_counter() - start
            reason = stop_reason(config, elapsed, interrupt.requested, loss)
            reason, elapsed = distributed.agree(reason, elapsed, rank)  # all ranks: same answer
            if reason == "diverged":  # every rank raises together: none is left waiting
                stop_if_diverged(float("nan"), "the loss", step, config, out, saved_step)
            if reason:
                stopped = reason
                break
            if step % config.eval_interval == 0 and step > 0 and rank.is_main:
                evaluate_and_save(step, elapsed)
            lr = get_lr(step, config, elapsed)
            for group in optimizer.param_groups:
                group["lr"] = lr
            xb, yb = get_batch(
                corpus.train_data, config.model.block_size, config.batch_size, device, batch_gen
            )
            with tuner.step():
                loss = train_step(ddp_model, optimizer, xb, yb, config.grad_clip, autocast)
            step += 1
            history["iter_loss"].append(loss)
            history["lr"].append(lr)
            report.update(step, loss, lr, time.perf_counter() - start)
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        report.close()
        interrupt.restore()
    elapsed = time.perf_counter() - start
    if stopped == "interrupted":
        save(step, elapsed, final=True)  # quick: no eval, so Ctrl-C returns at once
        if progress:
            where = f"; checkpoint saved to {out} (--resume continues)" if out else ""
            print(f"interrupted at step {step}{where}")
    elif rank.is_main:
        evaluate_and_save(step, elapsed, final=True)
    model.eval()
    distributed.teardown(rank)
    summary = report.finish(step, elapsed, stopped, history["val"][-1] if history["val"] else None)
    threads = torch.get_num_threads() if device == "cpu" else None
    return TrainResult(
        model, tokenizer, config, history, step, elapsed, stopped, out, summary, threads
    )


def keep_earlier_model(out: Path) -> Path:
    """A new run (not ``resume``) never replaces the model at ``out``: it moves to a dated name
    next to it first (``shared.checkpoint.keep_aside``), and one line says where."""
    what = describe_file(out)
    kept = keep_aside(out)
    print(f"{out} held an earlier model ({what}); kept it as {kept} (this run writes {out.name})")
    return kept


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
