"""``python -m shared run``: the whole course in one command, without Jupyter.

data (download + clean Don Quijote) -> train (the default CPU recipe, a few minutes)
-> a Spanish sample in outputs/sample.txt -> the attention GIF in outputs/ (shared.viz)
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from shared.config import default_checkpoint_path, default_outputs_dir
from shared.errors import CourseError

DEFAULT_PROMPT = "En un lugar de la Mancha"


def run(
    data_dir=None,
    checkpoint=None,
    outputs_dir=None,
    time_budget: float | None = -1.0,
    prompt: str = DEFAULT_PROMPT,
    max_new_chars: int = 1000,
    seed: int = 0,
    device: str = "auto",
    gif: bool = True,
    progress: bool = True,
) -> dict:
    """Run every step; returns the paths written. ``time_budget=-1`` keeps the recipe's own."""
    from shared.data import load_corpus
    from shared.generate import encode_prompt, generate
    from shared.train import default_train_config, train

    checkpoint = Path(checkpoint) if checkpoint else default_checkpoint_path()
    outputs_dir = Path(outputs_dir) if outputs_dir else default_outputs_dir()

    print("1/4 data: loading Don Quijote (downloaded once, then cached)")
    corpus = load_corpus(data_dir)
    encode_prompt(corpus.tokenizer, prompt)  # a bad prompt fails now, not after training
    print(f"    {len(corpus.text):,} characters, vocab {corpus.vocab_size}")

    config = default_train_config(device=device)
    if time_budget != -1.0:
        config = replace(config, time_budget=time_budget)
    budget = f"{config.time_budget:.0f} s" if config.time_budget else "no time limit"
    print(
        f"2/4 train: {config.model.n_layer} layers, {config.model.n_embd} channels, {budget} -> {checkpoint}"
    )
    result = train(corpus, config, out=checkpoint, progress=progress)
    if result.stopped == "interrupted":
        raise KeyboardInterrupt
    checkpoint = result.checkpoint or checkpoint  # elsewhere if the disk filled up (it says so)
    print(f"    step {result.step}, val loss {result.final_losses['val']:.3f}")

    print("3/4 sample:")
    text = generate(
        result.model, corpus.tokenizer, prompt, max_new_chars, temperature=0.8, seed=seed
    )
    sample_path = outputs_dir / "sample.txt"
    print(text[:400] + ("..." if len(text) > 400 else ""))
    try:
        outputs_dir.mkdir(parents=True, exist_ok=True)
        sample_path.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise CourseError(
            f"cannot write {sample_path} ({exc.strerror}); the trained model is safe at "
            f"{checkpoint}: `python -m shared generate --checkpoint {checkpoint}` samples from it"
        ) from None
    print(f"    full sample: {sample_path}")

    written = {"checkpoint": checkpoint, "sample": sample_path}
    if gif:
        written["gif"] = make_gif(checkpoint, outputs_dir, prompt)
    return written


# ----------------------------------------------------------------------------- GIF
def make_gif(checkpoint: Path, outputs_dir: Path, prompt: str) -> Path:
    """Step 4/4 (lesson 08): the trained checkpoint -> outputs/attention.gif."""
    from shared.course.gif import make_attention_gif

    out = outputs_dir / "attention.gif"
    print(f"4/4 gif: attention while generating -> {out}")
    return make_attention_gif(checkpoint, out, prompt=prompt)
