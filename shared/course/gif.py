"""The animated attention GIF renderer (lesson 08 and ``python -m shared viz``).

One frame per generated character. The model writes text one character at a time; to choose
character t it reads the context c_0 .. c_{t-1}, and the *last* position of that context is the
query whose output becomes the prediction. Each frame shows that query's attention row: every
earlier character is shaded by how much the prediction looked at it, and the character it then
wrote is framed in red. The text grows from frame to frame.

By default a frame shows the **last layer, averaged over its heads**. Each head looks for
something different, and the layer's output projection mixes all of them, so the average is a
fair one-picture summary of where the layer's information came from and works for any
checkpoint; a single head (``head=``) is sharper but tells only part of the story.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from shared.course.defaults import GIF_NEW_CHARS, GIF_PROMPT
from shared.engine.errors import CourseError
from shared.engine.progress import Progress
from shared.viz import AttentionStep, attention_steps

DEFAULT_PROMPT = GIF_PROMPT
DEFAULT_NEW_CHARS = GIF_NEW_CHARS
FRAME_WIDTH_PX = 640  # fits a README column
COLUMNS = 32  # characters per row in a frame
CELL_PX = FRAME_WIDTH_PX // COLUMNS  # 20 px per character
ROW_PX = 26
HEADER_PX = 46
FOOTER_PX = 8
DPI = 100
MARKER_RGB = (214, 39, 40)  # the red frame around the new character (#d62728)


class FrameRenderer:
    """Draws steps into equally sized RGB frames with one reusable Agg figure (fast, headless)."""

    def __init__(self, max_cells: int, title: str, columns: int | None = None):
        import matplotlib as mpl
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.colors import PowerNorm
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        if columns is None:  # block_size + 1 cells (e.g. 65) fit 2 rows of 33, not 3 rows of 32
            columns = COLUMNS + 1 if max_cells % COLUMNS == 1 else COLUMNS
        self.columns = columns
        self.rows = max(1, math.ceil(max_cells / columns))
        self.title = title
        width_px = columns * CELL_PX
        height_px = HEADER_PX + self.rows * ROW_PX + FOOTER_PX
        self.fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
        FigureCanvasAgg(self.fig)  # render off-screen: no display, any backend
        self.fig.patch.set_facecolor("white")
        ax = self.fig.add_axes(
            (0, FOOTER_PX / height_px, 1, self.rows * ROW_PX / height_px)
        )  # the character grid
        ax.set_axis_off()
        ax.set_xlim(0, columns)
        ax.set_ylim(self.rows, 0)
        # sqrt colour scale over 0..1 (the same in every frame): small weights stay visible.
        self.norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
        cmap = mpl.colormaps["Blues"].with_extremes(bad="white")
        self.image = ax.imshow(
            np.full((self.rows, columns), np.nan),
            cmap=cmap,
            norm=self.norm,
            extent=(0, columns, self.rows, 0),
            interpolation="nearest",
            aspect="auto",
        )
        self.cells = [
            ax.text(c + 0.5, r + 0.55, "", ha="center", va="center", fontsize=11,
                    fontfamily="DejaVu Sans Mono", parse_math=False)
            for r in range(self.rows) for c in range(columns)
        ]  # fmt: skip
        red = tuple(c / 255 for c in MARKER_RGB)
        self.marker = Rectangle((0, 0), 1, 1, fill=False, edgecolor=red, linewidth=2.0)
        ax.add_patch(self.marker)
        self.heading = self.fig.text(0.01, 1 - 18 / height_px, title, fontsize=11, va="center")
        self.subheading = self.fig.text(
            0.01, 1 - 36 / height_px, "", fontsize=9, color="#555555", va="center"
        )
        self.max_cells = self.rows * columns

    def render(self, step: AttentionStep, number: int, total: int) -> np.ndarray:
        """One frame (H, W, 3) uint8: context shaded by weight, the new character framed."""
        from shared.viz import visible_char

        chars = [*step.context, step.new_char]  # one cell per character (BPE: per token)
        weights = step.weights.detach().float().cpu().numpy()
        if len(chars) > self.max_cells:  # keep the most recent characters that fit
            drop = len(chars) - self.max_cells
            chars, weights = chars[drop:], weights[drop:]
        grid = np.full(self.max_cells, np.nan)
        grid[: len(weights)] = weights
        self.image.set_data(grid.reshape(self.rows, self.columns))
        for i, cell in enumerate(self.cells):
            ch = chars[i] if i < len(chars) else ""
            cell.set_text(visible_char(ch) if ch else "")
            dark = i < len(weights) and self.norm(weights[i]) > 0.6
            if ch.isspace():  # ␣ and ↵ in grey, so they read as marks, not letters
                cell.set_color("#d0d0d0" if dark else "#909090")
            else:
                cell.set_color("white" if dark else "black")
        row, col = divmod(len(chars) - 1, self.columns)
        self.marker.set_xy((col, row))
        self.subheading.set_text(
            f"character {number}/{total}: wrote {visible_char(step.new_char)!r} (red) "
            f"after looking at the blue ones (darker = more attention)"
        )
        self.fig.canvas.draw()
        return np.asarray(self.fig.canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3) uint8


def describe_view(layer: int, head: int | None, n_head: int) -> str:
    what = f"head {head}" if head is not None else f"average of its {n_head} heads"
    return f"Attention while writing: layer {layer}, {what}"


def render_frames(
    steps: list[AttentionStep], title: str = "Attention while writing", progress: bool = False
):
    """One (H, W, 3) uint8 frame per step, all the same size (about 640 px wide)."""
    if not steps:
        raise CourseError("no steps to draw; generate at least one character")
    max_cells = max(len(s.context) + 1 for s in steps)
    renderer = FrameRenderer(max_cells, title)
    bar = Progress(len(steps), "drawing the GIF", "frames", enabled=progress)
    frames = []
    for i, step in enumerate(steps):
        frames.append(renderer.render(step, i + 1, len(steps)))
        bar.update(i + 1)
    bar.close()
    return frames


def attention_frames(
    model,
    tokenizer,
    prompt: str,
    max_new_chars: int,
    layer: int | None = None,
    head: int | None = None,
    seed: int = 0,
    temperature: float = 1.0,
) -> list[np.ndarray]:
    """``attention_steps`` drawn by ``render_frames``: ``max_new_chars`` frames (H, W, 3) uint8."""
    steps = attention_steps(model, tokenizer, prompt, max_new_chars, layer, head, seed, temperature)
    shown_layer = model.config.n_layer - 1 if layer is None else layer
    return render_frames(steps, describe_view(shown_layer, head, model.config.n_head))


def _make_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CourseError(f"cannot create the folder {folder} ({exc.strerror})") from None
    return folder


def _writable_file(path: str | Path, suffix: str) -> Path:
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise CourseError(f"{path} should end in {suffix}")
    if path.is_dir():
        raise CourseError(f"{path} is a folder; give a file name ending in {suffix}")
    _make_folder(path.parent)
    return path


def shared_palette(frames, colors: int = 64, keep=(MARKER_RGB, (0, 0, 0), (255, 255, 255))):
    """One palette for every frame: ``colors - len(keep)`` median-cut colours from a sample of
    frames, plus the exact ``keep`` colours (so the small red marker never fades to brown)."""
    from PIL import Image

    step = max(1, len(frames) // 8)
    sample = Image.fromarray(np.concatenate([np.asarray(f) for f in frames[::step]], axis=0))
    base = sample.quantize(colors=colors - len(keep), method=Image.Quantize.MEDIANCUT)
    palette = base.getpalette()[: 3 * (colors - len(keep))]
    for rgb in keep:
        palette += list(rgb)
    image = Image.new("P", (1, 1))
    image.putpalette(palette)
    return image


def save_gif(
    frames, path: str | Path, fps: float = 5.0, hold_last: float = 2.0, colors: int | None = 64
) -> Path:
    """Write frames as a looping GIF (``1/fps`` s per frame, the last one held ``hold_last`` s).

    ``colors``: one shared palette of that many colours for all frames, without dithering: about
    half the file size of per-frame palettes, as frames then differ only where they changed.
    ``None`` lets Pillow pick 256 colours per frame.
    """
    import imageio.v3 as iio
    from PIL import Image

    path = _writable_file(path, ".gif")
    if len(frames) == 0:
        raise CourseError("no frames to save")
    if len({np.asarray(f).shape for f in frames}) != 1:
        raise CourseError("all frames must have the same size (H, W, 3)")
    if fps <= 0:
        raise CourseError(f"fps must be > 0, got {fps}")
    if colors is not None:
        palette = shared_palette(frames, colors)
        frames = [
            np.asarray(
                Image.fromarray(np.asarray(f)[..., :3])
                .quantize(palette=palette, dither=Image.Dither.NONE)
                .convert("RGB")
            )
            for f in frames
        ]
    durations = [1000.0 / fps] * len(frames)  # milliseconds
    durations[-1] = max(durations[-1], 1000.0 * hold_last)
    try:
        iio.imwrite(path, np.stack(frames), extension=".gif", duration=durations, loop=0)
    except OSError as exc:
        raise CourseError(f"cannot write {path} ({exc.strerror or exc})") from None
    return path


def make_attention_gif(
    checkpoint,
    out: str | Path,
    prompt: str = DEFAULT_PROMPT,
    layer: int | None = None,
    head: int | None = None,
    max_new_chars: int = DEFAULT_NEW_CHARS,
    seed: int = 0,
    temperature: float = 0.8,
    fps: float = 5.0,
    png_dir: str | Path | None = None,
    progress: bool = False,
    num_threads: int | None = None,
) -> Path:
    """Checkpoint (a path or a loaded ``Checkpoint``) -> attention GIF at ``out``; returns the path.
    ``progress``: show the frames being drawn (a bar, or a line every ~15 s in a log);
    ``num_threads``: CPU threads (default: the fastest, timed on the first characters).

    With ``png_dir``, also writes heatmaps of the finished text: ``all_heads.png`` and the chosen
    layer's view (``layer{L}_head{H}.png`` or ``layer{L}_mean.png``).
    """
    from shared.engine.checkpoint import load_checkpoint

    out = _writable_file(out, ".gif")  # fail before the slow part
    if fps <= 0:
        raise CourseError(f"fps must be > 0, got {fps}")
    if png_dir is not None:
        _make_folder(png_dir)
    ckpt = load_checkpoint(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
    model, tokenizer = ckpt.model, ckpt.tokenizer
    # the thread count is timed on the first characters and frames (shared.engine.threads)
    steps = attention_steps(
        model, tokenizer, prompt, max_new_chars, layer, head, seed, temperature, num_threads
    )
    shown_layer = model.config.n_layer - 1 if layer is None else layer
    frames = render_frames(steps, describe_view(shown_layer, head, model.config.n_head), progress)
    save_gif(frames, out, fps=fps)
    if png_dir is not None:
        final_text = prompt + "".join(step.new_char for step in steps)
        shown = final_text[-HEATMAP_CHARS:]  # more would make the labels unreadable
        save_heatmaps(model, tokenizer, shown, png_dir, shown_layer, head,
                      left_out=len(final_text) - len(shown))  # fmt: skip
    return out


HEATMAP_CHARS = 48


def save_heatmaps(
    model, tokenizer, text: str, png_dir, layer: int, head: int | None, left_out: int = 0
) -> list[Path]:
    """Write ``all_heads.png`` and one layer/head heatmap of ``text`` into ``png_dir``;
    ``left_out``: how many characters before ``text`` are not shown (the titles say so)."""
    from shared.viz import collect_attention, plot_all_heads, plot_head

    folder = _make_folder(png_dir)
    attn = collect_attention(model, tokenizer, text)  # (n_layer, n_head, T, T)
    one = attn[layer].mean(0) if head is None else attn[layer, head]  # (T, T)
    if hasattr(tokenizer, "token_labels"):  # BPE: label the tokens, not the characters
        text = tokenizer.token_labels(tokenizer.encode(text))
    name = f"layer{layer}_mean.png" if head is None else f"layer{layer}_head{head}.png"
    note = ""
    if left_out:
        note = (f"\nthe last {len(text)} of {len(text) + left_out} characters (the first "
                f"{left_out} are left out), read afresh")  # fmt: skip
    all_heads = plot_all_heads(attn, text)
    if note:
        all_heads.suptitle(all_heads._suptitle.get_text() + note)
    figures = {
        "all_heads.png": all_heads,
        name: plot_head(one, text, title=describe_view(layer, head, attn.shape[1]) + note),
    }
    paths = []
    for filename, fig in figures.items():
        try:
            fig.savefig(folder / filename, dpi=100)
        except OSError as exc:
            raise CourseError(f"cannot write {folder / filename} ({exc.strerror})") from None
        paths.append(folder / filename)
    return paths
