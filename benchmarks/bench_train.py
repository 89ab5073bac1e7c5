"""Training benchmarks on CPU: val loss vs wall time, tokens/s, peak memory.

    python benchmarks/bench_train.py --recipe nanogpt               # the reference point
    python benchmarks/bench_train.py --recipe default --time-budget 160
    python benchmarks/bench_train.py --recipe default --set n_embd=192 --set batch_size=16
    python benchmarks/bench_train.py --speed                         # tokens/s at nanoGPT's model
    python benchmarks/bench_train.py --interleave nanogpt default   # A/B/A/B under the same load

Each recipe runs in a fresh process so its peak RSS is its own. Numbers depend on the machine
and on what else runs on it: compare candidates interleaved, on the same machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import types
from dataclasses import asdict, fields, replace

import torch

import shared.train
from shared.data import get_batch, load_corpus
from shared.engine.train_config import TrainConfig, default_train_config, with_overrides
from shared.model import GPT, GPTConfig
from shared.train import make_optimizer, train, train_step

# nanoGPT's published CPU recipe (README "I only have a macbook"), same text and 90/10 split.
NANOGPT = dict(
    n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, max_iters=2000,
    learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, dropout=0.0, eval_interval=250,
    eval_iters=20, time_budget=None,
)  # fmt: skip


def recipe(name: str, sets: list[str], time_budget: float | None) -> TrainConfig:
    config = (
        default_train_config() if name == "default" else with_overrides(TrainConfig(), **NANOGPT)
    )
    kinds = {f.name: f.type for f in (*fields(TrainConfig), *fields(GPTConfig))}
    for item in sets:
        key, value = item.split("=", 1)
        kind = {"int": int, "float": float}.get(str(kinds[key]).split(" ")[0], float)
        config = with_overrides(config, **{key: None if value == "none" else kind(value)})
    if time_budget is not None:
        config = replace(config, time_budget=time_budget)
    return replace(config, device="cpu")


def use_cpu_clock() -> None:
    """Budget and report *CPU* seconds of this (1-thread) process instead of wall seconds.

    On a machine shared with other jobs, wall time measures the neighbours; the CPU time of a
    1-thread run is close to the wall time the same run takes on an idle core.
    """
    shared.train.time = types.SimpleNamespace(perf_counter=time.process_time)


def run_recipe(config: TrainConfig) -> dict:
    corpus = load_corpus()
    result = train(corpus, config, out=None, progress=False)
    h = result.history
    tokens = result.step * config.batch_size * config.model.block_size
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "config": asdict(config),
        "steps": result.step,
        "elapsed": result.elapsed,
        "tokens_per_s": tokens / result.elapsed,
        "curve": list(zip(h["step"], h["elapsed"], h["train"], h["val"], strict=False)),
        "val": h["val"][-1],
        "peak_rss_mb": peak_mb,
        "threads": torch.get_num_threads(),
    }


def speed(threads: int, iters: int = 40) -> float:
    """Training tokens/s at nanoGPT's model (4/4/128, block 64, batch 12), no eval."""
    torch.set_num_threads(threads)
    corpus = load_corpus()
    config = with_overrides(TrainConfig(), **NANOGPT)
    torch.manual_seed(0)
    model = GPT(replace(config.model, vocab_size=corpus.vocab_size))
    optimizer = make_optimizer(model, config)
    gen = torch.Generator().manual_seed(0)
    for i in range(iters + 5):
        if i == 5:
            start = time.perf_counter()
        xb, yb = get_batch(
            corpus.train_data, config.model.block_size, config.batch_size, "cpu", gen
        )
        train_step(model, optimizer, xb, yb, config.grad_clip)
    return iters * config.batch_size * config.model.block_size / (time.perf_counter() - start)


def report(name: str, r: dict) -> None:
    print(f"== {name}: {r['steps']} steps in {r['elapsed']:.0f} s, {r['tokens_per_s']:,.0f} tok/s, "
          f"val {r['val']:.4f}, peak RSS {r['peak_rss_mb']:.0f} MiB, {r['threads']} threads")  # fmt: skip
    for step, elapsed, tr, va in r["curve"]:
        print(f"   step {step:5d}  {elapsed:6.1f} s  train {tr:.4f}  val {va:.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="default", choices=["default", "nanogpt"])
    p.add_argument("--set", action="append", default=[], help="override, e.g. n_embd=192")
    p.add_argument("--time-budget", type=float)
    p.add_argument("--speed", action="store_true")
    p.add_argument(
        "--interleave", nargs="+", help="recipes (name or name:key=v,key=v), run A B A B"
    )
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--json", action="store_true", help="(internal) print one JSON line")
    p.add_argument("--cpu-clock", action="store_true", help="budget CPU seconds (1 thread)")
    args = p.parse_args()
    if args.speed:
        for threads in (1, 2, 1, 2):  # interleaved: the machine's load changes over time
            print(
                f"threads {threads}: {speed(threads):,.0f} training tokens/s (4/4/128, T=64, B=12)"
            )
        return
    if args.interleave:
        for _ in range(args.rounds):
            for spec in args.interleave:
                name, _, sets = spec.partition(":")
                cmd = [sys.executable, __file__, "--recipe", name, "--json"]
                for item in filter(None, sets.split(",")):
                    cmd += ["--set", item]
                if args.time_budget:
                    cmd += ["--time-budget", str(args.time_budget)]
                if args.cpu_clock:
                    cmd += ["--cpu-clock"]
                line = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                report(spec, json.loads(line.strip().splitlines()[-1]))
                sys.stdout.flush()
        return
    if args.cpu_clock:
        use_cpu_clock()
        args.set.append("num_threads=1")
    r = run_recipe(recipe(args.recipe, args.set, args.time_budget))
    print(json.dumps(r)) if args.json else report(args.recipe, r)


if __name__ == "__main__":
    main()
