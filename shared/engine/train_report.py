"""What a training run says: at the start (device, threads, model size), while it runs (a bar
in a terminal, a plain line every ~15 s in a log) and at the end (steps, speed, loss, time, and
why it made fewer steps than its first steps promised, if it did).

``train()`` calls ``TrainReport``; the CLI adds the files written and the next command.
"""

from __future__ import annotations

import math

from shared.engine.progress import Progress, duration
from shared.engine.threads import ThreadChoice, ThreadTuner, candidate_counts
from shared.engine.train_config import TrainConfig

FEW_STEPS = 0.5  # fewer than half the predicted steps: say so and why
# The CPU recipes' 240 s on an idle 2-core machine (benchmarks/RESULTS.md): the classic one
# ~1,500 steps (val ~1.47); the modern one ~720 on its default BPE tokens (val ~1.22) and ~870 on
# characters (val ~1.30; bigger steps than the classic: block 128, Muon; two runs each, issue 32,
# "The default at 4 and 10 minutes"). All write text that reads as Spanish. Far fewer steps: say
# why the text is rougher.
RECIPE_STEPS = 1500
RECIPE_SECONDS = 240.0
MODERN_RECIPE_STEPS = {"bpe": 720, "char": 870}


def recipe_steps(config) -> int | None:
    """The steps a CPU recipe makes in its 240 s on an idle machine; None for other configs."""
    from shared.modern import ModernConfig

    m, batch = config.model, config.batch_size
    if isinstance(m, ModernConfig):
        shape = (m.block_size, m.n_layer, m.n_head, m.n_embd, batch)
        tokens = "bpe" if m.vocab_size == 1024 else "char"  # the default BPE has 1,024 tokens
        return MODERN_RECIPE_STEPS[tokens] if shape == (128, 4, 4, 128, 32) else None
    recipe = TrainConfig()
    return RECIPE_STEPS if (m, batch) == (recipe.model, recipe.batch_size) else None


def model_size(model) -> str:
    params = sum(p.numel() for p in model.parameters())
    return f"{params / 1e6:.2f}M parameters" if params >= 1e5 else f"{params:,} parameters"


class TrainReport:
    """Progress and summary of one ``train()`` call (silent when ``enabled`` is False)."""

    def __init__(
        self, config, step: int, elapsed_before: float, enabled: bool = True, chars_per_token=None
    ):
        self.config, self.enabled, self.tuner = config, enabled, None
        self.chars_per_token = chars_per_token  # of the validation text; None: characters
        self.first_step, self.elapsed_before = step, elapsed_before
        self.step, self.elapsed = step, elapsed_before  # as of the last update()
        self.tokens_per_step = config.batch_size * config.model.block_size
        self.by_time = bool(config.time_budget)
        self.predicted: int | None = None  # steps the measured speed promised for the run
        if self.by_time:
            total, initial = config.time_budget, min(elapsed_before, config.time_budget)
        else:
            total, initial = config.max_iters, step
        unit = "s" if self.by_time else "it"
        self.bar = Progress(total, "training", unit, enabled=enabled, initial=initial)

    def start(self, device: str, model, tuner) -> None:
        """The first line: where, how big, and how the thread count will be chosen."""
        self.tuner = tuner
        if not self.enabled:
            return
        how = ""
        if isinstance(self.tuner, ThreadTuner) and self.tuner.probing:
            counts = ", ".join(map(str, candidate_counts(self.tuner.cores)))
            how = f"; timing the first steps at {counts} threads to keep the fastest"
        elif getattr(self.tuner, "choice", None) is not None:
            how = f"; {self.tuner.choice}"
        self.bar.write(f"device: {device}, model: {model_size(model)}{how}")

    def chose(self, choice: ThreadChoice) -> None:
        """A thread count was chosen (after the probe, or again mid-run): say it, and remember
        how many steps the measured speed promises for the whole run."""
        if self.predicted is None and self.by_time:
            left = max(0.0, self.config.time_budget - self.elapsed)
            more = self.tuner.predicted_steps(left) or 0
            self.predicted = min(self.config.max_iters, self.step + more)
        self.write(str(choice))

    def update(self, step: int, loss: float, lr: float, elapsed: float) -> None:
        self.step, self.elapsed = step, elapsed
        done = min(elapsed, self.config.time_budget) if self.by_time else step
        run_seconds = elapsed - self.elapsed_before
        speed = (step - self.first_step) * self.tokens_per_step / max(run_seconds, 1e-9)
        fields = {
            "step": step,
            "loss": f"{loss:.3f} {'nats/token' if self.chars_per_token else 'nats/char'}",
            "lr": f"{lr:.1e}",
            "tokens/s": f"{speed:,.0f}",
        }
        self.bar.update(done, **fields)

    def write(self, message: str) -> None:
        self.bar.write(message)

    def close(self) -> None:
        self.bar.close()

    def finish(self, step: int, elapsed: float, stopped: str, val_loss: float | None) -> str:
        """``summary(...)``, also shown when the report is enabled."""
        text = self.summary(step, elapsed, stopped, val_loss)
        if self.enabled:
            print(text, flush=True)
        return text

    def summary(self, step: int, elapsed: float, stopped: str, val_loss: float | None) -> str:
        """The end of the run in a line or two; a warning when it made far fewer steps than the
        speed measured at its start promised."""
        steps = step - self.first_step
        seconds = elapsed - self.elapsed_before
        speed = steps * self.tokens_per_step / seconds if seconds > 0 else 0.0
        val = f", final val loss {self.loss_text(val_loss)}" if val_loss is not None else ""
        lines = [
            f"trained {steps:,} steps (step {step:,}) in {duration(seconds)}: "
            f"{speed:,.0f} tokens/s{val}; stopped by {stopped}"
        ]
        warning = self.few_steps_warning(step, stopped) or self.slow_machine_note(
            step, seconds, stopped
        )
        return "\n".join([*lines, warning] if warning else lines)

    def loss_text(self, loss: float) -> str:
        """``1.270 nats/char``; with tokens of several characters, also bits per character."""
        if not self.chars_per_token:
            return f"{loss:.3f} nats/char"
        return f"{loss:.3f} nats/token = {loss / self.chars_per_token / math.log(2):.3f} bits/char"

    def slow_machine_note(self, step: int, seconds: float, stopped: str = "time_budget"):
        """The CPU recipe, stopped by its clock far short of the steps it needs: say so, and
        how long this machine would need. Only when speed is why: not after --max-iters or
        Ctrl-C, nor when a budget shorter than 240 s got the steps an idle machine makes in it."""
        expected = recipe_steps(self.config)
        if expected is None or stopped != "time_budget":
            return None
        idle_steps = expected * min(1.0, self.config.time_budget / RECIPE_SECONDS)
        if step >= 0.6 * idle_steps:
            return None
        if step <= self.first_step:
            return None
        per_step = seconds / (step - self.first_step)
        needed = 60 * math.ceil(expected * per_step / 60)
        return (
            f"note: {step:,} steps; this recipe writes readable Spanish after about "
            f"{expected:,} (its 240 s on an idle 2-core machine), so expect rougher text. "
            f"This computer is slower or busy: close other programs, or give training about "
            f"{needed} s (--time-budget {needed}; time_budget={needed} in Python)"
        )

    def few_steps_warning(self, step: int, stopped: str) -> str | None:
        if stopped != "time_budget" or not self.predicted or step >= FEW_STEPS * self.predicted:
            return None
        return (
            f"note: only {step:,} steps, but the first steps' speed promised about "
            f"{self.predicted:,}: something else was using the CPU during training (another "
            "program, a browser tab, another notebook). Close it and train again, or resume "
            "this run to add the missing steps"
        )
