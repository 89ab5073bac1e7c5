"""The bookkeeping of one ``train()`` call, so that ``shared.train.train`` reads as the loop it is.

``TrainRun`` owns what happens around the steps:

- ``begin``: the batch stream, the history, and ``--resume`` (model, optimizer, history and
  random streams restored from the checkpoint, after checking it fits);
- ``steps``: the progress report, the thread probe (``shared.engine.threads``) and Ctrl-C, for the
  length of the loop; a Ctrl-C ends the loop there, and ``finish`` saves;
- ``stop``: time budget, Ctrl-C or a diverged loss, agreed by every rank (``shared.engine.distributed``);
- ``evaluated`` / ``save``: the losses logged, guarded (``shared.engine.train_guards``: never save
  broken weights, never cut a save in half) and checkpointed;
- ``finish``: leave the process group and sum the run up (``shared.engine.train_report``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from shared.bpe_corpus import bits_per_char
from shared.engine import distributed
from shared.engine.checkpoint import (
    describe_file,
    keep_aside,
    read_checkpoint,
    restore_training_state,
)
from shared.engine.threads import tuner_for
from shared.engine.train_config import TrainConfig
from shared.engine.train_guards import (
    check_resumable,
    save_safely,
    stop_if_diverged,
    stop_reason,
    weights_finite,
)
from shared.engine.train_report import TrainReport


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


class TrainRun:
    """One run of ``config`` on ``corpus`` as ``rank``: checkpoints go to ``out`` (if given)
    through ``write`` (``shared.engine.checkpoint.save_checkpoint``), with ``source`` saying which
    model it is; ``progress`` shows the run (rank 0 only)."""

    def __init__(self, corpus, config, rank, out, progress: bool, source: str, write):
        self.corpus, self.config, self.rank, self.write = corpus, config, rank, write
        self.out = Path(out) if out else None
        self.progress, self.source = progress and rank.is_main, source
        self.saved_step = None  # the step of the last good checkpoint at `out`, if any
        self.stopped = "max_iters"

    def begin(self, model, optimizer, resume: bool) -> tuple[int, torch.Generator]:
        """The step to start from and the batch stream: fresh, or restored from ``out``."""
        config, out = self.config, self.out
        self.model, self.optimizer = model, optimizer
        seed = distributed.batch_seed(config.seed, self.rank.rank)
        self.batch_gen = torch.Generator().manual_seed(seed)
        self.history = {
            "step": [],
            "train": [],
            "val": [],
            "elapsed": [],
            "lr": [],
            "iter_loss": [],
        }
        self.step, self.elapsed_before = 0, 0.0
        if resume and out and out.exists():
            saved = read_checkpoint(out)  # validated: a damaged file is one clear error
            check_resumable(saved, out, self.corpus.tokenizer, model.config)
            self.history = restore_training_state(saved, out, model, optimizer, self.batch_gen)
            self.step, self.elapsed_before = int(saved["step"]), float(saved.get("elapsed", 0.0))
            self.saved_step = self.step
        elif resume and out and self.progress:
            print(f"nothing to resume at {out}; starting a fresh run")
        elif out is not None and out.is_file() and self.rank.is_main:
            keep_earlier_model(out)
        return self.step, self.batch_gen

    @contextmanager
    def steps(self):
        """Around the loop: the report (a bar, or lines in a log), the thread tuner it yields
        (timed on the first steps, which train too), and Ctrl-C, which ends the loop here."""
        per_token = (getattr(self.corpus, "chars_per_token", None) or {}).get("val")
        self.report = TrainReport(
            self.config, self.step, self.elapsed_before, self.progress, chars_per_token=per_token
        )
        tuner = tuner_for(
            self.rank.device, self.config.num_threads, self.rank.world_size, self.report.chose
        )
        self.report.start(self.rank.device, self.model, tuner)
        interrupt = self.interrupt = distributed.InterruptFlag(self.rank).install()
        try:
            yield tuner
        except KeyboardInterrupt:
            self.stopped = "interrupted"  # finish() saves the checkpoint
        finally:
            self.report.close()
            interrupt.restore()

    def stop(self, step: int, elapsed: float, loss: float) -> tuple[bool, float]:
        """Whether every rank stops now (the most serious reason any rank has; a diverged loss
        raises on all of them together), and the clock they agree on (the slowest rank's)."""
        reason = stop_reason(self.config, elapsed, self.interrupt.requested, loss)
        reason, elapsed = distributed.agree(reason, elapsed, self.rank)
        if reason == "diverged":  # every rank raises together: none is left waiting
            self.diverged(float("nan"), "the loss", step)
        if reason:
            self.stopped = reason
        return bool(reason), elapsed

    def stepped(self, step: int, loss: float, lr: float, elapsed: float) -> None:
        self.history["iter_loss"].append(loss)
        self.history["lr"].append(lr)
        self.report.update(step, loss, lr, elapsed)

    def diverged(self, value: float, what: str, step: int) -> None:
        stop_if_diverged(value, what, step, self.config, self.out, self.saved_step)

    def evaluated(self, step: int, elapsed: float, losses: dict, final: bool = False) -> None:
        """Log the losses of an evaluation at ``step`` (once per step), then save."""
        if not self.rank.enabled:  # under torchrun the agreed stop handles it on every rank
            self.diverged(losses["val"], "the validation loss", step)
        history = self.history
        if not history["step"] or history["step"][-1] != step:
            for key, value in (("step", step), ("elapsed", elapsed), *losses.items()):
                history[key].append(value)
            unit = "nats/token" if self.report.chars_per_token else "nats/char"
            self.report.write(
                f"step {step:5d}: train {losses['train']:.4f}, val {losses['val']:.4f} {unit} "
                f"({bits_per_char(losses['val'], self.corpus):.3f} bits/char) ({elapsed:.0f}s)"
            )
        self.save(step, elapsed, final)

    def save(self, step: int, elapsed: float, final: bool = False) -> None:
        """A checkpoint at ``out`` (rank 0), unless a weight is not finite: then never overwrite
        a good checkpoint. Mid-run under torchrun, the next step's loss is not finite on every
        rank and the agreed stop raises."""
        if self.out is None or not self.rank.is_main:
            return
        if not weights_finite(self.model):
            if final or not self.rank.enabled:
                self.diverged(float("nan"), "a weight", step)
            return
        rng = {"batch": self.batch_gen.get_state(), "torch": torch.get_rng_state()}

        def save_to(path):
            self.write(
                path, model=self.model, tokenizer=self.corpus.tokenizer,
                train_config=asdict(self.config), optimizer=self.optimizer, step=step,
                history=self.history, elapsed=elapsed, rng=rng, source=self.source,
            )  # fmt: skip

        self.out = save_safely(save_to, self.out, final)
        self.saved_step = step

    def finish(self, step: int, elapsed: float) -> TrainResult:
        """After a Ctrl-C, save (quick: no eval, so Ctrl-C returns at once); leave the process
        group; the result, with the report's summary."""
        if self.stopped == "interrupted":
            self.save(step, elapsed, final=True)
            if self.progress:
                where = f"; checkpoint saved to {self.out} (--resume continues)" if self.out else ""
                print(f"interrupted at step {step}{where}")
        distributed.teardown(self.rank)
        val = self.history["val"][-1] if self.history["val"] else None
        summary = self.report.finish(step, elapsed, self.stopped, val)
        threads = torch.get_num_threads() if self.rank.device == "cpu" else None
        return TrainResult(
            self.model, self.corpus.tokenizer, self.config, self.history, step, elapsed,
            self.stopped, self.out, summary, threads,
        )  # fmt: skip


def keep_earlier_model(out: Path) -> Path:
    """A new run (not ``resume``) never replaces the model at ``out``: it moves to a dated name
    next to it first (``shared.engine.checkpoint.keep_aside``), and one line says where."""
    what = describe_file(out)
    kept = keep_aside(out)
    print(f"{out} held an earlier model ({what}); kept it as {kept} (this run writes {out.name})")
    return kept
