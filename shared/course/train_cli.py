"""``python -m shared train``: flags -> ``TrainConfig`` -> ``shared.train.train``.

Unset flags keep the recipe (``default_train_config``); bad values are one ``error: ...`` line.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import fields
from pathlib import Path

from shared.config import default_checkpoint_path
from shared.course import cli_types
from shared.errors import CourseError


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("train", help="train the GPT (default: the measured CPU recipe)")
    p.add_argument("--data-dir", type=Path, help="folder with pg2000.txt (downloaded if missing)")
    p.add_argument("--out", type=Path, help="checkpoint file (default: checkpoints/gpt.pt)")
    p.add_argument(
        "--time-budget", type=cli_types.time_budget, default=argparse.SUPPRESS,
        help="total seconds of wall clock (a resumed run counts its earlier time), or 'none'",
    )  # fmt: skip
    p.add_argument("--max-iters", type=cli_types.positive(int))
    p.add_argument("--resume", action="store_true", help="continue from --out")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    for flag, kind in (("batch-size", int), ("block-size", int), ("n-layer", int),
                       ("n-head", int), ("n-embd", int), ("learning-rate", float),
                       ("warmup-iters", int), ("eval-interval", int), ("eval-iters", int),
                       ("num-threads", int)):  # fmt: skip
        p.add_argument(f"--{flag}", type=cli_types.positive(kind))
    for flag in ("dropout", "min-lr", "weight-decay", "grad-clip"):
        p.add_argument(f"--{flag}", type=_non_negative_float)
    p.add_argument("--seed", type=int)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cli_train)


def _cli_train(args) -> int:
    from shared.data import load_corpus
    from shared.train import TrainConfig, _check_config, default_train_config, train

    names = {f.name for f in fields(TrainConfig)}
    # time_budget is only present when given (SUPPRESS), and may then be None ("none")
    overrides = {
        k: v for k, v in vars(args).items() if k in names and (v is not None or k == "time_budget")
    }
    if args.dropout is not None and args.dropout >= 1:
        raise CourseError(f"--dropout must be below 1, got {args.dropout}")
    config = default_train_config(**overrides)
    _check_config(config)  # before the corpus loads
    out = args.out or default_checkpoint_path()
    corpus = load_corpus(args.data_dir)
    result = train(corpus, config, out=out, resume=args.resume, progress=not args.quiet)
    losses = result.final_losses
    summary = f", val loss {losses['val']:.3f}" if losses else ""
    print(f"saved {out} (step {result.step}{summary}, {result.elapsed:.0f} s, {result.stopped})")
    if result.stopped == "interrupted":
        return 130
    print(f'try: python -m shared generate --checkpoint {out} --prompt "En un lugar de la Mancha"')
    return 0
