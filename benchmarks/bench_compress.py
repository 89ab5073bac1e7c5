"""Prediction is compression: classic compressors and our recipes on the same validation text.

    python benchmarks/bench_compress.py                                  # everything (~45 min)
    python benchmarks/bench_compress.py --budgets 160 --recipes default modern --threads 1
    python benchmarks/bench_compress.py --no-models                      # compressors only (~80 s)
    python benchmarks/bench_compress.py --no-compressors --no-models --gptz checkpoints/gpt.pt
    python benchmarks/bench_compress.py --no-compressors --steps 300 --recipes modern \
        --set muon_lr=0.04 --threads 1            # fixed steps: the same number under any load

One table, in nats and bits per character of the validation text (the last 10% of the book):

- gzip -9, bzip2 -9, xz -9e (standard library) and PPMd order 12 / 256 MB (``pyppmd``), each
  given the training text first: size(train + val) - size(train) (``shared.compress``), and
  ``zpaq -m5`` (context mixing, the PAQ family) when /usr/bin/zpaq is installed;
- ``--gptz CKPT``: a trained checkpoint as a real compressor (``shared.gptzip``): the file
  ``compress`` writes for the validation text next to the size its cross-entropy predicts,
  with and without ``--adapt``, each decompressed again (round trip checked) and timed;
- each recipe (nanoGPT's published CPU recipe, the default, the modern one) trained for each
  wall-clock budget, then measured on EVERY validation character (consecutive windows of the
  recipe's block size, each character predicted from the start of its window).

The model rows depend on the machine and on what else runs on it: the load average is printed
with every row. Fixed-step comparisons (benchmarks/bench_ladder.py) do not.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import torch

from shared.compress import COMPRESSORS, compressor_bits_per_char, loss_on_text, nats_to_bits
from shared.course.zpaq import ZPAQ_NAME, zpaq_bits_per_char, zpaq_path
from shared.data import load_corpus
from shared.engine.train_config import (
    TrainConfig,
    default_train_config,
    modern_train_config,
    with_overrides,
)
from shared.train import train

NANOGPT = dict(  # nanoGPT's published CPU recipe (as in benchmarks/bench_train.py)
    n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, max_iters=2000,
    learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, dropout=0.0, eval_interval=250,
    eval_iters=20,
)  # fmt: skip
RECIPES = {
    "nanogpt": lambda: with_overrides(TrainConfig(), **NANOGPT),
    "default": default_train_config,
    "modern": modern_train_config,
}


def load() -> str:
    return open("/proc/loadavg", encoding="utf-8").read().split()[0]  # noqa: SIM115


def compressor_rows(corpus) -> list[dict]:
    n_train = len(corpus.train_data)
    train_text, val_text = corpus.text[:n_train], corpus.text[n_train:]
    rows = []
    for name in [*COMPRESSORS, ZPAQ_NAME]:
        if name == ZPAQ_NAME and zpaq_path() is None:
            rows.append({"what": name, "nats": math.nan, "bits": math.nan,
                         "note": "zpaq not installed (apt install zpaq)"})  # fmt: skip
            continue
        start = time.perf_counter()
        if name == ZPAQ_NAME:
            bits = zpaq_bits_per_char(train_text, val_text)
        else:
            bits = compressor_bits_per_char(name, train_text, val_text)
        seconds = time.perf_counter() - start
        rows.append({"what": name, "nats": bits * math.log(2), "bits": bits,
                     "note": f"{seconds:.0f} s to compress, load {load()}"})  # fmt: skip
    return rows


def parse_sets(sets: list[str]) -> dict:
    """["muon_lr=0.04", "block_size=64"] -> {"muon_lr": 0.04, "block_size": 64}."""
    values = {}
    for item in sets:
        key, value = item.split("=", 1)
        values[key] = int(value) if value.lstrip("-").isdigit() else float(value)
    return values


def model_row(corpus, recipe: str, budget: float | None, threads: int | None, steps=None,
              sets=None) -> dict:  # fmt: skip
    """Train ``recipe`` for ``budget`` seconds, or for exactly ``steps`` steps (then the
    schedule decays over those steps and the result does not depend on the machine's load)."""
    config = with_overrides(RECIPES[recipe](), **(sets or {}))
    if steps:
        config = replace(config, time_budget=None, max_iters=steps, eval_interval=10**9)
    else:
        config = replace(config, time_budget=budget, max_iters=max(config.max_iters, 100_000)
                         if recipe != "nanogpt" else config.max_iters)  # fmt: skip
    config = replace(config, num_threads=threads)
    before = load()
    result = train(corpus, config, progress=False)
    nats = loss_on_text(result.model, corpus.val_data)
    window = config.model.block_size
    what = f"{recipe} recipe, " + (f"{steps} steps" if steps else f"{budget:.0f} s")
    what += "".join(f", {key}={value}" for key, value in (sets or {}).items())
    return {"what": what, "nats": nats, "bits": nats_to_bits(nats),
            "note": f"{result.step} steps in {result.elapsed:.0f} s, windows of {window}, "
                    f"{threads or torch.get_num_threads()} thread(s), load {before} -> {load()}"}  # fmt: skip


def gptz_rows(corpus, checkpoint: Path, batch: int, adapt_lrs: list[float]) -> list[dict]:
    """The checkpoint's cross-entropy estimate, then real .gptz files (1 thread), round trip
    checked, with KB/s both ways."""
    from shared.engine.checkpoint import load_checkpoint
    from shared.gptzip import compress_text, decompress_bytes, estimate_bytes

    torch.set_num_threads(1)
    ckpt = load_checkpoint(checkpoint)
    text = corpus.text[len(corpus.train_data) :]
    ids = torch.tensor(ckpt.tokenizer.encode(text))
    nats_per_token = loss_on_text(ckpt.model, ids)
    estimate = estimate_bytes(nats_per_token, len(ids))
    chars, kb = len(text), len(text.encode("utf-8")) / 1000
    rows = [{"what": f"{checkpoint.name}: cross-entropy estimate", "nats": 8 * estimate *
             math.log(2) / chars, "bits": 8 * estimate / chars,
             "note": f"{estimate:,.0f} bytes predicted (loss_on_text), load {load()}"}]  # fmt: skip
    print(
        f"{rows[0]['what']:34s} {rows[0]['nats']:9.3f} {rows[0]['bits']:9.3f}   {rows[0]['note']}"
    )
    for lr in [None, *adapt_lrs]:
        before, start, cpu_start = load(), time.perf_counter(), time.process_time()
        data = compress_text(ckpt.model, ckpt.tokenizer, text, batch=batch, adapt_lr=lr)
        middle, cpu_middle = time.perf_counter(), time.process_time()
        same = decompress_bytes(ckpt.model, ckpt.tokenizer, data) == text
        end, cpu_end = time.perf_counter(), time.process_time()
        bits = 8 * len(data) / chars
        rows.append({"what": f"{checkpoint.name}: .gptz" + (f" --adapt lr {lr:g}" if lr else ""),
                     "nats": bits * math.log(2), "bits": bits,
                     "note": f"{len(data):,} bytes ({len(data) / estimate - 1:+.2%} vs estimate), "
                     f"compress {kb / (middle - start):.1f} KB/s, decompress "
                     f"{kb / (end - middle):.1f} KB/s (per CPU second: {kb / (cpu_middle - cpu_start):.1f} "
                     f"and {kb / (cpu_end - cpu_middle):.1f}), round trip {'ok' if same else 'FAILED'}, "
                     f"batch {batch}, 1 thread, load {before} -> {load()}"})  # fmt: skip
        print(f"{rows[-1]['what']:34s} {bits * math.log(2):9.3f} {bits:9.3f}   {rows[-1]['note']}",
              flush=True)  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budgets", type=float, nargs="+", default=[160, 240, 600])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--threads", type=int, help="torch threads (default: one per core)")
    p.add_argument("--no-models", action="store_true", help="the compressors only")
    p.add_argument("--no-compressors", action="store_true", help="the models only")
    p.add_argument("--steps", type=int, nargs="+", help="fixed step counts instead of --budgets")
    p.add_argument("--set", action="append", default=[], help="a recipe field, e.g. muon_lr=0.04")
    p.add_argument("--json", type=Path, help="append every row to this JSON-lines file")
    p.add_argument("--gptz", type=Path, help="a checkpoint to run as a real compressor")
    p.add_argument("--gptz-batch", type=int, default=64, help="windows coded side by side")
    p.add_argument("--adapt-lr", type=float, nargs="*", default=[1e-3],
                   help="--adapt rates to measure with --gptz")  # fmt: skip
    args = p.parse_args()
    corpus = load_corpus()
    print(f"validation text: {len(corpus.val_data):,} characters; load {load()} at start")
    print(f"{'':34s} {'nats/char':>9s} {'bits/char':>9s}")
    rows = [] if args.no_compressors else compressor_rows(corpus)
    for row in rows:
        print(f"{row['what']:34s} {row['nats']:9.3f} {row['bits']:9.3f}   {row['note']}")
    if not args.no_models:
        runs = [(None, steps) for steps in args.steps] if args.steps else [
            (budget, None) for budget in args.budgets]  # fmt: skip
        for budget, steps in runs:
            for recipe in args.recipes:
                row = model_row(corpus, recipe, budget, args.threads, steps, parse_sets(args.set))
                rows.append(row)
                print(f"{row['what']:34s} {row['nats']:9.3f} {row['bits']:9.3f}   {row['note']}",
                      flush=True)  # fmt: skip
    if args.gptz:
        rows += gptz_rows(corpus, args.gptz, args.gptz_batch, args.adapt_lr)
    if args.json:
        with args.json.open("a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
