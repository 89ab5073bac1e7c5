"""The default as a newcomer runs it (issue 32): `python -m shared train` on the wall clock.

    python benchmarks/bench_default.py --budget 240 --repeats 2 base "bpe:--tokenizer bpe"
    python benchmarks/bench_default.py --budget 600 --repeats 2 base "bpe:--tokenizer bpe"
    python benchmarks/bench_default.py --budget 155 "nanogpt:--recipe classic --n-layer 4 ..."

A candidate is ``label[:CLI flags]`` added to ``python -m shared train --time-budget B``: the
real command, with its thread probe, its evaluations inside the budget and its data loading,
each run in a fresh process writing a checkpoint into a temporary folder. Candidates run one at
a time, interleaved (A, B, A, B for ``--repeats 2``) so a change in the machine's load falls on
both. Each checkpoint is then scored on the WHOLE validation split (every character, windows of
the model's block size; ``bench_recipe.whole_split``: nats per character for characters and BPE
alike). Printed per run: the score, steps, the command's wall time, the training tokens/s it reported and
the load average at start and end. Unlike bench_recipe (1 thread, CPU-clock budgets), these
numbers depend on everything else the machine runs: publish them only with their load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's shared/, then bench_recipe

from bench_recipe import whole_split  # noqa: E402

from shared.bpe_corpus import bpe_corpus  # noqa: E402
from shared.data import load_corpus  # noqa: E402
from shared.engine.checkpoint import load_checkpoint  # noqa: E402


def parse(spec: str) -> tuple[str, list[str]]:
    label, _, flags = spec.partition(":")
    return label, shlex.split(flags)


def score(path: Path, data_dir: str | None) -> tuple[float, int, int]:
    """(nats per character, characters predicted, steps) of a checkpoint on the whole validation split."""
    ckpt = load_checkpoint(path)
    chars = load_corpus(data_dir)
    if ckpt.tokenizer.to_dict().get("type") == "bpe":
        corpus = bpe_corpus(chars.text, ckpt.tokenizer, path=chars.path)
    else:
        corpus = chars
    nats, n_chars = whole_split(ckpt.model, corpus)
    return nats, n_chars, ckpt.step


def run_one(label: str, flags: list[str], budget: float, data_dir, keep: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_default_") as folder:
        out = Path(folder) / "gpt.pt"
        cmd = [sys.executable, "-m", "shared", "train", "--out", str(out),
               "--time-budget", str(budget), "--quiet", *flags]  # fmt: skip
        if data_dir:
            cmd += ["--data-dir", data_dir]
        load_start, start = os.getloadavg()[0], time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
        wall, load_end = time.perf_counter() - start, os.getloadavg()[0]
        if proc.returncode:
            raise SystemExit(f"{label}: {' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
        nats, n_chars, steps = score(out, data_dir)
        if keep is not None:  # for later measurements (compress, generate)
            keep.mkdir(parents=True, exist_ok=True)
            kept = keep / f"{label}-{budget:.0f}s-{time.strftime('%H%M%S')}.pt"
            shutil.copyfile(out, kept)
    speed = re.findall(r"([\d,]+) tokens/s", proc.stdout + proc.stderr)
    return {
        "label": label, "flags": flags, "budget": budget, "nats": nats, "val_chars": n_chars,
        "steps": steps, "wall_s": wall, "tok_s": speed[-1] if speed else "?",
        "load_start": load_start, "load_end": load_end,
        "log_tail": (proc.stdout + proc.stderr).strip().splitlines()[-6:],
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("candidates", nargs="+", help='label[:CLI flags], e.g. "bpe:--tokenizer bpe"')
    p.add_argument("--budget", type=float, default=240.0, help="--time-budget of each run (s)")
    p.add_argument("--repeats", type=int, default=1, help="runs of each candidate, interleaved")
    p.add_argument("--data-dir", help="folder with pg2000.txt (default: the course's data/)")
    p.add_argument(
        "--json",
        type=Path,
        help="append every result to this JSON-lines file "
        "(and keep each checkpoint in FILE.checkpoints/)",
    )
    args = p.parse_args()
    specs = [parse(s) for s in args.candidates]
    for _ in range(args.repeats):
        for label, flags in specs:
            keep = args.json.with_suffix(".checkpoints") if args.json else None
            r = run_one(label, flags, args.budget, args.data_dir, keep)
            print(f"{label:12s} {r['nats']:.4f} nats/char {r['nats'] / 0.6931472:.4f} bits/char | "
                  f"{r['steps']:5d} steps | {r['wall_s']:6.1f} s wall, {r['tok_s']} tokens/s | "
                  f"load {r['load_start']:.2f} -> {r['load_end']:.2f}", flush=True)  # fmt: skip
            if args.json:
                with args.json.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
