"""What to train and how: ``TrainConfig`` (it holds the model's ``GPTConfig``) and the recipes.

- ``default_train_config``: the CPU recipe measured in benchmarks/ (tiny in quick mode);
- ``gpu_train_config``: the lecture-sized model for a GPU; ``recipe_for_device`` picks one;
- ``with_overrides``: change TrainConfig and GPTConfig fields (``n_layer=2``) in one call.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch

from shared.engine.config import quick_mode
from shared.model import GPTConfig

_TORCH_DEFAULT_THREADS = torch.get_num_threads()  # before anyone changes it
MODEL_FIELDS = tuple(f.name for f in fields(GPTConfig) if f.name != "vocab_size")


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
    num_threads: int | None = None  # CPU threads; None: the fastest, measured (engine.threads)
    compile: bool = False  # torch.compile the model: slower start, faster steps (mostly on GPU)
    muon_lr: float = 0.02  # Muon's peak rate, modern recipe only (shared.optimizers)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """From ``asdict(config)`` as saved in a checkpoint (older flat dicts load too)."""
        names = {f.name for f in fields(cls)} - {"model"}
        model = dict(values.get("model") or {k: values[k] for k in MODEL_FIELDS if k in values})
        base = _modern_model() if "rope_base" in model else _recipe_model()
        return cls(
            model=replace(base, **model),
            **{k: v for k, v in values.items() if k in names},
        )


def default_num_threads() -> int:
    """PyTorch's own choice: one thread per physical core.

    Measured on an idle 2-core machine: 2 threads train ~1.6-1.9x faster than 1 (13-14k vs
    7-9k tokens/s); on a busy one, 1 thread can be 10x faster. So ``train()`` no longer uses
    this: it times the first steps at each count (``shared.engine.threads``). See benchmarks/RESULTS.md.
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


def recipe_by_name(name: str | None, device: str, /, **overrides) -> tuple[str, TrainConfig]:
    """``(name, config)`` for ``train --recipe NAME`` and ``run``: the modern recipe on the CPU
    unless ``name`` is "classic" (it beat the classic one at equal wall time on 2 cores,
    benchmarks/RESULTS.md and lesson 10); the classic recipes (``recipe_for_device``: the CPU or
    the GPU one) otherwise: the modern one was tuned for a CPU, not for a GPU."""
    if name == "modern" or (name is None and device == "cpu"):
        return "modern", modern_train_config(**overrides)
    return recipe_for_device(device, **overrides)


def recipe_tokenizer(name: str) -> str:
    """The tokens a fresh run of recipe ``name`` reads when ``--tokenizer`` is not given: byte-level
    BPE with 1,024 tokens (lesson 09) for the modern recipe, characters for the classic ones.
    BPE beat characters at equal wall time on 2 idle cores, at 4 and 10 minutes (issue 32,
    benchmarks/RESULTS.md "The default at 4 and 10 minutes"). Quick mode keeps characters: its
    runs last seconds, less than learning the merges takes."""
    return "bpe" if name == "modern" and not quick_mode() else "char"


def describe(config: TrainConfig) -> str:
    """One line: the model's size and the batch, for the ``recipe:`` line the CLI prints."""
    m = config.model
    muon = f", Muon {config.muon_lr:g}" if hasattr(m, "rope_base") else ""  # the modern recipe
    return (
        f"{m.n_layer} layers, {m.n_head} heads, {m.n_embd} channels, block {m.block_size}, "
        f"batch {config.batch_size}, lr {config.learning_rate:g}{muon}"
    )


def with_overrides(config: TrainConfig, **overrides) -> TrainConfig:
    """A copy of ``config`` with TrainConfig and GPTConfig fields (``n_layer=2``) changed."""
    model_overrides = {k: overrides.pop(k) for k in MODEL_FIELDS if k in overrides}
    return replace(config, model=replace(config.model, **model_overrides), **overrides)


def _modern_model():
    from shared.modern import ModernConfig

    return ModernConfig(block_size=128, n_layer=4, n_head=4, n_embd=128)


def modern_train_config(**overrides) -> TrainConfig:
    """The modern recipe (lesson 10, ``--recipe modern``): ``shared.modern.ModernGPT`` trained
    with Muon + AdamW (``shared.optimizers``), tuned with fixed-step runs on 2 CPU cores
    (benchmarks/RESULTS.md). Tiny in quick mode."""
    # Weight decay 0.1 on Muon's matrices: BPE tokens are read ~10 times in 10 minutes, and
    # without it the model overfits (benchmarks/RESULTS.md, "The default at 4 and 10 minutes").
    config = TrainConfig(
        model=_modern_model(), batch_size=32, learning_rate=1e-2, min_lr=1e-3, warmup_iters=50,
        max_iters=5000, weight_decay=0.1, muon_lr=0.02,
    )  # fmt: skip
    if quick_mode():
        config = replace(
            config, model=replace(config.model, block_size=64, n_layer=2, n_head=2, n_embd=64),
            batch_size=16, warmup_iters=20, max_iters=150, time_budget=15.0, eval_interval=50,
            eval_iters=5,
        )  # fmt: skip
    return with_overrides(config, **overrides)
