"""What each ``python -m shared`` command does: flags -> library calls -> a short report.

The flags themselves are declared in ``shared.course.cli``. Library functions raise errors that
speak of their arguments; the messages here speak of the flags the user typed.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

from shared.config import default_checkpoint_path, default_outputs_dir, pick_device


def data(args) -> int:
    from shared.data import load_corpus
    from shared.download import download_corpus

    timeout = (10, 60) if args.timeout is None else (min(10, args.timeout), args.timeout)
    download_corpus(args.url, args.data_dir, timeout=timeout, retries=args.retries)
    corpus = load_corpus(data_dir=args.data_dir, url=args.url)  # reuses the validated cache
    print(f"corpus: {len(corpus.text):,} characters (Don Quijote, Project Gutenberg #2000)")
    print(f"vocab size: {corpus.vocab_size}")
    print(f"train: {len(corpus.train_data):,} tokens, val: {len(corpus.val_data):,} tokens")
    print(f"cached at: {corpus.path}")
    return 0


def train(args) -> int:
    from shared.data import load_corpus
    from shared.errors import CourseError
    from shared.train import MODEL_FIELDS, TrainConfig, default_train_config
    from shared.train import train as train_model

    names = {f.name for f in fields(TrainConfig)} | set(MODEL_FIELDS)
    # time_budget is only present when given (SUPPRESS), and may then be None ("none")
    overrides = {
        k: v for k, v in vars(args).items() if k in names and (v is not None or k == "time_budget")
    }
    try:
        config = default_train_config(**overrides)  # checks the model before the corpus loads
    except ValueError as exc:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in MODEL_FIELDS)
        raise CourseError(f"{exc}; change the model flags ({flags})") from None
    out = args.out or default_checkpoint_path()
    corpus = load_corpus(args.data_dir)
    result = train_model(corpus, config, out=out, resume=args.resume, progress=not args.quiet)
    losses = result.final_losses
    summary = f", val loss {losses['val']:.3f}" if losses else ""
    print(f"saved {out} (step {result.step}{summary}, {result.elapsed:.0f} s, {result.stopped})")
    if result.stopped == "interrupted":
        return 130
    print(f'try: python -m shared generate --checkpoint {out} --prompt "En un lugar de la Mancha"')
    return 0


def generate(args) -> int:
    from shared.checkpoint import load_checkpoint
    from shared.generate import encode_prompt
    from shared.generate import generate as generate_text

    ckpt = load_checkpoint(args.checkpoint or default_checkpoint_path(), pick_device(args.device))
    encode_prompt(ckpt.tokenizer, args.prompt)  # fail before printing anything

    def stream(ch: str) -> None:
        sys.stdout.write(ch)
        sys.stdout.flush()

    sys.stdout.write(args.prompt)
    generate_text(
        ckpt.model, ckpt.tokenizer, args.prompt, args.max_new_chars, args.temperature,
        args.top_k, args.top_p, args.seed, use_cache=not args.no_cache, stream=stream,
    )  # fmt: skip
    sys.stdout.write("\n")
    return 0


def viz(args) -> int:
    from shared.course.gif import make_attention_gif

    checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint_path()
    out = Path(args.out) if args.out else default_outputs_dir() / "attention.gif"
    path = make_attention_gif(
        checkpoint,
        out,
        prompt=args.prompt,
        layer=args.layer,
        head=args.head,
        max_new_chars=args.max_new_chars,
        seed=args.seed,
        temperature=args.temperature,
        fps=args.fps,
        png_dir=args.png_dir,
    )
    print(f"wrote {path} ({args.max_new_chars} frames)")
    if args.png_dir:
        print(f"wrote heatmaps into {args.png_dir}")
    return 0


def run(args) -> int:
    from shared.course.pipeline import run as run_pipeline
    from shared.errors import CourseError

    if args.checkpoint is not None and args.checkpoint.is_dir():
        raise CourseError(f"--checkpoint {args.checkpoint} is a folder; give a file like gpt.pt")
    run_pipeline(
        args.data_dir, args.checkpoint, args.outputs_dir, args.time_budget, args.prompt,
        args.max_new_chars, args.seed, args.device, gif=not args.no_gif, progress=not args.quiet,
    )  # fmt: skip
    return 0


def lessons(args) -> int:
    from shared.config import project_root
    from shared.course.lessons import generate_all

    changed = generate_all(project_root(), check_only=args.check)
    if args.check and changed:
        print("lessons/ is out of date for: " + ", ".join(changed))
        print("run `python -m shared lessons` and commit the result")
        return 1
    verb = "would change" if args.check else "regenerated"
    print(f"{verb}: {', '.join(changed)}" if changed else "lessons/ is up to date")
    return 0
