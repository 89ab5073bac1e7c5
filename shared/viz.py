"""Look inside the model (lesson 08): attention heatmaps and an animated attention GIF.

- ``collect_attention``: every layer's and head's attention weights for a text, (n_layer, n_head,
  T, T), straight from ``GPT.attention_weights`` (the teaching path, not a re-implementation).
- ``plot_head`` / ``plot_all_heads``: heatmaps, one row per *query* (the character doing the
  looking), one column per *key* (the character looked at). The upper triangle is the future,
  which a causal model never sees: it is left blank, not drawn as zeros.
- Naming heads (``head_scores``, ``is_finding``, ...) lives in ``shared.viz_heads``: scores for
  disjoint patterns, and the rule for calling one a finding.
- ``attention_steps``: generate text and record, for each new character, what its prediction
  attended to. ``shared.course.gif`` renders those steps as the animated GIF
  (``python -m shared viz`` writes it headless).

Every function returns a ``Figure`` or an array and never calls ``plt.show()``: they work under
the Agg backend with no display, and a notebook shows a returned figure by itself.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from shared.engine.errors import CourseError
from shared.engine.threads import tuned_threads
from shared.generate import generate_ids

# Whitespace made visible in tick labels and frames (DejaVu, matplotlib's bundled font, has them).
VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}
LABEL_FONT = "DejaVu Sans"


def visible_char(ch: str) -> str:
    """``' '`` -> ``'␣'``, ``'\\n'`` -> ``'↵'``; other control characters as ``\\xNN``; else ``ch``."""
    if len(ch) != 1:  # a BPE token's text: each of its characters
        return "".join(map(visible_char, ch))
    if ch in VISIBLE:
        return VISIBLE[ch]
    if not ch.isprintable():
        return f"\\x{ord(ch):02x}"
    return ch


def visible_chars(text: str) -> list[str]:
    """One visible label per character of ``text`` (or per token, given a tuple of tokens)."""
    return [visible_char(ch) for ch in text]


def _model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def encode_text(model, tokenizer, text: str) -> torch.Tensor:
    """``text`` -> idx (1, T) on the model's device, with clear errors for what the model can't read."""
    if not isinstance(text, str) or not text:
        raise CourseError("the text is empty; give at least one character")
    block_size = model.config.block_size
    if len(text) > block_size:
        raise CourseError(
            f"the text has {len(text)} characters but this model sees at most "
            f"block_size={block_size}; use a shorter text (e.g. text[-{block_size}:])"
        )
    byte_level = getattr(tokenizer, "byte_level", False)  # BPE: nothing unknown (shared.bpe)
    unknown = [] if byte_level else sorted(set(text) - set(tokenizer.stoi))
    if unknown:
        shown = ", ".join(repr(ch) for ch in unknown[:10])
        raise CourseError(
            f"{len(unknown)} character(s) not in the model's vocabulary: {shown}; "
            "remove them from the text"
        )
    return torch.tensor([tokenizer.encode(text)], dtype=torch.long, device=_model_device(model))


def collect_attention(model, tokenizer, text: str) -> torch.Tensor:
    """Attention weights of every layer and head for ``text``: (n_layer, n_head, T, T) on CPU.

    ``[layer, head, i, j]`` is how much character i (the query) attends to character j (a key);
    each row sums to 1 and everything above the diagonal is 0 (no peeking at the future).
    """
    idx = encode_text(model, tokenizer, text)  # (1, T)
    attn = model.attention_weights(idx)  # (n_layer, B=1, n_head, T, T)
    return attn[:, 0].detach().float().cpu()  # (n_layer, n_head, T, T)


def head_weights(model, tokenizer, text: str, layer: int, head: int) -> torch.Tensor:
    """One head's (T, T) attention weights for ``text`` (lesson 08's first exercise)."""
    cfg = model.config
    check_layer_head(layer, head, cfg.n_layer, cfg.n_head)
    idx = encode_text(model, tokenizer, text)  # (1, T)
    attn = model.attention_weights(idx)  # (n_layer, B=1, n_head, T, T)
    return attn[layer, 0, head].detach().float().cpu()  # (T, T): row = query, column = key


def check_layer_head(layer: int | None, head: int | None, n_layer: int, n_head: int) -> None:
    """CourseError when a layer/head index is out of range (None means "all"/"average")."""
    if layer is not None and not 0 <= layer < n_layer:
        raise CourseError(f"layer {layer} is out of range: this model has layers 0..{n_layer - 1}")
    if head is not None and not 0 <= head < n_head:
        raise CourseError(f"head {head} is out of range: this model has heads 0..{n_head - 1}")


def masked_future(weights: torch.Tensor):
    """(T, T) weights -> numpy array with the causal upper triangle set to NaN (drawn blank)."""
    import numpy as np

    w = weights.detach().float().cpu().numpy().astype(float)  # (T, T)
    w[np.triu(np.ones_like(w, dtype=bool), k=1)] = np.nan
    return w


# ----------------------------------------------------------------------------- heatmaps


def _new_figure(figsize):
    # Figure() directly (not plt.figure): no pyplot state, no display needed, nothing to close.
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def plot_head(
    weights: torch.Tensor,
    text: str,
    title: str | None = None,
    ax=None,
    colorbar: bool = True,
    fontsize: float | None = None,
):
    """Heatmap of one head's (T, T) weights for ``text``; returns the Figure.

    Rows are queries (the character doing the looking), columns are keys; the ticks show the
    characters (spaces as ␣, newlines as ↵); the blank upper triangle is the masked future.
    Colours use a square-root scale from 0 to 1, so the many small weights of a long text stay
    visible next to the large ones. Pass ``ax`` to draw into an existing grid.
    """
    import matplotlib as mpl
    from matplotlib.colors import PowerNorm

    T = len(text)
    if tuple(weights.shape) != (T, T):
        raise CourseError(f"weights have shape {tuple(weights.shape)} but the text has {T} chars")
    if ax is None:
        side = min(8.0, 2.5 + 0.14 * T)  # inches: about 0.14 in per character, at most 8 in
        ax = _new_figure((side + 1.2, side)).add_subplot()
    cmap = mpl.colormaps["viridis"].with_extremes(bad="white")  # NaN (the future) is blank
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    image = ax.imshow(masked_future(weights), cmap=cmap, norm=norm)
    labels = visible_chars(text)
    if fontsize is None:  # most of the space one tick gets (constrained layout widens the axes)
        width_in = 0.85 * ax.get_position().width * ax.figure.get_figwidth()
        fontsize = max(4.0, min(11.0, 0.85 * width_in * 72 / max(T, 1)))
    ax.set_xticks(range(T), labels, fontsize=fontsize, fontfamily=LABEL_FONT)
    ax.set_yticks(range(T), labels, fontsize=fontsize, fontfamily=LABEL_FONT)
    ax.tick_params(length=0)
    ax.set_xlabel("key: looked at")
    ax.set_ylabel("query: looking")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.8, label="attention weight (sqrt scale)")
    return ax.figure


def plot_all_heads(attn: torch.Tensor, text: str, cell: float = 2.4):
    """Grid of heatmaps, one row per layer and one column per head; returns the Figure."""
    n_layer, n_head = attn.shape[:2]
    fig = _new_figure((cell * n_head + 0.8, cell * n_layer))
    axes = fig.subplots(n_layer, n_head, squeeze=False)
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer][head]
            # ~80% of the cell is axes; a tick slot is that width / T (72 points per inch).
            fontsize = max(4.0, min(9.0, 0.75 * cell * 72 / max(len(text), 1)))
            plot_head(attn[layer, head], text, ax=ax, colorbar=False, fontsize=fontsize)
            ax.set_title(f"layer {layer}, head {head}", fontsize=9)
            ax.set_xlabel("")
            ax.set_ylabel("")
            if len(text) > 24:  # too many ticks to read at this size: keep the picture
                ax.set_xticks([])
                ax.set_yticks([])
    fig.colorbar(axes[0][0].images[0], ax=axes, shrink=0.6, label="attention (sqrt scale)")
    fig.suptitle(f"attention of every head on {len(text)} characters (rows: query, cols: key)")
    return fig


# ----------------------------------------------------------------------------- while writing


class AttentionStep(NamedTuple):
    """One generated character and what its prediction attended to."""

    context: str  # what the model saw (at most block_size; BPE: a tuple, one text per token)
    new_char: str  # the character it then wrote (BPE: the new token's text)
    weights: torch.Tensor  # (len(context),) attention of the last position; sums to 1


@torch.no_grad()
def attention_steps(
    model,
    tokenizer,
    prompt: str,
    max_new_chars: int,
    layer: int | None = None,
    head: int | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    num_threads: int | None = None,
) -> list[AttentionStep]:
    """Generate ``max_new_chars`` characters after ``prompt`` (with ``shared.generate``'s loop),
    then record, for each new character, what its prediction attended to.

    ``layer`` defaults to the last layer; ``head=None`` averages the layer's heads (see the module
    docstring for why). Sampling uses its own generator seeded with ``seed`` (reproducible).
    """
    cfg = model.config
    layer = cfg.n_layer - 1 if layer is None else layer
    check_layer_head(layer, head, cfg.n_layer, cfg.n_head)
    if max_new_chars < 1:
        raise CourseError(f"max_new_chars must be at least 1, got {max_new_chars}")
    if temperature <= 0:
        raise CourseError(f"temperature must be > 0, got {temperature}")
    prompt_idx = encode_text(model, tokenizer, prompt[-cfg.block_size :])  # (1, T0); checks it
    generator = torch.Generator(device=prompt_idx.device).manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        ids = generate_ids(
            model, prompt_idx, max_new_chars, temperature, generator=generator, use_cache=False,
            num_threads=num_threads,
        )[0]  # fmt: skip
        steps = []
        # the fastest thread count, timed on the first frames (unless num_threads forces one)
        with tuned_threads(num_threads) as tuner:
            for t in range(prompt_idx.size(1), ids.size(0)):  # t: where a new character is
                with tuner.step():
                    context = ids[max(0, t - cfg.block_size) : t]  # what the model saw
                    attn = model.attention_weights(context[None])[layer, 0]  # (n_head, T, T)
                row = attn[:, -1, :] if head is None else attn[head : head + 1, -1, :]  # (h, T)
                text = tokenizer.decode(context.tolist())
                new_char = tokenizer.decode([int(ids[t])])
                labels = getattr(tokenizer, "token_labels", None)  # BPE: one label per token
                if labels is not None:
                    text, new_char = labels(context), tokenizer.itos[int(ids[t])]
                steps.append(AttentionStep(text, new_char, row.mean(0).float().cpu()))
    finally:
        model.train(was_training)
    return steps
