"""Checks for lesson 08 (attention viz): one head's weights, a heatmap, the GIF's steps.

Each check builds its own small random GPT (seeded, with weights large enough that heads
differ), so it never depends on the learner's checkpoint or on anything else in the notebook.
"""

from __future__ import annotations

import torch

from shared.checks._core import (
    Exercise,
    attempt,
    close,
    fail,
    passed,
    require_callable,
)
from shared.checks._viz_model import all_weights, as_tensor, one_thread, small_gpt
from shared.checks._viz_steps import steps_check

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

# ----------------------------------------------------------------------------- head_weights


def _check_head_weights(head_weights) -> None:
    """``head_weights(model, tokenizer, text, layer, head)`` returns that head's (T, T) weights."""
    __tracebackhide__ = True
    name = "head_weights"
    require_callable(name, head_weights, "your head_weights function")
    model, tokenizer = small_gpt()
    text = "¿Qué es esto, Sancho?"
    T = len(text)
    attn = all_weights(model, tokenizer, text)  # (n_layer=3, n_head=4, T, T)
    for layer, head in ((2, 1), (0, 3)):
        call = f"head_weights(model, tokenizer, {text!r}, layer={layer}, head={head})"
        got = attempt(name, head_weights, model, tokenizer, text, layer, head, what=call)
        got = as_tensor(name, got, "the result")
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


def check_head_weights(head_weights) -> None:
    """``head_weights(model, tokenizer, text, layer, head)`` returns that head's (T, T) weights."""
    __tracebackhide__ = True
    with one_thread():
        _check_head_weights(head_weights)


def check_attention_steps(attention_steps) -> None:
    """``attention_steps(model, tokenizer, prompt, max_new_chars, layer, seed=0)``: one
    AttentionStep(context, new_char, weights) per generated character."""
    __tracebackhide__ = True
    with one_thread():
        steps_check(attention_steps)
