"""Lesson 06: training loop: AdamW, warmup + cosine learning rate, gradient clipping, checkpoints.

    python -m shared train --time-budget 240          # the default CPU recipe, ~4 minutes
    python -m shared train --resume                   # keep going from checkpoints/gpt.pt
    python -m shared train --device cuda --compile    # the GPU recipe (see gpu_train_config)
    torchrun --standalone --nproc_per_node 2 -m shared train   # 2 processes (shared.engine.distributed)

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
from dataclasses import replace

import torch

from shared.data import get_batch
from shared.engine import distributed
from shared.engine.checkpoint import save_checkpoint
from shared.engine.config import pick_device
from shared.engine.train_config import TrainConfig, default_train_config
from shared.engine.train_guards import check_given_model
from shared.engine.train_run import TrainResult, TrainRun
from shared.model import GPT
from shared.modern import ModernConfig, ModernGPT, is_modern
from shared.optimizers import MuonAdamW

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
    corpus, config=None, out=None, resume=False, progress=True, model=None, source=None
) -> TrainResult:
    """Train a GPT on ``corpus`` with ``config`` (a ``TrainConfig``, default: the CPU recipe);
    checkpoint to ``out`` if given: ``resume=True`` continues it, else a model already there is
    kept under a dated name. ``model``: train this GPT instead of a fresh reference one;
    ``source``: a note saved in the checkpoint. Ctrl-C stops cleanly. Around the loop, resume,
    saving, the stop every torchrun rank agrees on, the thread probe and the report are
    ``shared.engine.train_run.TrainRun``'s.
    """
    config = config or default_train_config()
    if model is not None:  # the learner's own GPT: its config is the model's
        check_given_model(model, corpus.tokenizer)
        config = replace(config, model=model.config)
        source = source or "a GPT you passed to train()"
    rank = distributed.setup(pick_device(config.device))  # one process unless torchrun made more
    device, block_size, batch_size = rank.device, config.model.block_size, config.batch_size
    torch.manual_seed(config.seed)
    if model is None:
        model = new_model(replace(config.model, vocab_size=corpus.tokenizer.vocab_size))
    model = model.to(device)
    optimizer = make_optimizer(model, config)
    run = TrainRun(corpus, config, rank, out, progress, source or "reference GPT", save_checkpoint)
    step, batch_gen = run.begin(model, optimizer, resume)  # 0, or where the checkpoint stopped
    ddp_model = distributed.prepare_model(model, rank, config.seed, step, batch_gen, config.compile)
    autocast = autocast_for(device)

    def evaluate() -> dict:  # the same batches every time: eval losses compare across steps
        eval_gen = torch.Generator().manual_seed(config.seed + 1)
        with autocast:
            return estimate_loss(model, corpus.train_data, corpus.val_data, block_size,
                                 batch_size, config.eval_iters, device, eval_gen)  # fmt: skip

    model.train()
    start, loss = time.perf_counter() - run.elapsed_before, 0.0
    with run.steps() as tuner:  # progress, thread probe, Ctrl-C (which ends the loop here)
        while step < config.max_iters:
            stop, elapsed = run.stop(step, time.perf_counter() - start, loss)  # all ranks agree
            if stop:  # time budget or Ctrl-C (a diverged loss raised)
                break
            if step % config.eval_interval == 0 and step > 0 and rank.is_main:
                run.evaluated(step, elapsed, evaluate())  # logged, checked, checkpointed
            lr = get_lr(step, config, elapsed)
            for group in optimizer.param_groups:
                group["lr"] = lr
            xb, yb = get_batch(corpus.train_data, block_size, batch_size, device, batch_gen)
            with tuner.step():
                loss = train_step(ddp_model, optimizer, xb, yb, config.grad_clip, autocast)
            step += 1
            run.stepped(step, loss, lr, time.perf_counter() - start)
    elapsed = time.perf_counter() - start
    if run.stopped != "interrupted" and rank.is_main:
        run.evaluated(step, elapsed, evaluate(), final=True)
    model.eval()
    return run.finish(step, elapsed)  # saves after a Ctrl-C; the summary; a TrainResult


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
