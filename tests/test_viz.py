"""shared.viz: attention weights, heatmaps, the attention GIF and `python -m shared viz`."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from shared import viz, viz_heads
from shared.__main__ import main
from shared.course import gif
from shared.data import CharTokenizer
from shared.engine.errors import CourseError
from shared.model import GPT, GPTConfig

SAMPLE = "En un lugar de la Mancha,\n¿quién «era» el señor Quijote? Sí, y tú, á é ñ."
ROOT = Path(__file__).resolve().parent.parent


def tiny_gpt(block_size: int = 16, n_layer: int = 2, n_head: int = 3, seed: int = 0):
    """A random GPT with weights large enough that heads differ (fresh GPTs attend uniformly)."""
    tokenizer = CharTokenizer(SAMPLE)
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size,
        block_size=block_size,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=4 * n_head,
    )
    torch.manual_seed(seed)
    model = GPT(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.6)
    return model.eval(), tokenizer


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models: one thread is fastest and doesn't fight the other tests for the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    return tiny_gpt()


# ----------------------------------------------------------------------------- weights


def test_collect_attention_is_probabilities_and_causal(tiny):
    model, tokenizer = tiny
    text = SAMPLE[:12]
    attn = viz.collect_attention(model, tokenizer, text)
    assert attn.shape == (2, 3, 12, 12)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 3, 12), atol=1e-5)
    assert (attn >= 0).all()
    future = torch.triu(torch.ones(12, 12, dtype=torch.bool), diagonal=1)
    assert (attn[..., future] == 0).all()
    # the teaching path's weights, untouched
    idx = torch.tensor([tokenizer.encode(text)])
    assert torch.allclose(attn, model.attention_weights(idx)[:, 0])
    # heads really differ (so the tests below can tell them apart)
    assert not torch.allclose(attn[0, 0], attn[0, 1], atol=1e-3)


@pytest.mark.parametrize(
    "text, message",
    [("", "empty"), ("x" * 17, "block_size=16"), ("hola \u00e7", "not in the model's vocabulary")],
)
def test_collect_attention_rejects_bad_text(tiny, text, message):
    model, tokenizer = tiny
    with pytest.raises(CourseError, match=message):
        viz.collect_attention(model, tokenizer, text)


def test_head_weights_picks_layer_then_head(tiny):
    model, tokenizer = tiny
    attn = viz.collect_attention(model, tokenizer, SAMPLE[:8])
    assert torch.equal(viz.head_weights(model, tokenizer, SAMPLE[:8], 1, 2), attn[1, 2])
    with pytest.raises(CourseError, match="layer 2 is out of range"):
        viz.head_weights(model, tokenizer, "la", 2, 0)
    with pytest.raises(CourseError, match="head 3 is out of range"):
        viz.head_weights(model, tokenizer, "la", 0, 3)


def test_visible_chars_show_whitespace_and_keep_spanish():
    assert viz.visible_chars("¿a ñ\n«»\t") == ["¿", "a", "␣", "ñ", "↵", "«", "»", "⇥"]
    assert viz.visible_char("\x07") == "\\x07"


def test_visible_glyphs_exist_in_matplotlib_default_fonts():
    from fontTools.ttLib import TTFont
    from matplotlib import font_manager

    for family in ("DejaVu Sans", "DejaVu Sans Mono"):
        cmap = TTFont(font_manager.findfont(family, fallback_to_default=False)).getBestCmap()
        missing = [g for g in "␣↵⇥¿ñá«»" if ord(g) not in cmap]
        assert not missing, f"{family} lacks {missing}"


# ----------------------------------------------------------------------------- heatmaps


def _image_data(ax) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(ax.images[0].get_array(), dtype=float), np.nan)


def test_plot_head_returns_figure_with_visible_labels_and_blank_future(tiny):
    model, tokenizer = tiny
    text = "¿y tú\nqué?"
    attn = viz.collect_attention(model, tokenizer, text)
    fig = viz.plot_head(attn[1, 0], text, title="layer 1, head 0")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    fig.canvas.draw()  # Agg, off-screen: works with no display
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["¿", "y", "␣", "t", "ú", "↵", "q", "u", "é", "?"]
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    data = _image_data(ax)
    upper = np.triu(np.ones((10, 10), dtype=bool), k=1)
    assert np.isnan(data[upper]).all()  # the future is blank, not zero
    assert np.allclose(data[~upper], attn[1, 0].numpy()[~upper])
    assert ax.images[0].colorbar is not None


def test_plot_head_rejects_mismatched_text(tiny):
    with pytest.raises(CourseError, match="shape"):
        viz.plot_head(torch.eye(4), "abc")


def test_plot_all_heads_grid(tiny):
    model, tokenizer = tiny
    text = SAMPLE[:10]
    attn = viz.collect_attention(model, tokenizer, text)
    fig = viz.plot_all_heads(attn, text)
    assert isinstance(fig, Figure)
    heatmaps = [ax for ax in fig.axes if ax.images]
    assert len(heatmaps) == 2 * 3
    assert [ax.get_title() for ax in heatmaps[:3]] == [f"layer 0, head {h}" for h in range(3)]
    assert np.allclose(np.nan_to_num(_image_data(heatmaps[4])), attn[1, 1].numpy())
    fig.canvas.draw()


# ----------------------------------------------------------------------------- naming heads


WORDS = "ab cdef ghijk lm"  # words start at 0, 3, 8, 14


def planted(text: str, key_of) -> torch.Tensor:
    """A (T, T) head that puts all of each query's attention on key_of(query)."""
    T = len(text)
    head = torch.zeros(T, T)
    head[torch.arange(T), torch.tensor([key_of(i) for i in range(T)])] = 1.0
    return head


def word_start_of(i: int) -> int:
    return max(s for s in (0, 3, 8, 14) if s <= i)


def test_pattern_cells_are_disjoint_and_word_starts_are_3_back():
    cells = viz_heads.pattern_cells(WORDS)
    seen = set()
    for queries, keys in cells.values():
        pairs = set(zip(queries.tolist(), keys.tolist(), strict=True))
        assert not pairs & seen  # no cell belongs to two patterns
        seen |= pairs
    word = set(zip(*(t.tolist() for t in cells["word_start"]), strict=True))
    # queries 3+ letters after a word start inside the text (the word at 0 is the window's edge)
    assert word == {(6, 3), (7, 3), (11, 8), (12, 8), (13, 8)}
    assert set(cells["first"][0].tolist()) == set(range(3, len(WORDS)))


def test_head_scores_find_planted_patterns():
    T = len(WORDS)
    uniform = torch.tril(torch.ones(T, T))
    uniform = uniform / uniform.sum(-1, keepdim=True)
    attn = torch.stack(
        [
            torch.stack([uniform, planted(WORDS, lambda i: max(i - 1, 0))]),
            torch.stack([planted(WORDS, lambda i: max(i - 2, 0)), planted(WORDS, word_start_of)]),
        ]
    )  # (2 layers, 2 heads, T, T)
    scores = viz_heads.head_scores(attn, WORDS)
    assert viz_heads.best_head(scores, "previous") == (0, 1, pytest.approx(1.0))
    assert viz_heads.best_head(scores, "two_back") == (1, 0, pytest.approx(1.0))
    assert viz_heads.best_head(scores, "word_start") == (1, 1, pytest.approx(1.0))
    assert float(scores["word_start"][1, 0]) == 0.0  # looking two back is not a word start
    assert scores["self"].shape == (2, 2)
    even = viz_heads.even_spread_scores(WORDS)  # a uniform head scores the even spread exactly
    for name in viz_heads.PATTERNS:
        assert float(scores[name][0, 0]) == pytest.approx(even[name])
    assert viz_heads.even_spread_scores("abcd")["self"] == pytest.approx(
        (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4
    )


def test_a_head_that_counts_distance_is_not_a_word_start_head():
    text = "En un lugar de la Mancha, de cuyo nombre no quiero acordarme"
    three_back = planted(text, lambda i: max(i - 3, 0))
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == " "]
    word = planted(text, lambda i: max(s for s in starts if s <= i))
    attn = torch.stack([three_back, word])[None]  # (1 layer, 2 heads, T, T)
    scores = viz_heads.head_scores(attn, text)
    same = viz_heads.same_distance_scores(attn, text)
    even = viz_heads.even_spread_scores(text)
    # the distance head lands on many word starts, far above an even spread...
    assert float(scores["word_start"][0, 0]) > 3 * even["word_start"]
    # ...but looks just as hard at other characters 3 back: not a finding
    assert not viz_heads.is_finding(
        scores["word_start"][0, 0], even["word_start"], same["word_start"][0, 0]
    )
    assert viz_heads.is_finding(
        scores["word_start"][0, 1], even["word_start"], same["word_start"][0, 1]
    )
    assert torch.isnan(same["previous"]).all()  # every cell one back is "previous"


def test_is_finding_is_the_stated_rule():
    assert viz_heads.FINDING_RATIO == 3.0
    assert viz_heads.is_finding(0.31, 0.10)
    assert not viz_heads.is_finding(0.29, 0.10)
    assert not viz_heads.is_finding(0.90, 0.10, same_distance=0.31)
    assert viz_heads.is_finding(0.90, 0.10, same_distance=0.29)
    assert not viz_heads.is_finding(float("nan"), 0.10)


def test_head_scores_without_long_words_is_nan_not_a_crash():
    attn = torch.tril(torch.ones(4, 4)).expand(1, 2, 4, 4) / torch.arange(1, 5).view(4, 1)
    scores = viz_heads.head_scores(attn, "a bc")
    assert torch.isnan(scores["word_start"]).all()
    assert not viz_heads.is_finding(scores["word_start"][0, 0], 0.1)
    assert viz_heads.best_head(scores, "previous")[:2] == (0, 0)
    with pytest.raises(CourseError, match="at least 4"):
        viz_heads.head_scores(attn[..., :3, :3], "a b")


def test_average_head_scores_over_texts(tiny):
    model, tokenizer = tiny
    texts = [SAMPLE[:16], SAMPLE[16:32]]
    result = viz_heads.average_head_scores(model, tokenizer, texts)
    one = viz_heads.head_scores(viz.collect_attention(model, tokenizer, texts[0]), texts[0])
    two = viz_heads.head_scores(viz.collect_attention(model, tokenizer, texts[1]), texts[1])
    assert torch.allclose(result.scores["previous"], (one["previous"] + two["previous"]) / 2)
    assert result.scores["self"].shape == result.same_distance["first"].shape == (2, 3)
    assert set(result.even) == set(viz_heads.PATTERNS)
    with pytest.raises(CourseError, match="at least one text"):
        viz_heads.average_head_scores(model, tokenizer, [])


# ----------------------------------------------------------------------------- GIF


def test_attention_steps_follow_the_generation(tiny):
    model, tokenizer = tiny
    steps = viz.attention_steps(model, tokenizer, "En un", 14, layer=0, seed=3)
    assert len(steps) == 14
    for i, step in enumerate(steps):
        assert len(step.context) == min(5 + i, 16)  # cropped to block_size
        assert step.weights.shape == (len(step.context),)
        assert math.isclose(float(step.weights.sum()), 1.0, rel_tol=1e-5)
        attn = viz.collect_attention(model, tokenizer, step.context)
        assert torch.allclose(step.weights, attn[0, :, -1].mean(0), atol=1e-6)  # head average
        if i:
            assert step.context == (steps[i - 1].context + steps[i - 1].new_char)[-16:]
    again = viz.attention_steps(model, tokenizer, "En un", 14, layer=0, seed=3)
    assert [s.new_char for s in again] == [s.new_char for s in steps]  # seeded


def test_attention_steps_one_head_and_errors(tiny):
    model, tokenizer = tiny
    (step,) = viz.attention_steps(model, tokenizer, "la", 1, layer=1, head=2)
    assert torch.allclose(step.weights, viz.collect_attention(model, tokenizer, "la")[1, 2, -1])
    with pytest.raises(CourseError, match="layer 5"):
        viz.attention_steps(model, tokenizer, "la", 2, layer=5)
    with pytest.raises(CourseError, match="not in the model's vocabulary"):
        viz.attention_steps(model, tokenizer, "la \u00e7", 2)
    with pytest.raises(CourseError, match="at least 1"):
        viz.attention_steps(model, tokenizer, "la", 0)


def test_frames_and_gif_read_back(tiny, tmp_path):
    model, tokenizer = tiny
    frames = gif.attention_frames(model, tokenizer, "En un lugar", 6, seed=1)
    assert len(frames) == 6
    assert {f.shape for f in frames} == {frames[0].shape}
    height, width, channels = frames[0].shape
    assert (width, channels) == (640, 3) and 60 < height < 400
    assert frames[0].dtype == np.uint8
    assert not np.array_equal(frames[0], frames[1])  # the text grows
    path = gif.save_gif(frames, tmp_path / "sub" / "a.gif", fps=4)
    back = iio.imread(path, index=None)
    assert back.shape[:3] == (6, height, width)
    assert iio.immeta(path, index=0)["duration"] == 250
    assert path.stat().st_size < 300_000
    red = np.array(gif.MARKER_RGB)
    for frame in back:  # the shared palette keeps the new character's red frame exactly
        assert (np.abs(frame[..., :3].astype(int) - red).sum(-1) == 0).sum() > 20
    per_frame = gif.save_gif(frames, tmp_path / "b.gif", colors=None)
    assert iio.imread(per_frame, index=None).shape[:3] == (6, height, width)


def test_full_context_frames_use_two_rows():
    # block_size=64: 64 context characters + the new one fit 2 rows of 33, not 3 rows of 32.
    weights = torch.full((64,), 1 / 64)
    steps = [viz.AttentionStep("a b\n" * 16, "x", weights)]
    (frame,) = gif.render_frames(steps)
    (short,) = gif.render_frames([viz.AttentionStep("ab", "c", torch.tensor([0.5, 0.5]))])
    assert frame.shape[1] == 33 * 20 and short.shape[1] == 640
    assert frame.shape[0] == short.shape[0] + 26  # one more row of characters


def test_save_gif_rejects_bad_input(tmp_path):
    frame = np.zeros((10, 20, 3), dtype=np.uint8)
    with pytest.raises(CourseError, match="same size"):
        gif.save_gif([frame, np.zeros((11, 20, 3), dtype=np.uint8)], tmp_path / "a.gif")
    with pytest.raises(CourseError, match=r"\.gif"):
        gif.save_gif([frame], tmp_path / "a.png")
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(CourseError, match="cannot create the folder"):
        gif.save_gif([frame], blocker / "a.gif")


# ----------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from shared.engine.checkpoint import save_checkpoint

    model, tokenizer = tiny_gpt()
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "gpt.pt", model=model, tokenizer=tokenizer
    )


def test_cli_writes_gif_and_pngs(checkpoint, tmp_path, capsys):
    out = tmp_path / "out" / "attention.gif"
    args = ["viz", "--checkpoint", str(checkpoint), "--prompt", "la", "--max-new-chars", "4"]
    assert main([*args, "--out", str(out), "--png-dir", str(tmp_path / "png"), "--head", "1"]) == 0
    assert iio.imread(out, index=None).shape[0] == 4
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [
        "all_heads.png",
        "layer1_head1.png",
    ]
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--layer", "2"], "layer 2 is out of range"),
        (["--head", "-1"], "head -1 is out of range"),
        (["--prompt", "\u00e7a"], "not in the model's vocabulary"),
        (["--max-new-chars", "0"], "--max-new-chars: must be > 0"),
    ],
)
def test_cli_bad_input_is_one_error_line(checkpoint, tmp_path, capsys, extra, message):
    out = tmp_path / "a.gif"
    assert main(["viz", "--checkpoint", str(checkpoint), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_missing_checkpoint_and_unwritable_out(checkpoint, tmp_path, capsys):
    assert (
        main(["viz", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "a.gif")])
        == 2
    )
    assert "no checkpoint at" in capsys.readouterr().err
    blocker = tmp_path / "file.txt"
    blocker.write_text("x", encoding="utf-8")
    assert main(["viz", "--checkpoint", str(checkpoint), "--out", str(blocker / "a.gif")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot create the folder") and len(err.splitlines()) == 1
    out = tmp_path / "a.gif"
    args = ["viz", "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main([*args, "--png-dir", str(blocker / "png")]) == 2  # checked before generating
    assert capsys.readouterr().err.startswith("error: cannot create the folder")
    assert main([*args, "--fps", "0"]) == 2
    assert "--fps: must be >= 0.1" in capsys.readouterr().err
    assert not out.exists()


def test_cli_runs_headless_without_display(checkpoint, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DISPLAY", "MPLBACKEND"}}
    env["OMP_NUM_THREADS"] = "1"  # a tiny model: one thread is fastest
    out = tmp_path / "a.gif"
    cmd = [sys.executable, "-m", "shared", "viz", "--checkpoint", str(checkpoint)]
    result = subprocess.run(
        [*cmd, "--prompt", "el", "--max-new-chars", "2", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert iio.imread(out, index=None).shape[0] == 2


def test_heatmaps_that_leave_characters_out_say_so(tiny, tmp_path, monkeypatch):
    model, tokenizer = tiny
    titles = {}

    def record(fig, path, **kwargs):  # what each saved figure says about its text
        texts = [t.get_text() for t in fig.texts] + [ax.get_title() for ax in fig.axes]
        titles[Path(path).name] = " ".join(texts)

    monkeypatch.setattr(Figure, "savefig", record)
    gif.save_heatmaps(model, tokenizer, "la Mancha", tmp_path, layer=1, head=None, left_out=7)
    assert set(titles) == {"all_heads.png", "layer1_mean.png"}
    for said in titles.values():
        assert "the last 9 of 16 characters (the first 7 are left out)" in said
    titles.clear()
    gif.save_heatmaps(model, tokenizer, "la Mancha", tmp_path, layer=1, head=0)
    assert not any("left out" in said for said in titles.values())
