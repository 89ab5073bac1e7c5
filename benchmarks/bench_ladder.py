"""How long each rung of the loss ladder (shared/lesson_tools/ladder.py) takes to train, per rung.

    python benchmarks/bench_ladder.py              # 200 steps per rung, scaled to the full budget
    python benchmarks/bench_ladder.py --steps 2000 # the full budget itself (prints the val losses)

Timed in CPU seconds of this process on ONE thread (``time.process_time``), so other jobs on the
machine skew the numbers less than wall-clock time would; two threads on an idle 2-core CPU are
up to ~1.6-1.9x faster (benchmarks/RESULTS.md). The ladder file is written to a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from shared.data import load_corpus
from shared.lesson_tools import ladder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200, help="training steps per rung")
    args = p.parse_args()
    torch.set_num_threads(1)
    corpus = load_corpus()
    total = 0.0
    print(f"{'rung':<26} {'params':>8} {'val loss':>8} {'CPU s':>7} {'CPU s / full budget':>20}")
    with tempfile.TemporaryDirectory() as folder:
        for name in ladder.RUNGS:
            model = ladder.rung_model(name, corpus.vocab_size)
            start = time.process_time()
            row = ladder.train_rung(name, model, corpus, args.steps, Path(folder) / "ladder.json")
            seconds = time.process_time() - start
            full = seconds * ladder.FULL_STEPS / max(1, args.steps)
            total += full
            print(f"{name:<26} {row['params']:>8,} {row['val_loss']:>8.3f} {seconds:>7.1f} "
                  f"{full:>20.0f}")  # fmt: skip
    print(f"whole ladder at {ladder.FULL_STEPS} steps per rung: about {total:.0f} CPU s (1 thread)")


if __name__ == "__main__":
    main()
