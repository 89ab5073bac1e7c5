"""The attention_steps check of lesson 08: one step per generated character, each with the
context the model saw and the last row of one layer's weights averaged over heads."""

from __future__ import annotations

from shared.checks._calls import call
from shared.checks._core import close, fail, passed, require_callable
from shared.checks._viz_model import all_weights, as_tensor, trained_small_gpt


def _unpack_step(name: str, step, i: int):
    __tracebackhide__ = True
    try:
        context, new_char, weights = step
    except (TypeError, ValueError):
        fail(name, f"step {i} should be AttentionStep(context, new_char, weights), got {step!r}.")
    if not isinstance(context, str) or not isinstance(new_char, str) or len(new_char) != 1:
        fail(name, f"step {i}: context should be a str and new_char one character, got "
             f"{context!r} and {new_char!r}.")  # fmt: skip
    return context, new_char, as_tensor(name, weights, f"step {i}'s weights")


def _crop_hint(exc: Exception) -> str | None:
    if "block_size" in str(exc) or "longer than" in str(exc):
        return ("the model saw more than block_size=8 characters: the context it is given "
                "must be cut to the last block_size characters.")  # fmt: skip
    return None


def steps_check(attention_steps) -> None:
    """``attention_steps(model, tokenizer, prompt, max_new_chars, layer, seed=0)``: one step per
    new character, each with the context the model saw and its last row of ``layer``'s weights
    averaged over heads."""
    __tracebackhide__ = True
    name = "attention_steps"
    require_callable(name, attention_steps, "your attention_steps function")
    model, tokenizer = trained_small_gpt(
        block_size=8, n_layer=2, n_head=3
    )  # peaked, like a real one
    # "En un" grows past block_size=8 at the 4th new character (with seed 2 the KV cache,
    # which then reads a shorter context, writes other text); the second call varies every
    # argument (layer 1, another prompt and length), so nothing may be fixed to one call.
    calls = (("En un", 6, 0, 2), ("¿Sí?", 3, 1, 5))
    for args in calls:
        _one_call(name, attention_steps, model, tokenizer, *args)
    n = calls[0][1]
    passed(name, f"{n} steps, each the context the model saw and its last row of weights")


def _written(model, tokenizer, prompt, n, seed, how="spec"):
    """The characters the spec's sampling writes, or what a classic mistake writes instead."""
    import torch
    from torch.nn import functional as F

    from shared.generate import generate_ids

    bs = model.config.block_size
    idx = torch.tensor([tokenizer.encode(prompt[-bs:])])
    if how in ("spec", "cache", "seed 0"):
        generator = torch.Generator().manual_seed(0 if how == "seed 0" else seed)
        ids = generate_ids(model, idx, n, generator=generator, use_cache=how == "cache")
        return tokenizer.decode(ids[0, idx.size(1) :].tolist())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(n):
            logits = model(idx[:, -bs:])[0][0]  # (T, V)
            if how == "greedy":
                new = logits[-1].argmax().view(1, 1)
            else:  # "reseeded" every step, or the "first" position's logits
                if how == "reseeded":
                    generator = torch.Generator().manual_seed(seed)
                row = logits[0] if how == "first" else logits[-1]
                new = torch.multinomial(F.softmax(row, -1), 1, generator=generator).view(1, 1)
            idx = torch.cat([idx, new], dim=1)
    return tokenizer.decode(idx[0, -n:].tolist())


_SAMPLING_MISTAKES = {
    "greedy": "every character is the most likely one (argmax): that is greedy decoding, not "
    "sampling; draw with the seeded generator (generate_ids does)",
    "reseeded": "the generator is reseeded before every character, so every draw reuses the same "
    "random number; seed it once",
    "first": "the characters are drawn from the first position's prediction; the next character "
    "is predicted at the last position",
    "cache": "the KV cache was used: past block_size it reads a shorter context than the model "
    "really would, so the frames would lie; use_cache=False",
    "seed 0": "the `seed` argument is ignored (seed 0 is used)",
}


def _check_sampling(name, what, model, tokenizer, prompt, n, seed, written) -> None:
    __tracebackhide__ = True
    want = _written(model, tokenizer, prompt, n, seed)
    if written == want:
        return
    for how, mistake in _SAMPLING_MISTAKES.items():
        if (how != "seed 0" or seed != 0) and written == _written(
            model, tokenizer, prompt, n, seed, how
        ):
            fail(name, f"{what} wrote {written!r}: {mistake}.")
    fail(name, f"{what} wrote {written!r}, but generate_ids(..., use_cache=False) with a "
         f"torch.Generator seeded with seed={seed} writes {want!r} from that prompt.")  # fmt: skip


def _one_call(name, attention_steps, model, tokenizer, prompt, n, layer, seed):
    __tracebackhide__ = True
    what = (f"attention_steps(model, tokenizer, {prompt!r}, max_new_chars={n}, layer={layer}, "
            f"seed={seed})")  # fmt: skip
    steps = call(name, attention_steps, model, tokenizer, prompt, n, layer, seed=seed, what=what,
                 hint=_crop_hint)  # fmt: skip
    call_text = what
    steps = list(steps) if steps is not None else []
    if len(steps) != n:
        hint = " (off by one)" if abs(len(steps) - n) == 1 else ""
        fail(name, f"{call_text} returned {len(steps)} steps, expected {n}, one per new "
             f"character{hint}.")  # fmt: skip
    written = "".join(_unpack_step(name, step, i)[1] for i, step in enumerate(steps))
    _check_sampling(name, what, model, tokenizer, prompt, n, seed, written)
    previous = None
    for i, step in enumerate(steps):
        context, new_char, got = _unpack_step(name, step, i)
        seen = prompt[-8:] if previous is None else (previous[0] + previous[1])[-8:]
        if context == (seen + new_char)[-8:] and context != seen:
            fail(name, f"step {i}: the context already includes the new character; it must be "
                 "what the model saw *before* adding the character it wrote.")  # fmt: skip
        if context != seen:
            fail(name, f"step {i}: the context should be {seen!r} (the text so far, last "
                 f"block_size=8 characters), got {context!r}.")  # fmt: skip
        attn = all_weights(model, tokenizer, context)  # (n_layer, n_head, T, T)
        expected = attn[layer, :, -1, :].mean(0)  # (T,)
        if not close(got, expected):
            bugs = [
                (attn[layer, :, 0, :].mean(0), "that is the first row; the new character is "
                 "predicted at the *last* position, the last row."),
                (attn[layer, :, :, -1].mean(0), "that is a column (what attends to the last "
                 "character); the new character's view is the last *row*."),
                (attn[layer, 0, -1, :], "that is head 0 only, not the average over the heads."),
                (attn[-1, :, -1, :].mean(0), "that is the last layer, not the `layer` argument's."),
                (attn[0, :, -1, :].mean(0), "that is layer 0, not the `layer` argument's."),
                (attn[:, :, -1, :].mean((0, 1)), "that is averaged over layers too; only over "
                 "heads."),
            ]  # fmt: skip
            for wrong, hint in bugs:
                if close(got, wrong):
                    fail(name, f"step {i}: {hint}")
            total = float(got.sum()) if got.numel() else 0.0
            if got.shape != expected.shape or abs(total - 1) > 1e-4:
                fail(name, f"step {i}: weights should have shape {tuple(expected.shape)} and sum "
                     f"to 1 (one attention row), got {tuple(got.shape)} summing to {total:.3f}.")  # fmt: skip
            fail(name, f"step {i}: weights are not layer {layer}'s last row averaged over heads.")
        previous = (context, new_char)
