"""Explicit heads (MultiHeadAttention) vs the fused path (CausalSelfAttention), forward + backward.

    python benchmarks/bench_attention.py                 # B=32, T=128, C=128, 4 heads
    python benchmarks/bench_attention.py --block-size 256 --n-head 8

Both modules compute the same function (tests/test_attention.py proves it); this measures what
fusing the QKV projection and calling F.scaled_dot_product_attention buys on CPU. Runs are
interleaved and timed in CPU seconds of this one-thread process, so other jobs on the machine
skew the ratio less.
"""

from __future__ import annotations

import argparse
import time

import torch

from shared.attention import CausalSelfAttention, MultiHeadAttention


def cpu_seconds_per_step(module: torch.nn.Module, x: torch.Tensor, steps: int) -> float:
    start = time.process_time()
    for _ in range(steps):
        module(x).sum().backward()
    return (time.process_time() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    shape = (args.n_embd, args.n_head, args.block_size)
    modules = {"explicit heads": MultiHeadAttention(*shape), "fused": CausalSelfAttention(*shape)}
    x = torch.randn(args.batch_size, args.block_size, args.n_embd)
    for module in modules.values():  # warm-up
        cpu_seconds_per_step(module, x, 1)
    best = {name: float("inf") for name in modules}
    for _ in range(args.rounds):
        for name, module in modules.items():
            best[name] = min(best[name], cpu_seconds_per_step(module, x, args.steps))
    print(
        f"B={args.batch_size} T={args.block_size} C={args.n_embd} heads={args.n_head}, "
        f"torch {torch.__version__}, 1 thread, forward+backward, best of {args.rounds}:"
    )
    for name, seconds in best.items():
        print(f"  {name:15s} {seconds * 1000:7.1f} ms/step")
    print(f"  fused is {best['explicit heads'] / best['fused']:.1f}x faster")


if __name__ == "__main__":
    main()
