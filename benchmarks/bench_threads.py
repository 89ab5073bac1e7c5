"""Does the measured thread choice keep up with the best fixed count, on an idle and a busy CPU?

    python benchmarks/bench_threads.py                      # 20 s per run, both loads, 2 rounds
    python benchmarks/bench_threads.py --seconds 30 --load busy --rounds 1

For each load (``idle``: nothing started by us; ``busy``: one competing process spinning on one
core, pinned there when the OS allows, and stopped by itself after the benchmark's time even if
this script dies), trains the default CPU recipe for ``--seconds`` of wall clock with the default
(``num_threads=None``: measured, ``shared.engine.threads``) and with each fixed count 1..usable cores,
interleaved, and prints steps/s. Goal: the default reaches >= 80% of the best fixed count.

The default pays for its probe inside its own budget (its first steps run at every count).
Other programs on the machine are not ours to stop: the load average is printed with each row.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import replace

from shared.data import load_corpus
from shared.engine.threads import usable_cores
from shared.train import default_train_config, train

SPIN = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"


def start_load(seconds: float) -> subprocess.Popen:
    """One process spinning on one core for at most ``seconds`` (it stops itself)."""
    proc = subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=seconds)])
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(proc.pid, {min(os.sched_getaffinity(0))})
        except OSError:
            pass
    return proc


def one_run(corpus, num_threads, seconds: float) -> dict:
    config = default_train_config(device="cpu", num_threads=num_threads, time_budget=seconds)
    config = replace(config, max_iters=10**9, eval_interval=10**9, eval_iters=1)
    result = train(corpus, config, progress=False)
    return {"steps": result.step, "steps_per_s": result.step / result.elapsed,
            "threads_at_end": result.threads}  # fmt: skip


def loadavg() -> str:
    try:
        with open("/proc/loadavg", encoding="utf-8") as handle:
            return " ".join(handle.read().split()[:3])
    except OSError:
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per run (default: 20)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default: 2)")
    parser.add_argument("--load", choices=["idle", "busy", "both"], default="both")
    args = parser.parse_args()
    corpus = load_corpus()
    counts = list(range(1, usable_cores() + 1))
    loads = ["idle", "busy"] if args.load == "both" else [args.load]
    variants = ["default", *counts]
    print(f"usable cores {usable_cores()}, {args.seconds:g} s per run, {args.rounds} rounds")
    print("| load | threads | round | steps | steps/s | threads at end | loadavg |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rates: dict[tuple[str, object], list[float]] = {}
    for load in loads:
        for round_ in range(1, args.rounds + 1):
            for variant in variants:
                spinner = start_load(args.seconds + 30) if load == "busy" else None
                try:
                    time.sleep(0.5 if spinner else 0)  # let the competitor start
                    row = one_run(corpus, None if variant == "default" else variant, args.seconds)
                finally:
                    if spinner:
                        spinner.kill()
                        spinner.wait()
                rates.setdefault((load, variant), []).append(row["steps_per_s"])
                print(f"| {load} | {variant} | {round_} | {row['steps']} | "
                      f"{row['steps_per_s']:.2f} | {row['threads_at_end']} | {loadavg()} |", flush=True)  # fmt: skip
    print("\n| load | default steps/s | best fixed | best steps/s | default / best |")
    print("| --- | --- | --- | --- | --- |")
    for load in loads:
        mean = {v: sum(rates[(load, v)]) / len(rates[(load, v)]) for v in variants}
        best = max(counts, key=lambda n: mean[n])
        print(f"| {load} | {mean['default']:.2f} | {best} | {mean[best]:.2f} | "
              f"{mean['default'] / mean[best]:.0%} |")  # fmt: skip


if __name__ == "__main__":
    main()
