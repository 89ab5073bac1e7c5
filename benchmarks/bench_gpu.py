"""GPU benchmark: the GPU recipe's tokens/s and its val loss vs wall time.

    python benchmarks/bench_gpu.py --time-budget 120 --out results/        # bf16, eager
    python benchmarks/bench_gpu.py --time-budget 60 --compile --out results/
    python benchmarks/bench_gpu.py --device cpu --tiny --time-budget 5     # dry run on a laptop

Two measurements: ``speed`` times a fixed number of optimizer steps after a warm-up (tokens/s
of training alone, GPU synchronised), and ``curve`` trains the recipe for ``--time-budget``
seconds through ``shared.train.train`` (evaluations included) and records val loss vs time.
Writes ``bench_gpu[_compile].json`` and ``.md`` into ``--out``. ``benchmarks/gpu_check.sh``
runs it on a lent GPU.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from shared.data import get_batch, load_corpus
from shared.engine.config import pick_device
from shared.engine.train_config import describe, gpu_train_config
from shared.model import GPT
from shared.train import autocast_for, make_optimizer, train, train_step

TINY = dict(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=8, eval_interval=20,
            eval_iters=2, warmup_iters=5)  # fmt: skip


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def speed(corpus, config, device: str, steps: int, warmup: int) -> dict:
    """Training tokens/s over ``steps`` steps, after ``warmup`` steps (compilation, cuDNN autotune)."""
    torch.manual_seed(config.seed)
    model = GPT(replace(config.model, vocab_size=corpus.vocab_size)).to(device)
    optimizer = make_optimizer(model, config)
    stepped = torch.compile(model) if config.compile else model
    autocast, gen = autocast_for(device), torch.Generator().manual_seed(0)

    def run(n: int) -> float:
        for _ in range(n):
            xb, yb = get_batch(corpus.train_data, config.model.block_size, config.batch_size,
                               device, gen)  # fmt: skip
            loss = train_step(stepped, optimizer, xb, yb, config.grad_clip, autocast)
        return loss

    start = time.perf_counter()
    run(warmup)
    sync(device)
    warm_s = time.perf_counter() - start
    start = time.perf_counter()
    run(steps)
    sync(device)
    seconds = time.perf_counter() - start
    tokens = steps * config.batch_size * config.model.block_size
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    return {"steps": steps, "seconds": seconds, "tokens_per_s": tokens / seconds,
            "ms_per_step": 1000 * seconds / steps, "warmup_s": warm_s, "peak_mib": peak}  # fmt: skip


def curve(corpus, config) -> dict:
    """Train the recipe for its time budget: val loss vs seconds, overall tokens/s."""
    result = train(corpus, config, out=None, progress=False)
    h = result.history
    tokens = result.step * config.batch_size * config.model.block_size
    return {
        "steps": result.step,
        "elapsed": result.elapsed,
        "stopped": result.stopped,
        "tokens_per_s_with_evals": tokens / result.elapsed,
        "curve": [
            {"step": s, "seconds": round(t, 1), "train": round(tr, 4), "val": round(v, 4)}
            for s, t, tr, v in zip(h["step"], h["elapsed"], h["train"], h["val"], strict=False)
        ],
    }


def markdown(r: dict) -> str:
    s, c = r["speed"], r["curve"]
    lines = [
        f"### {r['name']}: {r['device_name']}, torch {r['torch']}",
        "",
        f"Recipe: {r['recipe']}; bf16 autocast: {r['bf16']}; compile: {r['compile']}.",
        "",
        f"- speed: {s['tokens_per_s']:,.0f} tokens/s ({s['ms_per_step']:.1f} ms/step over "
        f"{s['steps']} steps after {s['warmup_s']:.1f} s of warm-up)"
        + (f", peak GPU memory {s['peak_mib']:,.0f} MiB" if s["peak_mib"] else ""),
        f"- {c['elapsed']:.0f} s of training: {c['steps']} steps, "
        f"{c['tokens_per_s_with_evals']:,.0f} tokens/s counting evaluations, stopped by "
        f"{c['stopped']}",
        "",
        "| step | seconds | train loss | val loss |",
        "|---:|---:|---:|---:|",
        *(f"| {p['step']} | {p['seconds']} | {p['train']} | {p['val']} |" for p in c["curve"]),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--time-budget", type=float, default=120.0)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--speed-steps", type=int, default=50)
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--tiny", action="store_true", help="a tiny model (a CPU dry run)")
    p.add_argument("--out", type=Path, default=Path("."))
    args = p.parse_args()

    device = pick_device(args.device)
    config = gpu_train_config(device=device, compile=args.compile, time_budget=args.time_budget,
                              **(TINY if args.tiny else {}))  # fmt: skip
    name = "bench_gpu" + ("_compile" if args.compile else "") + ("_tiny" if args.tiny else "")
    corpus = load_corpus()
    print(f"{name}: {describe(config)} on {device}", flush=True)
    result = {
        "name": name,
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else device,
        "torch": torch.__version__,
        "bf16": device.startswith("cuda") and torch.cuda.is_bf16_supported(),
        "compile": args.compile,
        "recipe": describe(config),
        "config": asdict(config),
    }
    result["speed"] = speed(corpus, config, device, args.speed_steps, args.warmup_steps)
    print(f"speed: {result['speed']['tokens_per_s']:,.0f} tokens/s", flush=True)
    result["curve"] = curve(corpus, config)
    for point in result["curve"]["curve"]:
        print(f"  {point['seconds']:7.1f} s  step {point['step']:5d}  val {point['val']:.4f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    (args.out / f"{name}.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


if __name__ == "__main__":
    main()
