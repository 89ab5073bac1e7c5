"""What each ``python -m shared`` command does: flags -> library calls -> a short report.

The flags themselves are declared in ``shared.course.cli``. Library functions raise errors that
speak of their arguments; the messages here speak of the flags the user typed.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

from shared.course.paths import writable_dir, writable_file
from shared.engine.config import default_checkpoint_path, default_outputs_dir, pick_device
from shared.engine.errors import CourseError, shared_command


def data(args) -> int:
    from shared.data import load_corpus
    from shared.engine.download import download_corpus

    timeout = (10, 60) if args.timeout is None else (min(10, args.timeout), args.timeout)
    download_corpus(args.url, args.data_dir, timeout=timeout, retries=args.retries)
    corpus = load_corpus(data_dir=args.data_dir, url=args.url)  # reuses the validated cache
    print(f"corpus: {len(corpus.text):,} characters (Don Quijote, Project Gutenberg #2000)")
    print(f"vocab size: {corpus.vocab_size}")
    print(f"train: {len(corpus.train_data):,} tokens, val: {len(corpus.val_data):,} tokens")
    print(f"cached at: {corpus.path}")
    return 0


def train(args) -> int:
    from shared.bpe_corpus import bits_per_char
    from shared.engine import distributed
    from shared.engine.train_config import (
        MODEL_FIELDS,
        TrainConfig,
        describe,
        recipe_by_name,
        recipe_tokenizer,
    )
    from shared.train import train as train_model

    names = {f.name for f in fields(TrainConfig)} | set(MODEL_FIELDS)
    # time_budget is only present when given (SUPPRESS), and may then be None ("none")
    overrides = {
        k: v for k, v in vars(args).items() if k in names and (v is not None or k == "time_budget")
    }
    resumed = resumed_checkpoint(args)
    device = pick_device(args.device or "auto")
    try:  # checks the model before the corpus loads
        name = getattr(args, "recipe", None) or resumed_recipe(resumed)
        recipe, config = recipe_by_name(name, device, **overrides)
    except ValueError as exc:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in MODEL_FIELDS)
        raise CourseError(f"{exc}; change the model flags ({flags})") from None
    tokenizer = choose_tokenizer(args, resumed, recipe_tokenizer(recipe))
    if getattr(args, "vocab_size", None) is not None and tokenizer != "bpe":
        raise CourseError("--vocab-size needs --tokenizer bpe (characters have a fixed vocabulary)")
    out = writable_file(args.out or default_checkpoint_path(), "--out", need_bytes=_size(config))
    refuse_to_overwrite(out, "--out")
    rank = distributed.setup(device)  # a no-op unless started by torchrun
    try:
        say = print if rank.is_main else _silent
        world = f", world size {rank.world_size}" if rank.enabled else ""
        say(f"recipe: {recipe} ({describe(config)}) on {rank.device}{world}")
        with distributed.main_first(rank):  # one download and one clean-up, not one per process
            if rank.is_main:
                remove_abandoned_temps(out)
            corpus = load_training_corpus(args, tokenizer, resumed)
        check_fits(config, corpus)
        result = train_model(
            corpus, config, out=out, resume=args.resume, progress=not args.quiet and rank.is_main
        )
    finally:
        distributed.teardown(rank)
    if args.quiet:  # train() printed it already when it showed progress
        say(result.summary)
    losses = result.final_losses
    unit = "nats/token" if getattr(corpus, "chars_per_token", None) else "nats/char"
    summary = f", val loss {losses['val']:.3f} {unit}" if losses else ""
    if losses:  # comparable across tokenizers: bits per character of the same validation text
        summary += f" = {bits_per_char(losses['val'], corpus):.3f} bits/char"
    saved = result.checkpoint or out
    say(f"saved {saved} (step {result.step}{summary}, {result.elapsed:.0f} s, {result.stopped})")
    if rank.is_main and Path(saved) != out:
        raise CourseError(
            f"could not save the checkpoint to --out {out}; the trained model is safe at {saved}: "
            "move it where you want it"
        )
    if result.stopped == "interrupted":
        return 130
    say(
        f'try: {shared_command("generate")} --checkpoint {out} --prompt "En un lugar de la Mancha, "'
    )
    return 0


def resumed_checkpoint(args) -> dict | None:
    """The checkpoint ``--resume`` continues (None: not resuming, none there, or unreadable,
    which the training run reports in its own words)."""
    from shared.engine.checkpoint import read_checkpoint

    if not args.resume:
        return None
    try:
        return read_checkpoint(args.out or default_checkpoint_path())
    except Exception:
        return None


def resumed_recipe(saved: dict | None) -> str | None:
    """The recipe of the checkpoint ``--resume`` continues (None: a fresh run)."""
    if saved is None:
        return None
    return "modern" if saved.get("architecture", "gpt") == "modern" else "classic"


def choose_tokenizer(args, saved: dict | None, recipe_default: str = "char") -> str:
    """``--tokenizer`` if given, else the resumed checkpoint's own, else the recipe's
    (``train_config.recipe_tokenizer``). Asking a resumed checkpoint for another tokenizer is
    refused with the two ways that keep the model."""
    if saved is None:
        return getattr(args, "tokenizer", None) or recipe_default
    tokenizer = saved.get("tokenizer")
    kind = (tokenizer.get("type") or "char") if isinstance(tokenizer, dict) else "char"
    asked = getattr(args, "tokenizer", None)
    if asked in (None, kind) and not _other_vocab(args, tokenizer):
        return kind
    path = args.out or default_checkpoint_path()
    names = {"char": "characters", "bpe": "BPE tokens"}
    wanted = (
        f"--tokenizer {asked}" if asked not in (None, kind) else f"--vocab-size {args.vocab_size}"
    )
    raise CourseError(
        f"--resume continues {path}, a model of {names.get(kind, kind)}; {wanted} needs a new "
        f"model: leave out {wanted.split()[0]} to continue this one, or give --out a new file "
        "name to train the new model next to it"
    )


def _other_vocab(args, tokenizer) -> bool:
    """``--vocab-size`` given and different from the resumed BPE checkpoint's."""
    vocab = getattr(args, "vocab_size", None)
    if vocab is None or not isinstance(tokenizer, dict) or tokenizer.get("type") != "bpe":
        return False
    return vocab != 256 + len(tokenizer.get("merges") or [])


def refuse_to_overwrite(path: Path, flag: str) -> None:
    """Training writes its checkpoint to ``path``: never over a file that is no checkpoint."""
    from shared.engine.checkpoint import foreign_file

    if foreign_file(path):
        raise CourseError(
            f"{flag} {path} is an existing file that is not a checkpoint; training would "
            f"overwrite it, so nothing was done: give {flag} a new file name (e.g. gpt.pt)"
        )


def load_training_corpus(args, tokenizer: str = "char", saved: dict | None = None):
    """Characters (the default) or BPE tokens (``--tokenizer bpe --vocab-size N``, shared.bpe);
    a resumed BPE checkpoint brings its own merges."""
    from shared.bpe import tokenizer_from_dict
    from shared.bpe_corpus import bpe_corpus, load_bpe_corpus
    from shared.data import load_corpus
    from shared.engine.download import download_corpus

    if getattr(args, "url", None):  # downloaded once into --data-dir; every reader uses the cache
        download_corpus(args.url, args.data_dir)
    if tokenizer != "bpe":
        return load_corpus(args.data_dir)
    if saved is not None:
        chars = load_corpus(args.data_dir)
        return bpe_corpus(chars.text, tokenizer_from_dict(saved["tokenizer"]), path=chars.path)
    return load_bpe_corpus(args.vocab_size or 1024, args.data_dir)


def _size(config) -> int:
    """Bytes a checkpoint of ``config`` needs: weights + two AdamW moments (float32), ~100 chars."""
    sizes = config.model
    params = 12 * sizes.n_layer * sizes.n_embd**2 + sizes.n_embd * (200 + sizes.block_size)
    return 3 * 4 * params + 1_000_000


def check_fits(config, corpus) -> None:
    """The corpus must be longer than one training window in both splits."""
    shortest = min(len(corpus.train_data), len(corpus.val_data))
    block_size = config.model.block_size
    if block_size >= shortest:
        raise CourseError(
            f"--block-size {block_size} is longer than the validation text "
            f"({shortest:,} characters); use a smaller --block-size"
        )


def remove_abandoned_temps(path) -> None:
    from shared.engine.checkpoint import remove_abandoned_temps as remove

    remove(path)


def _silent(*args, **kwargs) -> None:
    """``print`` for ranks other than 0: under torchrun only rank 0 speaks."""


def generate(args) -> int:
    from shared.engine.checkpoint import load_checkpoint
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
    out = writable_file(args.out or default_outputs_dir() / "attention.gif", "--out", ".gif")
    if args.png_dir:
        writable_dir(args.png_dir, "--png-dir")
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
        progress=True,
    )
    print(f"wrote {path} ({args.max_new_chars} frames)")
    if args.png_dir:
        print(f"wrote heatmaps into {args.png_dir}")
    return 0


def run(args) -> int:
    from shared.course.pipeline import run as run_pipeline
    from shared.engine.train_config import modern_train_config

    recipe = modern_train_config()  # the larger of the two CPU recipes: room for either
    checkpoint = writable_file(
        args.checkpoint or default_checkpoint_path(), "--checkpoint", need_bytes=_size(recipe)
    )
    outputs_dir = writable_dir(args.outputs_dir or default_outputs_dir(), "--outputs-dir")
    remove_abandoned_temps(checkpoint)
    refuse_to_overwrite(checkpoint, "--checkpoint")
    run_pipeline(
        args.data_dir, checkpoint, outputs_dir, getattr(args, "time_budget", -1.0), args.prompt,
        args.max_new_chars, args.seed, args.device, gif=not args.no_gif, progress=not args.quiet,
        url=args.url, max_iters=args.max_iters, num_threads=args.num_threads, recipe=args.recipe,
    )  # fmt: skip
    return 0


def lessons(args) -> int:
    from shared.course.lessons import generate_all
    from shared.engine.config import project_root

    changed = generate_all(project_root(), check_only=args.check)
    if args.check and changed:
        print("lessons/ is out of date for: " + ", ".join(changed))
        print(f"run `{shared_command('lessons')}` and commit the result")
        return 1
    verb = "would change" if args.check else "regenerated"
    print(f"{verb}: {', '.join(changed)}" if changed else "lessons/ is up to date")
    return 0
