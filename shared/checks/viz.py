"""Checks for lesson 08 (attention viz): one head's weights, a heatmap, the GIF's steps.

Each check builds its own small random GPT (seeded, with weights large enough that heads
differ), so it never depends on the learner's checkpoint or on anything else in the notebook.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from shared.checks._calls import call
from shared.checks._core import (
    Exercise,
    attempt,
    close,
    fail,
    passed,
    require_callable,
)

EXERCISES = [
    Exercise(
        name="head_weights",
        check="check_head_weights",
        target="head_weights",
        description="head_weights(model, tokenizer, text, layer, head) -> (T, T) weights",
    ),
    Exercise(
        name="plot_heatmap",
        check="check_plot_heatmap",
        target="plot_heatmap",
        description="plot_heatmap(weights, text) -> Figure with masked future, labels, colorbar",
    ),
    Exercise(
        name="attention_steps",
        check="check_attention_steps",
        target="attention_steps",
        description="attention_steps(...) -> one AttentionStep per generated character",
    ),
]

_TEXT = "En un lugar de la Mancha,\n¿Quién «era» aquel señor? Sí, esto es, á é í ó ú ñ."


def _check_model(block_size: int = 32, n_layer: int = 3, n_head: int = 4):
    """A small random GPT whose heads attend differently (a fresh GPT attends ~uniformly)."""
    from shared.data import CharTokenizer
    from shared.model import GPT, GPTConfig

    tokenizer = CharTokenizer(_TEXT)
    config = GPTConfig(tokenizer.vocab_size, block_size, n_layer, n_head, n_embd=4 * n_head)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GPT(config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.6)
    return model.eval(), tokenizer


@contextmanager
def _one_thread():
    """Tiny models run fastest on one thread (and don't fight other work for the cores);
    the setting is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _all_weights(model, tokenizer, text: str) -> torch.Tensor:
    idx = torch.tensor([tokenizer.encode(text)])
    return model.attention_weights(idx)[:, 0]  # (n_layer, n_head, T, T)


def _as_tensor(name: str, value, what: str) -> torch.Tensor:
    __tracebackhide__ = True
    try:
        return torch.as_tensor(value).detach().float().cpu()
    except Exception:
        fail(name, f"{what} should be a tensor, got {type(value).__name__}.")


# ----------------------------------------------------------------------------- head_weights


def _check_head_weights(head_weights) -> None:
    """``head_weights(model, tokenizer, text, layer, head)`` returns that head's (T, T) weights."""
    __tracebackhide__ = True
    name = "head_weights"
    require_callable(name, head_weights, "your head_weights function")
    model, tokenizer = _check_model()
    text = "¿Qué es esto, Sancho?"
    T = len(text)
    attn = _all_weights(model, tokenizer, text)  # (n_layer=3, n_head=4, T, T)
    for layer, head in ((2, 1), (0, 3)):
        call = f"head_weights(model, tokenizer, {text!r}, layer={layer}, head={head})"
        got = attempt(name, head_weights, model, tokenizer, text, layer, head, what=call)
        got = _as_tensor(name, got, "the result")
        expected = attn[layer, head]
        if close(got, expected):
            continue
        if got.shape != (T, T):
            shape = tuple(got.shape)
            hint = {
                (1, T, T): "the batch dimension is still there (one sequence: batch 0).",
                (attn.shape[1], T, T): "that is every head of the layer, not one head.",
                (attn.shape[0], T, T): "that is one head of every layer, not one layer's.",
            }.get(shape, "model.attention_weights(idx) is (n_layer, B, n_head, T, T).")
            if len(shape) == 2 and shape[0] == shape[1]:
                hint = (f"these are the weights of a {shape[0]}-character text, not of the "
                        f"{T}-character `text` passed in.")  # fmt: skip
            fail(name, f"{call} has shape {shape}, expected ({T}, {T}): {hint}")
        bugs = [
            (attn[head, layer] if head < attn.shape[0] and layer < attn.shape[1] else None,
             "layer and head are swapped: the tensor is (n_layer, B, n_head, T, T)."),
            (expected.T, "the matrix is transposed: row i must be query i (what character i "
             "looks at), so each row sums to 1 and the future (above the diagonal) is 0."),
            (attn[layer - 1, head - 1] if layer and head else None,
             "off by one: layers and heads count from 0 in PyTorch, like the arguments."),
            (attn[layer].mean(0), "that is the mean over the layer's heads, not the one `head`."),
        ]  # fmt: skip
        for wrong, hint in bugs:
            if wrong is not None and close(got, wrong):
                fail(name, f"{call}: {hint}")
        rows = got.sum(-1)
        if not torch.allclose(rows, torch.ones(T), atol=1e-4):
            fail(name, f"{call}: each row should sum to 1 (a softmax over the keys), got row sums "
                 f"from {float(rows.min()):.3f} to {float(rows.max()):.3f}.")  # fmt: skip
        if got.triu(1).abs().max() > 1e-6:
            fail(name, f"{call}: the upper triangle should be 0 (no looking at the future).")
        fail(name, f"{call} returns probabilities but not the ones of layer {layer}, head {head}.")
    passed(name, "rows sum to 1, the future is 0, and layer/head are the right ones")


# ----------------------------------------------------------------------------- plot_heatmap


def _heatmap_artist(fig):
    """The first image (imshow/matshow) or mesh (pcolormesh) in the figure, and its axes."""
    for ax in fig.axes:
        if ax.images:
            return ax, ax.images[0]
        for artist in ax.collections:
            if hasattr(artist, "get_array") and artist.get_array() is not None:
                return ax, artist
    return None, None


def check_plot_heatmap(plot_heatmap) -> None:
    """``plot_heatmap(weights, text)`` returns a Figure: masked future, visible labels, colorbar."""
    __tracebackhide__ = True
    name = "plot_heatmap"
    require_callable(name, plot_heatmap, "your plot_heatmap function")
    for text in ("la\nMa ña", "¿Sí? ¡"):  # two lengths: nothing may be fixed to one text
        _check_one_heatmap(name, plot_heatmap, text)
    passed(name, "blank future, visible ␣/↵ labels, a colorbar")


def _check_one_heatmap(name, plot_heatmap, text) -> None:
    __tracebackhide__ = True
    import numpy as np
    from matplotlib.figure import Figure

    from shared.viz import visible_chars

    T = len(text)
    generator = torch.Generator().manual_seed(T)
    scores = torch.randn(T, T, generator=generator) * 2
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (T, T), causal, distinct values
    call = f"plot_heatmap(weights, {text!r})"
    fig = attempt(name, plot_heatmap, weights, text, what=call)
    if not isinstance(fig, Figure):
        got = type(fig).__name__
        hint = "(that is an Axes; the Figure holds it)" if hasattr(fig, "figure") else ""
        fail(name, f"{call} should return a matplotlib Figure, got {got}. {hint}".strip())
    try:
        ax, artist = _heatmap_artist(fig)
        if artist is None:
            fail(name, "no heatmap found in the figure (an image or a mesh of the weights).")
        data = np.ma.filled(np.ma.asarray(artist.get_array(), dtype=float), np.nan)
        if data.size != T * T:
            fail(name, f"the heatmap has {data.size} cells, expected {T}x{T} (one per pair).")
        data = data.reshape(T, T)
        w = weights.numpy()
        future = np.triu(np.ones((T, T), dtype=bool), k=1)
        if np.allclose(np.nan_to_num(data), w.T, atol=1e-6):
            fail(name, "the heatmap is transposed: rows must be queries (the character looking), "
                 "columns keys, as in `weights`.")  # fmt: skip
        if not np.allclose(data[~future], w[~future], atol=1e-6):
            fail(name, "the heatmap's values are not `weights` (on and below the diagonal).")
        if not np.isnan(data[future]).all():
            fail(name, "the future (above the diagonal) is drawn as zeros, a colour like any "
                 "other; it must be NaN (or masked) so it shows blank.")  # fmt: skip
        expected = visible_chars(text)
        for axis in ("x", "y"):
            labels = [t.get_text() for t in getattr(ax, f"get_{axis}ticklabels")()]
            if labels == list(text) != expected:
                fail(name, f"the {axis} tick labels are the raw characters, so spaces and "
                     "newlines are invisible (visible_char makes them readable).")  # fmt: skip
            if labels != expected:
                fail(name, f"the {axis} axis should have one tick per character labelled "
                     f"{expected}, got {labels}.")  # fmt: skip
        if getattr(artist, "colorbar", None) is None:
            fail(
                name,
                "the figure has no colorbar for the heatmap, so its colours cannot be "
                "read as numbers.",
            )
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)  # the check's figure: never displayed, never kept


# ----------------------------------------------------------------------------- attention_steps


def _unpack_step(name: str, step, i: int):
    __tracebackhide__ = True
    try:
        context, new_char, weights = step
    except (TypeError, ValueError):
        fail(name, f"step {i} should be AttentionStep(context, new_char, weights), got {step!r}.")
    if not isinstance(context, str) or not isinstance(new_char, str) or len(new_char) != 1:
        fail(name, f"step {i}: context should be a str and new_char one character, got "
             f"{context!r} and {new_char!r}.")  # fmt: skip
    return context, new_char, _as_tensor(name, weights, f"step {i}'s weights")


def _crop_hint(exc: Exception) -> str | None:
    if "block_size" in str(exc) or "longer than" in str(exc):
        return ("the model saw more than block_size=8 characters: the context it is given "
                "must be cut to the last block_size characters.")  # fmt: skip
    return None


def _check_attention_steps(attention_steps) -> None:
    """``attention_steps(model, tokenizer, prompt, max_new_chars, layer, seed=0)``: one step per
    new character, each with the context the model saw and its last row of ``layer``'s weights
    averaged over heads; the reference draws them into that many equally sized frames."""
    __tracebackhide__ = True
    name = "attention_steps"
    require_callable(name, attention_steps, "your attention_steps function")
    model, tokenizer = _check_model(block_size=8, n_layer=2, n_head=3)
    # "En un" grows past block_size=8 at the 4th new character; the second call varies every
    # argument (layer 1, another prompt and length), so nothing may be fixed to one call.
    calls = (("En un", 6, 0), ("¿Sí?", 3, 1))
    frames = [_one_call(name, attention_steps, model, tokenizer, *args) for args in calls]
    n = calls[0][1]
    height, width, _ = frames[0][0].shape
    passed(name, f"{n} steps -> {n} frames of {width}x{height} px")


def _one_call(name, attention_steps, model, tokenizer, prompt, n, layer):
    __tracebackhide__ = True
    from shared.course.gif import render_frames
    from shared.viz import AttentionStep

    what = f"attention_steps(model, tokenizer, {prompt!r}, max_new_chars={n}, layer={layer})"
    steps = call(name, attention_steps, model, tokenizer, prompt, n, layer, what=what,
                 hint=_crop_hint)  # fmt: skip
    call_text = what
    steps = list(steps) if steps is not None else []
    if len(steps) != n:
        hint = " (off by one)" if abs(len(steps) - n) == 1 else ""
        fail(name, f"{call_text} returned {len(steps)} steps, expected {n}, one per new "
             f"character{hint}.")  # fmt: skip
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
        attn = _all_weights(model, tokenizer, context)  # (n_layer, n_head, T, T)
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
    frames = render_frames([AttentionStep(*_unpack_step(name, s, i)) for i, s in enumerate(steps)])
    sizes = {frame.shape for frame in frames}
    if len(frames) != n or len(sizes) != 1:
        fail(name, f"expected {n} frames of one size, got {len(frames)} with sizes {sizes}.")
    return frames


def check_head_weights(head_weights) -> None:
    """``head_weights(model, tokenizer, text, layer, head)`` returns that head's (T, T) weights."""
    __tracebackhide__ = True
    with _one_thread():
        _check_head_weights(head_weights)


def check_attention_steps(attention_steps) -> None:
    """``attention_steps(model, tokenizer, prompt, max_new_chars, layer, seed=0)``: one
    AttentionStep(context, new_char, weights) per generated character."""
    __tracebackhide__ = True
    with _one_thread():
        _check_attention_steps(attention_steps)
