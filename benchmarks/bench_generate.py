"""Sampling speed with and without the KV cache (chars/s), at block size 256.

    python benchmarks/bench_generate.py                     # random 4/4/128 GPT, block 256
    python benchmarks/bench_generate.py --checkpoint checkpoints/gpt.pt

Speed does not depend on the weights, so a random model measures the loop honestly. Runs are
interleaved (no cache, cache, no cache, cache) and timed in CPU seconds of this one-thread
process, so other jobs on the machine do not skew the ratio.
"""

from __future__ import annotations

import argparse
import time

import torch

from shared.data import CharTokenizer
from shared.generate import generate
from shared.model import GPT, GPTConfig

CHARS = sorted(set("\n !\"'(),-.:;?ABCDEFGHIJLMNOPQRSTUVXYZabcdefghijlmnopqrstuvxyzáéíñóúü¿¡—«»"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="a trained checkpoint instead of a random model")
    p.add_argument("--block-size", type=int, default=256)
    p.add_argument("--chars", type=int, default=500)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.checkpoint:
        from shared.engine.checkpoint import load_checkpoint

        ckpt = load_checkpoint(args.checkpoint)
        model, tokenizer = ckpt.model, ckpt.tokenizer
    else:
        torch.manual_seed(0)
        tokenizer = CharTokenizer.from_chars(CHARS)
        config = GPTConfig(tokenizer.vocab_size, block_size=args.block_size)
        model = GPT(config).eval()
    c = model.config
    print(f"model {c.n_layer}/{c.n_head}/{c.n_embd}, block {c.block_size}, {args.chars} chars")
    speeds = {False: [], True: []}
    for _ in range(args.rounds):
        for use_cache in (False, True):
            start = time.process_time()
            generate(model, tokenizer, "En un lugar", args.chars, seed=0, use_cache=use_cache)
            speeds[use_cache].append(args.chars / (time.process_time() - start))
    slow, fast = max(speeds[False]), max(speeds[True])
    print(f"no cache: {slow:8.0f} chars/s (CPU time, best of {args.rounds})")
    print(f"KV cache: {fast:8.0f} chars/s")
    print(f"speed-up: {fast / slow:.1f}x")


if __name__ == "__main__":
    main()
