"""Recipe search at equal CPU time (issue 32): candidates of the modern recipe, side by side.

    python benchmarks/bench_recipe.py --budget 150 base bpe1024:vocab=1024 bpe512:vocab=512
    python benchmarks/bench_recipe.py --budget 150 ctx256:block_size=256 wide:n_embd=192
    python benchmarks/bench_recipe.py --budget 150 wsd:schedule=wsd,cooldown=0.3 --parallel 2
    python benchmarks/bench_recipe.py --speed base bpe1024:vocab=1024      # tokens/s, 1 vs 2 threads
    python benchmarks/bench_recipe.py --speed base:compile=1              # torch.compile on the CPU

A candidate is ``label[:key=value,...]`` on top of ``modern_train_config()`` (the CPU default):
any TrainConfig or ModernConfig field (``n_embd=192``, ``muon_lr=0.03``, ``batch_size=64``), plus
``vocab=N`` (byte-level BPE with N tokens, lesson 09; 0 = characters), ``schedule=wsd`` with
``cooldown=F`` (warmup, a flat rate, then a linear decay over the last fraction F of the budget,
instead of the cosine) and ``evals=K`` (the periodic evaluations, off by default, every K steps).

Each candidate trains in a fresh 1-thread process on a CPU-clock budget (``bench_train.
use_cpu_clock``: CPU seconds of that process ~ wall seconds on an idle core, whatever else runs),
with no evaluation inside the budget unless ``evals`` says so. Then it is scored on the WHOLE
validation split: total nats over the split / characters predicted, for characters and BPE alike
(a BPE model's windows are ``block_size`` tokens, ~2-2.6x more characters of context). Printed:
steps, characters read, nats and bits per character, tokens/s, model FLOPs per token, achieved
FLOP/s against a matmul peak measured in the same process, and the load average at start/end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's shared/, then bench_train
import bench_train  # noqa: E402  (use_cpu_clock)

import shared.train  # noqa: E402
from shared.bpe_corpus import load_bpe_corpus, text_bits_per_char  # noqa: E402
from shared.compress import loss_on_text  # noqa: E402
from shared.data import load_corpus  # noqa: E402
from shared.engine.train_config import TrainConfig, modern_train_config, with_overrides  # noqa: E402
from shared.modern import ModernConfig  # noqa: E402
from shared.train import warmup_cosine_lr  # noqa: E402

EXTRA_KEYS = {"vocab": int, "schedule": str, "cooldown": float, "evals": int, "compile": int}


def load() -> float:
    return os.getloadavg()[0]


def parse_candidate(spec: str) -> tuple[str, dict]:
    """``"wide:n_embd=192,muon_lr=0.03"`` -> ``("wide", {"n_embd": 192, "muon_lr": 0.03})``."""
    label, _, sets = spec.partition(":")
    kinds = {f.name: f.type for f in (*fields(TrainConfig), *fields(ModernConfig))}
    values = {}
    for item in filter(None, sets.split(",")):
        key, sep, text = item.partition("=")
        kind = EXTRA_KEYS.get(key) or {"int": int, "float": float, "str": str}.get(
            str(kinds.get(key))
        )
        if not sep or kind is None:
            raise SystemExit(f"error: {item!r} in {spec!r} is not key=value with a known key "
                             f"(TrainConfig/ModernConfig fields or {', '.join(EXTRA_KEYS)})")  # fmt: skip
        values[key] = kind(text)
    return label, values


def flops_per_token(model, config: TrainConfig) -> dict:
    """Training FLOPs per token = 6 N + 12 L T C (PaLM's estimate, as nanoGPT's estimate_mfu):
    N counts the weights of every matmul (all Linear layers, the untied lm_head included; the
    embedding lookup is not a matmul), 12 L T C the attention scores and their weighted sum
    (2 x 2 T C per layer forward, x 3 with the backward, the full T x T square)."""
    n_matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    m = config.model
    attention = 12 * m.n_layer * m.block_size * m.n_embd
    return {"n_matmul": n_matmul, "per_token": 6 * n_matmul + attention, "attention": attention}


def matmul_peak(size: int = 1024, reps: int = 10) -> float:
    """fp32 FLOP/s of a large torch.matmul on this process's threads, in CPU time (best of 3)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm up
    best = 0.0
    for _ in range(3):
        start = time.process_time()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * size**3 * reps / (time.process_time() - start))
    return best


def wsd_lr(cooldown: float):
    """Warmup (steps), a flat peak, then linear to min_lr over the last ``cooldown`` of the
    clock budget: replaces shared.train.get_lr in this process."""

    def get_lr(step: int, config: TrainConfig, elapsed: float = 0.0) -> float:
        if step < config.warmup_iters:
            return config.learning_rate * (step + 1) / config.warmup_iters
        left = 1.0 - elapsed / config.time_budget  # fraction of the budget still to run
        frac = min(1.0, max(0.0, left / cooldown))
        return config.min_lr + frac * (config.learning_rate - config.min_lr)

    return get_lr


def build(values: dict, budget: float):
    """(config, corpus) for one candidate; BPE corpora come from lesson 09's cached merges."""
    values = dict(values)
    vocab = values.pop("vocab", 0)
    schedule, cooldown = values.pop("schedule", "cosine"), values.pop("cooldown", 0.3)
    evals, compiled = values.pop("evals", 0), values.pop("compile", 0)
    corpus = load_bpe_corpus(vocab) if vocab else load_corpus()
    config = with_overrides(modern_train_config(), **values)
    config = replace(
        config, time_budget=budget, max_iters=10**7, eval_interval=evals or 10**9,
        eval_iters=20 if evals else 1, num_threads=1, device="cpu", compile=bool(compiled),
    )  # fmt: skip
    if schedule == "wsd":
        shared.train.get_lr = wsd_lr(cooldown)
    assert warmup_cosine_lr  # the default schedule is shared.train's own
    return config, corpus


def whole_split(model, corpus) -> tuple[float, int]:
    """(nats per character, characters predicted) on every character of the validation text."""
    if not hasattr(corpus, "chars_per_token"):
        return loss_on_text(model, corpus.val_data), len(corpus.val_data) - 1
    ids, decode = corpus.val_data, corpus.tokenizer.decode
    n_chars = len(decode(ids)) - len(decode(ids[:1]))  # the first token is given, not guessed
    return text_bits_per_char(model, ids, n_chars) * math.log(2), n_chars


def worker(values: dict, budget: float) -> dict:
    torch.set_num_threads(1)
    bench_train.use_cpu_clock()
    load_start, peak = load(), matmul_peak()
    config, corpus = build(values, budget)
    result = shared.train.train(corpus, config, out=None, progress=False)
    eval_start = time.process_time()
    nats, n_chars = whole_split(result.model, corpus)
    eval_s = time.process_time() - eval_start
    peak = max(peak, matmul_peak())
    tokens = result.step * config.batch_size * config.model.block_size
    per_char = getattr(corpus, "chars_per_token", {}).get("train", 1.0)
    flops = flops_per_token(result.model, config)
    tok_s = tokens / result.elapsed
    return {
        "values": values, "config": asdict(config), "steps": result.step,
        "cpu_s": result.elapsed, "tokens": tokens, "chars_read": tokens * per_char,
        "nats": nats, "bits": nats / math.log(2), "val_chars": n_chars, "tok_s": tok_s,
        "flops_per_token": flops, "flop_s": flops["per_token"] * tok_s, "peak_flop_s": peak,
        "eval_cpu_s": eval_s, "load_start": load_start, "load_end": load(),
    }  # fmt: skip


def row(label: str, r: dict) -> str:
    m = r["config"]["model"]
    shape = f"{m['n_layer']}x{m['n_embd']}, T {m['block_size']}, B {r['config']['batch_size']}"
    return (
        f"{label:14s} {r['nats']:.4f} nats/char {r['bits']:.4f} bits/char | {r['steps']:5d} steps "
        f"{r['chars_read'] / 1e6:5.2f}M chars {r['tok_s']:7,.0f} tok/s | "
        f"{r['flops_per_token']['per_token'] / 1e6:.2f} MFLOP/tok {r['flop_s'] / 1e9:5.2f} GFLOP/s "
        f"= {r['flop_s'] / r['peak_flop_s']:.0%} of {r['peak_flop_s'] / 1e9:.0f} | {shape} | "
        f"{r['cpu_s']:.0f} CPU s, load {r['load_start']:.2f} -> {r['load_end']:.2f}"
    )


def run_all(specs: list[str], budget: float, parallel: int, out: Path | None) -> None:
    """Every candidate in its own process; a second one starts only while the load is < 3."""
    pending, running = list(specs), []
    while pending or running:
        while pending and len(running) < parallel and (not running or load() < 3):
            spec = pending.pop(0)
            cmd = [sys.executable, __file__, "--worker", spec, "--budget", str(budget)]
            running.append((spec, subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)))
        time.sleep(2)
        for spec, proc in [item for item in running if item[1].poll() is not None]:
            running.remove((spec, proc))
            lines = proc.stdout.read().strip().splitlines()
            if proc.returncode or not lines:
                print(f"{spec}: failed (exit {proc.returncode})", flush=True)
                continue
            r = json.loads(lines[-1])
            r["spec"], r["parallel"] = spec, parallel
            print(row(parse_candidate(spec)[0], r), flush=True)
            if out:
                with out.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(r) + "\n")


def speed_worker(values: dict, threads: int, steps: int = 12) -> dict:
    """Training tokens/s (wall and CPU clock) over ``steps`` steps after 3 warm-up steps; with
    ``compile=1`` the warm-up includes torch.compile's compilation, timed on its own."""
    torch.set_num_threads(threads)
    config, corpus = build(values, budget=1.0)
    torch.manual_seed(0)
    model = shared.train.new_model(replace(config.model, vocab_size=corpus.vocab_size))
    optimizer = shared.train.make_optimizer(model, config)
    stepper = torch.compile(model) if config.compile else model
    gen = torch.Generator().manual_seed(0)
    T, B = config.model.block_size, config.batch_size
    marks = []
    for i in range(steps + 3):
        if i in (0, 1, 3):
            marks.append((time.perf_counter(), time.process_time()))
        xb, yb = shared.train.get_batch(corpus.train_data, T, B, "cpu", gen)
        shared.train.train_step(stepper, optimizer, xb, yb, config.grad_clip)
    end = (time.perf_counter(), time.process_time())
    return {"threads": threads, "first_step_s": marks[1][0] - marks[0][0],
            "tok_s_wall": steps * B * T / (end[0] - marks[2][0]),
            "tok_s_cpu": steps * B * T / (end[1] - marks[2][1]), "load": load()}  # fmt: skip


def run_speed(specs: list[str]) -> None:
    """Each candidate at 1 and 2 threads, interleaved (1, 2, 1, 2), one process at a time."""
    for spec in specs:
        for threads in (1, 2, 1, 2):
            cmd = [sys.executable, __file__, "--speed-worker", spec, "--threads", str(threads)]
            r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True)
                           .stdout.strip().splitlines()[-1])  # fmt: skip
            print(f"{spec:30s} {threads} thread(s): {r['tok_s_wall']:7,.0f} tok/s wall, "
                  f"{r['tok_s_cpu']:7,.0f} per CPU s, first step {r['first_step_s']:.1f} s, "
                  f"load {r['load']:.2f}", flush=True)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("candidates", nargs="+", help="label[:key=value,...], e.g. wide:n_embd=192")
    p.add_argument("--budget", type=float, default=150.0, help="CPU seconds of training each")
    p.add_argument("--parallel", type=int, default=1, help="candidates at once (load < 3)")
    p.add_argument("--json", type=Path, help="append every result to this JSON-lines file")
    p.add_argument("--speed", action="store_true", help="tokens/s at 1 and 2 threads only")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--speed-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    for spec in args.candidates:
        parse_candidate(spec)  # a bad spec stops here, before anything runs
    if args.worker or args.speed_worker:
        values = parse_candidate(args.candidates[0])[1]
        r = worker(values, args.budget) if args.worker else speed_worker(values, args.threads)
        print(json.dumps(r))
    elif args.speed:
        run_speed(args.candidates)
    else:
        print(f"{len(args.candidates)} candidates, {args.budget:.0f} CPU s each, 1 thread, "
              f"load {load():.2f}", flush=True)  # fmt: skip
        run_all(args.candidates, args.budget, args.parallel, args.json)


if __name__ == "__main__":
    main()
