"""The loss ladder (lessons 02-05): every new model, trained the same short way, in one table.

Each lesson adds a rung: the bigram (02), embeddings + one causal head (03), several heads (04),
then the parts of the transformer block one at a time (05). ``train_rung`` trains a model with
ONE fixed recipe (same optimiser, learning rate, batch, context, steps and batches for every
rung), measures its loss on fixed validation batches and records a row in
``outputs/loss_ladder.json``, so the rows survive from one notebook to the next; ``show_ladder``
prints and plots the table so far. Because the recipe is fixed in *steps* (not seconds) and
seeded with its own ``torch.Generator``, the numbers do not depend on how busy the machine is.

The rungs are all ``GPT(config, block=functools.partial(AblationBlock, ...))``: the transformer
block with parts switched off. ``AblationBlock`` is a measuring tool; the block you build and
read is ``shared.block.Block`` (with every part on, ``AblationBlock`` computes exactly that).
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from shared.attention import CausalSelfAttention
from shared.bigram import BigramLanguageModel
from shared.block import FeedForward
from shared.data import get_batch
from shared.engine.config import default_outputs_dir, quick_mode
from shared.engine.threads import tuned_threads
from shared.model import GPT, GPTConfig

# The one recipe every rung is trained with. Small enough that a rung takes well under a
# minute on a 2-core CPU; the same for all rungs, so the differences come from the models.
N_EMBD = 64  # channels (the bigram has none: its table is vocab x vocab)
BLOCK_SIZE = 32  # characters of context
BATCH_SIZE = 32
LEARNING_RATE = 3e-3  # AdamW, constant (no warmup, no decay)
GRAD_CLIP = 1.0
FULL_STEPS = 2000  # steps at full budget
QUICK_STEPS = 25  # steps in quick mode (CI, grader): seconds, and labelled as such
EVAL_BATCHES = 20  # fixed validation batches every rung is measured on
SEED = 1337
UNIFORM_LOSS = math.log(92)  # a uniform guess over the 92 characters of the book: 4.52
BIGRAM_LOSS = 2.30  # lesson 02's bigram, trained to convergence (measured there)


def ladder_path() -> Path:
    """Where the rows live: ``outputs/loss_ladder.json`` at the project root, or
    ``outputs/loss_ladder_quick.json`` in quick mode (so tests never overwrite real rows)."""
    return default_outputs_dir() / (
        "loss_ladder_quick.json" if quick_mode() else "loss_ladder.json"
    )


class AblationBlock(nn.Module):
    """``shared.block.Block`` with switchable parts (same signature, same attribute names).

    ``feedforward=False`` drops the MLP, ``residual=False`` replaces ``x + f(x)`` by ``f(x)``,
    ``layernorm=False`` drops ln1/ln2. With everything on it computes exactly what ``Block``
    computes, and loads a ``Block``'s ``state_dict``.
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        block_size: int,
        dropout: float = 0.0,
        *,
        feedforward: bool = True,
        residual: bool = True,
        layernorm: bool = True,
    ):
        super().__init__()
        self.residual = residual
        self.ln1 = nn.LayerNorm(n_embd) if layernorm else nn.Identity()
        self.sa = CausalSelfAttention(n_embd, n_head, block_size, dropout)
        self.ffwd = FeedForward(n_embd, dropout) if feedforward else None
        self.ln2 = nn.LayerNorm(n_embd) if layernorm and feedforward else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C)."""
        y = self.sa(self.ln1(x))  # (B, T, C)
        x = x + y if self.residual else y
        if self.ffwd is not None:
            y = self.ffwd(self.ln2(x))  # (B, T, C)
            x = x + y if self.residual else y
        return x


@dataclass(frozen=True)
class Rung:
    """One model of the ladder: its GPT shape and which block parts are on."""

    name: str
    lesson: str
    n_layer: int = 1
    n_head: int = 1
    feedforward: bool = False
    residual: bool = False
    layernorm: bool = False
    bigram: bool = False


RUNGS: dict[str, Rung] = {
    rung.name: rung
    for rung in (
        Rung("bigram", "02", bigram=True),
        Rung("one head", "03"),  # embeddings -> one causal head -> lm_head
        Rung("multi-head", "04", n_head=4),
        Rung("+ feed-forward", "05", n_head=4, feedforward=True),
        Rung("+ residual", "05", n_head=4, feedforward=True, residual=True),
        Rung("+ LayerNorm (full block)", "05", 1, 4, True, True, True),
        Rung("deeper", "05", n_layer=4, n_head=4, feedforward=True, residual=True, layernorm=True),
    )
}


def rung_model(name: str, vocab_size: int, seed: int = SEED) -> nn.Module:
    """The reference model of rung ``name``, initialised from ``seed`` (global RNG untouched)."""
    if name not in RUNGS:
        raise ValueError(f"unknown rung {name!r}; choose one of {list(RUNGS)}")
    rung = RUNGS[name]
    with torch.random.fork_rng(devices=[]):  # the global RNG is restored on exit
        torch.manual_seed(seed)
        if rung.bigram:
            return BigramLanguageModel(vocab_size)
        config = GPTConfig(
            vocab_size=vocab_size, block_size=BLOCK_SIZE, n_layer=rung.n_layer,
            n_head=rung.n_head, n_embd=N_EMBD, dropout=0.0,
        )  # fmt: skip
        block = functools.partial(
            AblationBlock, feedforward=rung.feedforward, residual=rung.residual,
            layernorm=rung.layernorm,
        )  # fmt: skip
        return GPT(config, block=block)


def default_steps() -> int:
    """Training steps per rung: ``FULL_STEPS``, or ``QUICK_STEPS`` in quick mode."""
    return QUICK_STEPS if quick_mode() else FULL_STEPS


@torch.no_grad()
def ladder_val_loss(model: nn.Module, val_data: torch.Tensor, batches: int = EVAL_BATCHES) -> float:
    """Mean loss on the same ``batches`` validation batches every time (eval mode, no grad)."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(SEED + 1)
    was_training = model.training
    model.eval()
    try:
        losses = []
        for _ in range(batches):
            xb, yb = get_batch(val_data, BLOCK_SIZE, BATCH_SIZE, device, generator)
            losses.append(model(xb, yb)[1].item())
    finally:
        model.train(was_training)
    return sum(losses) / len(losses)


def train_rung(
    name: str,
    model: nn.Module,
    corpus,
    steps: int | None = None,
    path: str | Path | None = None,
    optimizer=None,
) -> dict:
    """Train ``model`` (anything returning ``(logits, loss)``) with the ladder's recipe, measure
    its validation loss and record the row ``name`` in the ladder file (``path``, default
    ``ladder_path()``), replacing any earlier row of that name. ``optimizer``: a function
    ``model -> optimizer`` to change the optimizer alone (lesson 10's Muon); default AdamW.

    Returns ``{"name", "params", "val_loss", "steps", "quick"}``; ``quick`` is True when the
    steps were quick mode's few (the loss then says little).
    """
    steps = default_steps() if steps is None else int(steps)
    if steps < 0:
        raise ValueError(f"steps must be 0 or more, got {steps}")
    device = next(model.parameters()).device
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    else:
        optimizer = optimizer(model)
    generator = torch.Generator().manual_seed(SEED)  # the same batches for every rung
    model.train()
    with tuned_threads() as tuner:  # the fastest thread count, timed on the first steps
        for _ in range(steps):
            xb, yb = get_batch(corpus.train_data, BLOCK_SIZE, BATCH_SIZE, device, generator)
            with tuner.step():
                _, loss = model(xb, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
                optimizer.step()
    model.eval()
    row = {
        "name": name,
        "params": sum(p.numel() for p in model.parameters()),
        "val_loss": round(ladder_val_loss(model, corpus.val_data), 4),
        "steps": steps,
        "quick": steps < FULL_STEPS,
    }
    record_row(row, path)
    return row


def load_ladder(path: str | Path | None = None) -> list[dict]:
    """The recorded rows, in rung order (rows that are not rungs come last); [] if none yet."""
    path = Path(path) if path else ladder_path()
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except ValueError:
        print(f"warning: {path} is not valid JSON; starting a new ladder")
        return []
    order = {name: i for i, name in enumerate(RUNGS)}
    return sorted(rows, key=lambda row: order.get(row["name"], len(order)))


def record_row(row: dict, path: str | Path | None = None) -> None:
    """Add ``row`` to the ladder file, replacing a row of the same name (atomic write)."""
    path = Path(path) if path else ladder_path()
    rows = [r for r in load_ladder(path) if r["name"] != row["name"]] + [row]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1, ensure_ascii=False)
    os.replace(tmp, path)


def show_ladder(path: str | Path | None = None, ax=None) -> None:
    """Print the ladder so far (one row per model, in rung order) and plot it."""
    import matplotlib.pyplot as plt

    rows = load_ladder(path)
    if not rows:
        print("The ladder is empty: train a rung with train_rung(...) first.")
        return
    width = max(len(r["name"]) for r in rows)
    print(f"{'model':<{width}}  {'params':>9}  {'val loss':>8}")
    for r in rows:
        note = f"   (quick mode: {r['steps']} steps only)" if r.get("quick") else ""
        print(f"{r['name']:<{width}}  {r['params']:>9,}  {r['val_loss']:>8.3f}{note}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    x = range(len(rows))
    # Bars, not a line: each rung is a different model, and nothing lies between two of them.
    ax.bar(x, [r["val_loss"] for r in rows], width=0.6, color="C0")
    for i, r in enumerate(rows):
        ax.annotate(f"{r['val_loss']:.2f}", (i, r["val_loss"]), textcoords="offset points",
                    xytext=(0, 3), ha="center")  # fmt: skip
    ax.axhline(
        UNIFORM_LOSS, color="gray", ls="--", lw=1, label=f"uniform guess ({UNIFORM_LOSS:.2f})"
    )
    ax.axhline(
        BIGRAM_LOSS, color="C1", ls=":", lw=1, label=f"bigram, converged ({BIGRAM_LOSS:.2f})"
    )
    ax.set_xticks(list(x), [r["name"] for r in rows], rotation=20, ha="right")
    ax.set_ylabel("val loss (nats/char)")
    steps = sorted({r["steps"] for r in rows})
    each = f"{steps[0]} steps each" if len(steps) == 1 else "steps differ!"
    ax.set_title(f"The loss ladder (same recipe, {each})")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    plt.tight_layout()
