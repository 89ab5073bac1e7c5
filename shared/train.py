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
import os
import signal
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from shared import distributed
from shared.checkpoint import read_checkpoint, restore_training_state, save_checkpoint
from shared.config import default_checkpoint_path, pick_device, project_root, quick_mode
from shared.data import get_batch
from shared.errors import CourseError
from shared.model import GPT, GPTConfig

__all__ = [
    "TrainConfig",
    "TrainResult",
    "autocast_for",
    "default_train_config",
    "describe",
    "gpu_train_config",
    "recipe_for_device",
    "ensure_checkpoint",
    "estimate_loss",
    "get_lr",
    "plot_history",
    "train",
    "train_step",
    "warmup_cosine_lr",
    "with_overrides",
]

_TORCH_DEFAULT_THREADS = torch.get_num_threads()  # before anyone changes it
MODEL_FIELDS = tuple(f.name for f in fields(GPTConfig) if f.name != "vocab_size")
BETAS = (0.9, 0.99)  # beta2=0.99 (not 0.999): few tokens per step, so adapt faster (nanoGPT char)


def _recipe_model() -> GPTConfig:
    return GPTConfig(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0)


@dataclass
class TrainConfig:
    """The model to train and how; defaults are the CPU recipe measured in benchmarks/.

    ``model`` is a ``GPTConfig`` (its ``vocab_size`` is filled in from the corpus's tokenizer).
    """

    model: GPTConfig = field(default_factory=_recipe_model)
    batch_size: int = 32
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
    compile: bool = False  # torch.compile the model: slower start, faster steps (mostly on GPU)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """From ``asdict(config)`` as saved in a checkpoint (older flat dicts load too)."""
        names = {f.name for f in fields(cls)} - {"model"}
        model = dict(values.get("model") or {k: values[k] for k in MODEL_FIELDS if k in values})
        return cls(
            model=replace(_recipe_model(), **model),
            **{k: v for k, v in values.items() if k in names},
        )


def default_num_threads() -> int:
    """PyTorch's own choice: one thread per physical core.

    Measured on an idle 2-core machine: 2 threads train ~1.6-1.9x faster than 1 (13-14k vs
    7-9k tokens/s). On a machine busy with other work, fewer threads can be faster: pass
    ``num_threads`` (``--num-threads``) then. See benchmarks/RESULTS.md.
    """
    return max(1, _TORCH_DEFAULT_THREADS)


def default_train_config(**overrides) -> TrainConfig:
    """The measured CPU recipe (readable Spanish in a few minutes); tiny and fast in quick mode.

    ``overrides`` may name TrainConfig fields and GPTConfig fields (``n_layer=2``), which go to
    ``config.model``. Raises ValueError for a model the GPTConfig rules reject.
    """
    config = TrainConfig()
    if quick_mode():  # CI, tests and the grader: seconds, not minutes
        config = replace(
            config,
            model=GPTConfig(block_size=64, n_layer=2, n_head=2, n_embd=64),
            batch_size=16,
            learning_rate=3e-3,
            min_lr=3e-4,
            warmup_iters=20,
            max_iters=150,
            time_budget=15.0,
            eval_interval=50,
            eval_iters=5,
        )
    return with_overrides(config, **overrides)


def gpu_train_config(**overrides) -> TrainConfig:
    """The GPU recipe: the lecture-sized model (nanoGPT's shakespeare-char: 6 layers, 6 heads,
    384 channels, block 256, dropout 0.2, batch 64, lr 1e-3) for up to 10 minutes."""
    config = TrainConfig(
        model=GPTConfig(block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2),
        batch_size=64, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, max_iters=5000,
        time_budget=600.0, eval_interval=250, eval_iters=50,
    )  # fmt: skip
    return with_overrides(config, **overrides)


MODEL_SIZE_FIELDS = ("n_layer", "n_head", "n_embd", "block_size")


def recipe_for_device(device: str, /, **overrides) -> tuple[str, TrainConfig]:
    """``("gpu", gpu_train_config(...))`` on CUDA unless quick mode is on or ``overrides`` set the
    model's size; else ``("cpu", default_train_config(...))``. ``overrides`` apply on top."""
    if device.startswith("cuda") and not quick_mode():
        if not any(overrides.get(name) is not None for name in MODEL_SIZE_FIELDS):
            return "gpu", gpu_train_config(**overrides)
    return "cpu", default_train_config(**overrides)


def describe(config: TrainConfig) -> str:
    """One line: the model's size and the batch, for the ``recipe:`` line the CLI prints."""
    m = config.model
    return (
        f"{m.n_layer} layers, {m.n_head} heads, {m.n_embd} channels, block {m.block_size}, "
        f"batch {config.batch_size}, lr {config.learning_rate:g}"
    )


def with_overrides(config: TrainConfig, **overrides) -> TrainConfig:
    """A copy of ``config`` with TrainConfig and GPTConfig fields (``n_layer=2``) changed."""
    model_overrides = {k: overrides.pop(k) for k in MODEL_FIELDS if k in overrides}
    return replace(config, model=replace(config.model, **model_overrides), **overrides)


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
    """AdamW; weight decay only on matrices (not on biases, LayerNorm gains)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=BETAS)


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
    with ``stopped == "interrupted"``; ``resume=True`` continues from ``out``. Started by
    ``torchrun``, every rank trains the same model on its own batches (``shared.distributed``);
    rank 0 alone evaluates, shows progress and saves.
    """
    config = config or default_train_config()
    if model is not None:
        _check_given_model(model, corpus.tokenizer)
        config = replace(config, model=model.config)
        source = source or "a GPT you passed to train()"
    source = source or "reference GPT"
    rank = distributed.setup(pick_device(config.device))  # one process unless torchrun made more
    device, progress = rank.device, progress and rank.is_main
    if device == "cpu":
        torch.set_num_threads(config.num_threads or default_num_threads())
    out = Path(out) if out else None
    tokenizer = corpus.tokenizer
    model_config = replace(config.model, vocab_size=tokenizer.vocab_size)

    torch.manual_seed(config.seed)
    model = (GPT(model_config) if model is None else model).to(device)
    optimizer = make_optimizer(model, config)
    batch_gen = torch.Generator().manual_seed(distributed.batch_seed(config.seed, rank.rank))
    history = {"step": [], "train": [], "val": [], "elapsed": [], "lr": [], "iter_loss": []}
    step, elapsed_before = 0, 0.0

    saved_step = None  # the step of the last good checkpoint at `out`, if any
    if resume and out and out.exists():
        saved = read_checkpoint(out)  # validated: a damaged file is one clear error
        _check_resumable(saved, out, tokenizer, model_config)
        history = restore_training_state(saved, out, model, optimizer, batch_gen)
        step, elapsed_before = int(saved["step"]), float(saved.get("elapsed", 0.0))
        saved_step = step
    elif resume and out and progress:
        print(f"nothing to resume at {out}; starting a fresh run")
    ddp_model, autocast = _prepare_model(model, config, rank, step, batch_gen), autocast_for(device)

    def evaluate_and_save(step: int, elapsed: float, final: bool = False) -> None:
        eval_gen = torch.Generator().manual_seed(config.seed + 1)  # same batches every eval
        with autocast:
            losses = estimate_loss(
                model, corpus.train_data, corpus.val_data, config.model.block_size,
                config.batch_size, config.eval_iters, device, eval_gen,
            )  # fmt: skip
        if not rank.enabled:  # under torchrun the agreed stop below handles it on every rank
            _stop_if_diverged(losses["val"], "the validation loss", step, config, out, saved_step)
        if not history["step"] or history["step"][-1] != step:
            for key, value in (("step", step), ("elapsed", elapsed), *losses.items()):
                history[key].append(value)
            if progress:
                tqdm.write(
                    f"step {step:5d}: train {losses['train']:.4f}, val {losses['val']:.4f} "
                    f"({elapsed:.0f}s)"
                )
        save(step, elapsed, final)

    def save(step: int, elapsed: float, final: bool = False) -> None:
        nonlocal out, saved_step
        if out is not None and rank.is_main:
            if not _weights_finite(model):
                # Never overwrite a good checkpoint with broken weights. Mid-run under torchrun,
                # the next step's loss is not finite on every rank and the agreed stop raises.
                if final or not rank.enabled:
                    _stop_if_diverged(float("nan"), "a weight", step, config, out, saved_step)
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
    interrupt, loss = distributed.InterruptFlag(rank).install(), 0.0
    try:
        while step < config.max_iters:
            elapsed = time.perf_counter() - start
            reason = _stop_reason(config, elapsed, interrupt.requested, loss)
            reason, elapsed = distributed.agree(reason, elapsed, rank)  # all ranks: same answer
            if reason == "diverged":  # every rank raises together: none is left waiting
                _stop_if_diverged(float("nan"), "the loss", step, config, out, saved_step)
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
            loss = train_step(ddp_model, optimizer, xb, yb, config.grad_clip, autocast)
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
    return TrainResult(model, tokenizer, config, history, step, elapsed, stopped, out)


# ----------------------------------------------------------------------------- safety
def _weights_finite(model) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _stop_if_diverged(value: float, what: str, step: int, config, out, saved_step) -> None:
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
        f"{config.learning_rate:g} is too high for this model: lower it, --learning-rate); {kept}"
    )


@contextmanager
def _interrupts_held(reraise: bool):
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
    with _interrupts_held(reraise=not final):
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


def _prepare_model(model, config: TrainConfig, rank, step: int, batch_gen):
    """The module the loop steps: ``model`` compiled if asked, and wrapped for DDP under
    torchrun (every rank starts from rank 0's weights; ranks > 0 get their own random streams)."""
    if rank.rank > 0:
        seed = distributed.batch_seed(config.seed, rank.rank, step)
        batch_gen.manual_seed(seed)  # on resume: only rank 0's stream was saved
        torch.manual_seed(seed)  # dropout masks differ across ranks too
    compiled = torch.compile(model) if config.compile else model
    return distributed.wrap(compiled, rank)


def _stop_reason(config: TrainConfig, elapsed: float, interrupted: bool, loss: float):
    """Why this rank wants to stop now, if it does (``shared.distributed.STOP_REASONS``)."""
    if not math.isfinite(loss):
        return "diverged"
    if interrupted:
        return "interrupted"
    if config.time_budget and elapsed >= config.time_budget:
        return "time_budget"
    return None


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
