"""``python -m shared run``: the whole course in one command, without Jupyter.

data (download + clean Don Quijote) -> train (the default CPU recipe, a few minutes)
-> a Spanish sample in outputs/sample.txt -> the attention GIF in outputs/ (shared.viz)
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from shared.course.defaults import RUN_PROMPT
from shared.engine.config import default_checkpoint_path, default_outputs_dir
from shared.engine.errors import CourseError, shared_command
from shared.engine.progress import duration

DEFAULT_PROMPT = RUN_PROMPT


def run(
    data_dir=None,
    checkpoint=None,
    outputs_dir=None,
    time_budget: float | None = -1.0,
    prompt: str = DEFAULT_PROMPT,
    max_new_chars: int = 1000,
    seed: int | None = None,
    device: str = "auto",
    gif: bool = True,
    progress: bool = True,
    url: str | None = None,
    max_iters: int | None = None,
    num_threads: int | None = None,
    recipe: str | None = None,
) -> dict:
    """Run every step; returns the paths written. ``time_budget=-1`` keeps the recipe's own;
    ``seed`` seeds training and sampling (default: the recipe's 1337 for training, 0 sampling);
    ``recipe``: "modern" (the default on the CPU) or "classic" (``train_config.recipe_by_name``)."""
    from shared.bpe_corpus import load_bpe_corpus
    from shared.data import load_corpus
    from shared.engine.config import pick_device
    from shared.engine.train_config import recipe_by_name, recipe_tokenizer
    from shared.generate import encode_prompt
    from shared.train import train

    started = time.perf_counter()
    checkpoint = Path(checkpoint) if checkpoint else default_checkpoint_path()
    outputs_dir = Path(outputs_dir) if outputs_dir else default_outputs_dir()

    overrides = {"device": device, "max_iters": max_iters, "num_threads": num_threads, "seed": seed}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    recipe, config = recipe_by_name(recipe, pick_device(device), **overrides)
    print("1/4 data: loading Don Quijote (downloaded once, then cached)")
    corpus = load_corpus(data_dir, url=url)
    print(f"    {len(corpus.text):,} characters, {corpus.vocab_size} different ones")
    if recipe_tokenizer(recipe) == "bpe":  # the recipe reads BPE tokens (lesson 09)
        corpus = load_bpe_corpus(data_dir=data_dir)
        print(f"    as {corpus.vocab_size:,} BPE tokens (lesson 09): {len(corpus.train_data):,} "
              f"training tokens, {corpus.chars_per_token['train']:.2f} characters each")  # fmt: skip
    encode_prompt(corpus.tokenizer, prompt)  # a bad prompt fails now, not after training
    if time_budget != -1.0:
        config = replace(config, time_budget=time_budget)
    budget = f"{config.time_budget:.0f} s" if config.time_budget else "no time limit"
    print(
        f"2/4 train: the {recipe} recipe, {config.model.n_layer} layers, {config.model.n_embd} "
        f"channels, {budget} -> {checkpoint}"
    )
    result = train(corpus, config, out=checkpoint, progress=progress)
    if result.stopped == "interrupted":
        raise KeyboardInterrupt
    checkpoint = result.checkpoint or checkpoint  # elsewhere if the disk filled up (it says so)
    if not progress:  # train() said it already when it showed progress
        print(f"    {result.summary}")

    written = {"checkpoint": checkpoint}
    written["sample"] = write_sample(
        result, corpus, prompt, max_new_chars, seed, outputs_dir, progress
    )
    if gif:
        written["gif"] = make_gif(checkpoint, outputs_dir, prompt, progress, num_threads)
    print(summary(result, written, time.perf_counter() - started))
    return written


def write_sample(result, corpus, prompt, max_new_chars, seed, outputs_dir, progress) -> Path:
    """Step 3/4: a sample from the trained model, shown and saved to outputs/sample.txt."""
    from shared.engine.progress import Progress
    from shared.generate import generate

    print("3/4 sample:")
    bar = Progress(max_new_chars, "sampling", "chars", enabled=progress)
    count = iter(range(1, max_new_chars + 1))
    text = generate(
        result.model, corpus.tokenizer, prompt, max_new_chars, temperature=0.8,
        seed=0 if seed is None else seed, stream=lambda ch: bar.update(next(count)),
        num_threads=result.config.num_threads,
    )  # fmt: skip
    bar.close()
    sample_path = outputs_dir / "sample.txt"
    print(text[:400] + ("..." if len(text) > 400 else ""))
    try:
        outputs_dir.mkdir(parents=True, exist_ok=True)
        sample_path.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        checkpoint = result.checkpoint
        raise CourseError(
            f"cannot write {sample_path} ({exc.strerror}); the trained model is safe at "
            f"{checkpoint}: `{shared_command('generate')} --checkpoint {checkpoint}` samples from it"
        ) from None
    print(f"    full sample: {sample_path}")
    return sample_path


def summary(result, written: dict, seconds: float) -> str:
    """The last lines of ``run``: what training did, the files, and what to try next."""
    files = "\n".join(f"    {what}: {path}" for what, path in written.items())
    return (
        f"done in {duration(seconds)}. {result.summary}\nwrote:\n{files}\n"
        f"next: {shared_command('generate')} --checkpoint {written['checkpoint']} "
        f'--prompt "{DEFAULT_PROMPT}"  (more text from your model)'
    )


# ----------------------------------------------------------------------------- GIF
def make_gif(
    checkpoint: Path, outputs_dir: Path, prompt: str, progress: bool = True, num_threads=None
) -> Path:
    """Step 4/4 (lesson 08): the trained checkpoint -> outputs/attention.gif."""
    from shared.course.gif import make_attention_gif

    out = outputs_dir / "attention.gif"
    print(f"4/4 gif: attention while generating -> {out}")
    return make_attention_gif(
        checkpoint, out, prompt=prompt, progress=progress, num_threads=num_threads
    )
