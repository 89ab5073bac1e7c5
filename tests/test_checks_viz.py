"""Lesson 08's checks: the stub, our solution, a different correct one, and classic bugs, each
rejected with a hint that names the mistake."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from checkhelpers import assert_fails, assert_passes, stub
from matplotlib.figure import Figure
from torch.nn import functional as F

from shared import viz
from shared.checks import (
    EXERCISES,
    check_attention_steps,
    check_head_weights,
    check_plot_heatmap,
)


def test_exercises_are_registered():
    assert [(e.check, e.target) for e in EXERCISES["08_attention_viz"]] == [
        ("check_head_weights", "head_weights"),
        ("check_plot_heatmap", "plot_heatmap"),
        ("check_attention_steps", "attention_steps"),
    ]


@pytest.mark.parametrize("check", [check_head_weights, check_plot_heatmap, check_attention_steps])
def test_stub_says_not_implemented(check):
    assert_fails(check, stub, "not implemented yet")


# --- head_weights -----------------------------------------------------------------------------


def _attn(model, tokenizer, text):
    return model.attention_weights(torch.tensor([tokenizer.encode(text)]))  # (L, 1, H, T, T)


def head_weights_alternative(model, tokenizer, text, layer, head):
    ids = torch.tensor(tokenizer.encode(text)).unsqueeze(0)
    per_layer = model.attention_weights(ids).unbind(0)  # n_layer x (1, H, T, T)
    return per_layer[layer].squeeze(0).select(0, head).numpy()  # numpy is fine too


def head_weights_swapped(model, tokenizer, text, layer, head):
    return _attn(model, tokenizer, text)[head, 0, layer]


def head_weights_transposed(model, tokenizer, text, layer, head):
    return _attn(model, tokenizer, text)[layer, 0, head].T


def head_weights_one_based(model, tokenizer, text, layer, head):
    return _attn(model, tokenizer, text)[layer - 1, 0, head - 1]


def head_weights_mean(model, tokenizer, text, layer, head):
    return _attn(model, tokenizer, text)[layer, 0].mean(0)


def head_weights_batch_kept(model, tokenizer, text, layer, head):
    return _attn(model, tokenizer, text)[layer, :, head]


def head_weights_unnormalised(model, tokenizer, text, layer, head):
    return _attn(model, tokenizer, text)[layer, 0, head] * 2


def head_weights_hard_coded(model, tokenizer, text, layer, head):
    return _attn(model, tokenizer, text)[2, 0, 1]


NOTEBOOK_TEXT = "En un lugar"


def head_weights_global_text(model, tokenizer, text, layer, head):
    return _attn(model, tokenizer, NOTEBOOK_TEXT)[layer, 0, head]


def test_head_weights_accepts_correct_versions(capsys):
    assert_passes(check_head_weights, viz.head_weights, capsys)
    assert_passes(check_head_weights, head_weights_alternative, capsys)


@pytest.mark.parametrize(
    "buggy, fragments",
    [
        (head_weights_swapped, ["layer and head are swapped"]),
        (head_weights_global_text, ["not of the", "`text` passed in"]),
        (head_weights_transposed, ["transposed"]),
        (head_weights_one_based, ["off by one", "count from 0"]),
        (head_weights_mean, ["mean over the layer's heads"]),
        (head_weights_batch_kept, ["shape (1,", "batch dimension"]),
        (head_weights_unnormalised, ["sum to 1"]),
        (head_weights_hard_coded, ["not the ones of layer 0, head 3"]),
    ],
)
def test_head_weights_names_classic_mistakes(buggy, fragments):
    assert_fails(check_head_weights, buggy, *fragments)


# --- plot_heatmap -----------------------------------------------------------------------------


def plot_heatmap_reference(weights, text):
    return viz.plot_head(weights, text)


def _pcolormesh_version(weights, text):
    # Written differently: pyplot, a masked array, pcolormesh, inverted y axis.
    import matplotlib.pyplot as plt

    T = len(text)
    w = np.ma.masked_array(weights.numpy(), mask=np.triu(np.ones((T, T), dtype=bool), 1))
    fig, ax = plt.subplots()
    mesh = ax.pcolormesh(np.arange(T + 1) - 0.5, np.arange(T + 1) - 0.5, w)
    ax.invert_yaxis()
    labels = viz.visible_chars(text)
    ax.set_xticks(range(T))
    ax.set_xticklabels(labels)
    ax.set_yticks(range(T))
    ax.set_yticklabels(labels)
    plt.colorbar(mesh, ax=ax)
    return fig


def _heatmap(weights, text, *, mask=True, labels=True, transpose=False, colorbar=True):
    fig = Figure()
    ax = fig.add_subplot()
    w = weights.numpy().astype(float).copy()
    if mask:
        w[np.triu(np.ones_like(w, dtype=bool), k=1)] = np.nan
    image = ax.imshow(w.T if transpose else w)
    if labels:
        ticks = viz.visible_chars(text) if labels is True else list(text)
        ax.set_xticks(range(len(text)), ticks)
        ax.set_yticks(range(len(text)), ticks)
    if colorbar:
        fig.colorbar(image, ax=ax)
    return fig


def _heatmap_in_place(weights, text):
    T = len(text)
    weights[torch.ones(T, T, dtype=torch.bool).triu(1)] = float("nan")  # the caller's tensor
    return _heatmap(weights, text)


def _heatmap_fixed_text(weights, text):
    return _heatmap(weights, "la\nMa ña")  # the lesson's example text, not the argument


def test_plot_heatmap_accepts_correct_versions(capsys):
    assert_passes(check_plot_heatmap, plot_heatmap_reference, capsys)
    assert_passes(check_plot_heatmap, _pcolormesh_version, capsys)
    assert_passes(check_plot_heatmap, _heatmap, capsys)


@pytest.mark.parametrize(
    "buggy, fragments",
    [
        (lambda w, t: _heatmap(w, t, mask=False), ["future", "drawn as zeros", "NaN"]),
        (_heatmap_in_place, ["changed the weights passed in"]),
        (_heatmap_fixed_text, ["one tick per character"]),
        (lambda w, t: _heatmap(w, t, transpose=True), ["transposed"]),
        (lambda w, t: _heatmap(w, t, labels="raw"), ["raw characters", "visible_char"]),
        (lambda w, t: _heatmap(w, t, labels=False), ["one tick per character"]),
        (lambda w, t: _heatmap(w, t, colorbar=False), ["colorbar"]),
        (lambda w, t: _heatmap(w, t).axes[0], ["should return a matplotlib Figure", "Axes"]),
        (lambda w, t: None, ["should return a matplotlib Figure, got NoneType"]),
    ],
)
def test_plot_heatmap_names_classic_mistakes(buggy, fragments):
    assert_fails(check_plot_heatmap, buggy, *fragments)


# --- attention_steps --------------------------------------------------------------------------


def attention_steps_reference(model, tokenizer, prompt, max_new_chars, layer, seed=0):
    return viz.attention_steps(model, tokenizer, prompt, max_new_chars, layer=layer, seed=seed)


def _steps(row, crop=True, count=0, after=False, draw="sample"):
    """A learner-style loop; ``row(attn_of_layer (H, T, T), attn (L, H, T, T))`` picks weights;
    ``draw``: "sample" (the spec), "greedy", "reseeded" (every step), "first" (position 0's
    logits), "seed0" (the seed argument ignored)."""

    @torch.no_grad()
    def attention_steps(model, tokenizer, prompt, max_new_chars, layer, seed=0):
        block_size = model.config.block_size
        generator = torch.Generator().manual_seed(0 if draw == "seed0" else seed)
        text, steps = prompt, []
        for _ in range(max_new_chars + count):
            context = text[-block_size:] if crop else text
            idx = torch.tensor([tokenizer.encode(context)])
            logits, _ = model(idx)
            probs = F.softmax(logits[0, 0 if draw == "first" else -1], dim=-1)
            if draw == "reseeded":
                generator = torch.Generator().manual_seed(seed)
            new_id = (
                probs.argmax()
                if draw == "greedy"
                else torch.multinomial(probs, 1, generator=generator)
            )
            new_char = tokenizer.decode([int(new_id)])
            attn = model.attention_weights(idx)[:, 0]  # (L, H, T, T)
            weights = row(attn[layer], attn)
            text = context + new_char
            steps.append((text[-block_size:] if after else context, new_char, weights))
        return steps

    return attention_steps


def _other_alternative(model, tokenizer, prompt, max_new_chars, layer, seed=0, cache=False):
    # Written differently: generate_ids first, then a per-head loop, plain tuples, float lists.
    from shared.generate import generate_ids

    bs = model.config.block_size
    start = torch.tensor(tokenizer.encode(prompt[-bs:])).view(1, -1)
    ids = generate_ids(model, start, max_new_chars, generator=torch.Generator().manual_seed(seed),
                       use_cache=cache)  # fmt: skip
    written = tokenizer.decode(ids[0, start.size(1) :].tolist())
    out, text = [], prompt
    for nxt in written:
        ctx = text[len(text) - bs :] if len(text) > bs else text
        ids = torch.tensor(tokenizer.encode(ctx)).view(1, -1)
        with torch.no_grad():
            heads = model.attention_weights(ids)[layer, 0]
        mean = sum(heads[h, len(ctx) - 1] for h in range(heads.shape[0])) / heads.shape[0]
        out.append((ctx, nxt, mean.tolist()))
        text = ctx + nxt
    return out


def _steps_crash(model, tokenizer, prompt, max_new_chars, layer, seed=0):
    return [tokenizer.stoi["€"]]


def test_attention_steps_reports_a_crash_in_one_line():
    error = assert_fails(check_attention_steps, _steps_crash, "raised KeyError")
    assert error.__context__ is None  # one traceback for the learner, not a chain


def test_attention_steps_accepts_correct_versions(capsys):
    assert_passes(check_attention_steps, attention_steps_reference, capsys)
    assert_passes(check_attention_steps, _other_alternative, capsys)
    assert_passes(check_attention_steps, _steps(lambda a, _: a[:, -1, :].mean(0)), capsys)


@pytest.mark.parametrize(
    "buggy, fragments",
    [
        (_steps(lambda a, _: a[:, -1, :].mean(0), count=1), ["7 steps, expected 6", "off by one"]),
        (_steps(lambda a, _: a[:, -1, :].mean(0), count=-1), ["5 steps", "off by one"]),
        (_steps(lambda a, _: a[:, -1, :].mean(0), crop=False), ["last block_size characters"]),
        (_steps(lambda a, _: a[:, -1, :].mean(0), after=True), ["*before* adding"]),
        (_steps(lambda a, _: a[:, 0, :].mean(0)), ["first row", "last row"]),
        (_steps(lambda a, _: a[:, :, -1].mean(0)), ["column", "last *row*"]),
        (_steps(lambda a, _: a[0, -1, :]), ["head 0 only", "average over the heads"]),
        (_steps(lambda a, full: full[0, :, -1].mean(0)), ["layer 0, not the `layer` argument"]),
        (_steps(lambda a, full: full[-1, :, -1].mean(0)), ["last layer", "`layer` argument"]),
        (_steps(lambda a, full: full[:, :, -1].mean((0, 1))), ["averaged over layers"]),
        (_steps(lambda a, _: a[:, -1, :].sum(0)), ["sum to 1"]),
        (_steps(lambda a, _: a[:, -1, :].mean(0), draw="greedy"), ["greedy decoding"]),
        (_steps(lambda a, _: a[:, -1, :].mean(0), draw="reseeded"), ["reseeded before every"]),
        (_steps(lambda a, _: a[:, -1, :].mean(0), draw="first"), ["first position's prediction"]),
        (_steps(lambda a, _: a[:, -1, :].mean(0), draw="seed0"), ["`seed` argument is ignored"]),
        (functools.partial(_other_alternative, cache=True), ["the KV cache was used"]),
    ],
)
def test_attention_steps_names_classic_mistakes(buggy, fragments):
    assert_fails(check_attention_steps, buggy, *fragments)
