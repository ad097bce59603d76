"""Pictures for the notebooks: images, sound, attention, similarity, embeddings.

Every function returns a matplotlib Figure and never calls plt.show(). In a
notebook, leave the figure as the last expression of a cell to display it:

    viz.show_images(batch["image"], titles=batch["caption"])

To put several pictures side by side, make the axes with `subplots` and pass them in:

    fig, (left, right) = viz.subplots(1, 2)
    viz.show_waveform(wave, 16000, ax=left)
    viz.show_spectrogram(log_mel, ax=right)
    fig

`subplots` is plt.subplots except that pyplot forgets the figure at once, so
Jupyter shows it once (when you display it) instead of twice. Importing this module tells IPython to
draw a Figure as a PNG whatever matplotlib's backend is: with MPLBACKEND=Agg (as in the tests and the
site build) the inline backend is off, and a displayed figure would otherwise print `<Figure size …>`.

Images may be torch tensors (3, H, W) or (B, 3, H, W), uint8 in 0..255 or float
in 0..1; numpy arrays (H, W, 3); or PIL images.

Chinese labels: importing this module also puts an installed CJK font (Noto Sans CJK, Source Han Sans,
WenQuanYi, PingFang, Microsoft YaHei, …) behind matplotlib's default font, so Chinese glyphs fall back
to it (`use_cjk_fonts`). Without one it stays silent; `mmcourse doctor` says which package to install.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mmcourse.data import COLORS
from mmcourse.encoding.vision import as_chw, image_list


def display_figures_as_png() -> None:
    """Make the running IPython kernel draw every Figure as a PNG (matplotlib-inline's own formatter), unless a
    format is already set up for figures (the inline backend, `%config InlineBackend.figure_formats`). Outside
    IPython it does nothing."""
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import select_figure_formats
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    formatters = shell.display_formatter.formatters
    if any(Figure in formatters[kind].type_printers for kind in ("image/png", "image/svg+xml", "image/jpeg",
                                                                  "application/pdf") if kind in formatters):
        return
    select_figure_formats(shell, {"png"}, bbox_inches="tight")


display_figures_as_png()

# Fonts that draw Chinese, best first (Simplified Chinese faces before the others).
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", "Noto Sans CJK JP",
                "Noto Sans CJK TC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback", "PingFang SC",
                "Hiragino Sans GB", "Heiti SC", "STHeiti", "Microsoft YaHei", "SimHei", "Noto Serif CJK SC",
                "AR PL UMing CN", "Arial Unicode MS")
_CJK_FILE = re.compile(r"cjk|sourcehan|wqy|droidsansfallback|pingfang|hiragino|stheiti|msyh|simhei|uming|notosanssc",
                       re.IGNORECASE)


def cjk_fonts() -> list[str]:
    """The families of the installed fonts that draw Chinese, best first; [] when there is none.

    matplotlib lists the fonts it found when it built its cache; a font installed later (`apt-get install
    fonts-noto-cjk` after the first plot) is not in it, so the system's font folders are searched as well
    and what they hold is added to matplotlib's list for this process.
    """
    from matplotlib import font_manager

    def installed() -> list[str]:
        names = {font.name for font in font_manager.fontManager.ttflist}
        return [family for family in CJK_FAMILIES if family in names]

    if not installed():
        for path in font_manager.findSystemFonts():
            if _CJK_FILE.search(Path(path).name):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # an unreadable font file is skipped
                    continue
    return installed()


def use_cjk_fonts() -> list[str]:
    """Let figures draw Chinese: the best CJK font found goes after the fonts of `font.family`, so Latin text keeps
    the default font and each Chinese glyph falls back to the CJK one (matplotlib ≥ 3.6 falls back per glyph).
    Returns the CJK fonts found; without one it changes nothing and warns nothing (`mmcourse doctor` reports it)."""
    found = cjk_fonts()
    family = plt.rcParams["font.family"]
    family = [family] if isinstance(family, str) else list(family)
    if found and not set(found) & set(family):
        plt.rcParams["font.family"] = family + found[:1]
    return found


use_cjk_fonts()


def subplots(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] | None = None, **kwargs):
    """plt.subplots(nrows, ncols) → (Figure, axes), with the figure closed in pyplot so Jupyter shows it once."""
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, **kwargs)
    plt.close(fig)  # the figure still works; pyplot just stops tracking (and auto-showing) it
    return fig, axes


def _new_axes(ax, figsize: tuple[float, float]):
    """The axes to draw on: `ax` if given, else one on a fresh figure."""
    if ax is None:
        _, ax = subplots(figsize=figsize)
    return ax


def _as_tensor(x, name: str) -> torch.Tensor:
    """A float32 CPU copy of a tensor, numpy array or nested list."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32)
    try:
        return torch.as_tensor(np.asarray(x), dtype=torch.float32)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a tensor or an array of numbers, got {type(x).__name__}") from err


# ---------------------------------------------------------------- images


def to_hwc(image) -> np.ndarray:
    """One image as a numpy array (H, W, C) or (H, W) that imshow understands: uint8 stays 0..255, floats 0..1.

    The layout rules are preprocess_images' (mmcourse.encoding.vision.as_chw): a tensor, array or PIL image,
    channels first or last, grey, RGB or RGBA.
    """
    picture = as_chw(image).permute(1, 2, 0).numpy()  # (H, W, C)
    return picture[..., 0] if picture.shape[-1] == 1 else picture


def _imshow(ax, picture: np.ndarray):
    """imshow an (H, W, 3) or (H, W) picture from to_hwc; grey pictures keep their 0..255 or 0..1 scale."""
    if picture.ndim == 2:
        return ax.imshow(picture, cmap="gray", vmin=0, vmax=255 if picture.dtype == np.uint8 else 1)
    return ax.imshow(picture)


def show_images(images, titles=None, ncols: int = 4, size: float = 2.0) -> Figure:
    """A grid of images with optional titles (long captions are wrapped).

    images: a tensor (B, 3, H, W) or (3, H, W), a list of such tensors, numpy (H, W, 3) arrays
    or PIL images. titles: one string per image. Each image gets a `size`-inch square.
    """
    items = image_list(images)
    if titles is not None:
        if isinstance(titles, str):
            titles = [titles]
        if len(titles) != len(items):
            raise ValueError(f"got {len(titles)} titles for {len(items)} images; pass one title per image")
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    ncols = min(ncols, len(items))
    nrows = -(-len(items) // ncols)
    title_lines = 1
    wrapped = []
    if titles is not None:
        width = max(12, int(size * 11))  # characters per line at the default font size
        wrapped = [textwrap.fill(str(t), width) for t in titles]
        title_lines = max(w.count("\n") + 1 for w in wrapped)
    fig, axes = subplots(nrows, ncols, figsize=(size * ncols, (size + 0.18 * title_lines) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(items):
            fig.delaxes(ax)
            continue
        _imshow(ax, to_hwc(items[i]))
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(wrapped[i], fontsize=8)
    fig.tight_layout()
    return fig


def show_patch_grid(image, patch_size: int, ax=None, title=None) -> Figure:
    """The image cut into patch_size × patch_size patches, each labelled with its index (row-major).

    This is the order in which a ViT turns patches into tokens: index = row * (W / P) + col.
    """
    picture = to_hwc(image)
    height, width = picture.shape[:2]
    if patch_size < 1 or height % patch_size or width % patch_size:
        raise ValueError(f"the image is {height}×{width}, which patch_size={patch_size} does not divide; "
                         f"resize the image to a multiple of the patch size first")
    rows, cols = height // patch_size, width // patch_size
    ax = _new_axes(ax, (4, 4 * height / width))
    _imshow(ax, picture)
    for k in range(1, cols):
        ax.axvline(k * patch_size - 0.5, color="white", linewidth=0.8)
    for k in range(1, rows):
        ax.axhline(k * patch_size - 0.5, color="white", linewidth=0.8)
    fontsize = max(4, min(10, 120 / max(rows, cols)))
    for r in range(rows):
        for c in range(cols):
            ax.text((c + 0.5) * patch_size - 0.5, (r + 0.5) * patch_size - 0.5, str(r * cols + c),
                    color="white", ha="center", va="center", fontsize=fontsize,
                    bbox=dict(facecolor="black", alpha=0.4, linewidth=0, pad=1))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title if title is not None else f"{rows}×{cols} = {rows * cols} patches of {patch_size}×{patch_size}")
    return ax.figure


# ---------------------------------------------------------------- sound


def _mono(waveform, name: str = "waveform") -> np.ndarray:
    """(T,) float numpy array from a 1-D tensor or array; a clear error for 2-D (batch or stereo)."""
    wave = _as_tensor(waveform, name)
    if wave.dim() != 1:
        raise ValueError(f"{name} must be mono, shape (T,), got {tuple(wave.shape)}; for one channel of a "
                         f"(C, T) or (B, T) tensor pass {name}[0], or mix stereo to mono with {name}.mean(dim=0)")
    if wave.numel() == 0:
        raise ValueError(f"{name} is empty; pass at least one sample")
    if not bool(torch.isfinite(wave).all()):
        raise ValueError(f"{name} contains NaN or inf values")
    return wave.numpy()


def show_waveform(waveform, sample_rate: int, ax=None, title=None) -> Figure:
    """Amplitude over time. waveform: (T,) samples at `sample_rate` Hz; the x axis is in seconds."""
    wave = _mono(waveform)
    _check_rate(sample_rate)
    ax = _new_axes(ax, (8, 2.2))
    seconds = np.arange(wave.shape[0]) / sample_rate
    ax.plot(seconds, wave, linewidth=0.5)
    ax.set_xlim(0, wave.shape[0] / sample_rate)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    ax.set_title(title if title is not None else f"{wave.shape[0]} samples at {sample_rate} Hz")
    return ax.figure


def show_spectrogram(spec, sample_rate: int = 16000, hop_length: int = 160, ax=None, title=None,
                     ylabel: str = "mel bin") -> Figure:
    """A (log-)mel spectrogram spec (n_mels, frames) as an image; frame t starts at t·hop_length/sample_rate s."""
    values = _as_tensor(spec, "spec")
    if values.dim() != 2:
        hint = "; for one example of a batch pass spec[0]" if values.dim() == 3 else ""
        raise ValueError(f"spec must be (n_mels, frames), got {tuple(values.shape)}{hint}")
    _check_rate(sample_rate)
    if hop_length < 1:
        raise ValueError(f"hop_length must be a positive number of samples, got {hop_length}")
    n_mels, frames = values.shape
    ax = _new_axes(ax, (8, 2.6))
    seconds = frames * hop_length / sample_rate
    image = ax.imshow(values.numpy(), origin="lower", aspect="auto", cmap="magma",
                      extent=(0, seconds, 0, n_mels), interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, pad=0.01)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title if title is not None else f"{n_mels} × {frames} frames (hop {hop_length / sample_rate * 1000:g} ms)")
    return ax.figure


def audio_player(waveform, sample_rate: int):
    """An IPython Audio widget that plays waveform (T,) at `sample_rate` Hz.

    A waveform already in [-1, 1] is played as is (normalize=False), so quiet stays quiet;
    a louder one is scaled down to fit.
    """
    from IPython.display import Audio

    wave = _mono(waveform)
    _check_rate(sample_rate)
    in_range = float(np.abs(wave).max()) <= 1.0
    return Audio(wave, rate=int(sample_rate), normalize=not in_range)


# ---------------------------------------------------------------- attention and similarity


def _heatmap(ax, matrix: torch.Tensor, cmap: str, vmin=None, vmax=None):
    image = ax.imshow(matrix.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, pad=0.01)
    return image


def _tick_labels(ax, x_labels, y_labels) -> None:
    if x_labels is not None:
        long = max(len(str(s)) for s in x_labels) > 3 if len(x_labels) else False
        ax.set_xticks(range(len(x_labels)), [str(s) for s in x_labels], rotation=90 if long else 0, fontsize=8)
    if y_labels is not None:
        ax.set_yticks(range(len(y_labels)), [str(s) for s in y_labels], fontsize=8)


def show_attention(weights, x_labels=None, y_labels=None, ax=None, title=None) -> Figure:
    """Attention weights (Lq, Lk) as a heat map: row i says where query i looks among the keys.

    x_labels: Lk key names (e.g. tokens or patch numbers); y_labels: Lq query names.
    """
    matrix = _as_tensor(weights, "weights")
    if matrix.dim() != 2:
        hint = "; pick one example and head first, e.g. weights[0, 0] for (B, heads, Lq, Lk)" if matrix.dim() > 2 else ""
        raise ValueError(f"weights must be (Lq, Lk), got {tuple(matrix.shape)}{hint}")
    _check_labels(x_labels, matrix.shape[1], "x_labels", "columns (keys)")
    _check_labels(y_labels, matrix.shape[0], "y_labels", "rows (queries)")
    width = min(12.0, max(3.0, 0.3 * matrix.shape[1] + 1.5))  # long key axes (1500 audio states) stay on screen
    height = min(8.0, max(2.5, 0.3 * matrix.shape[0] + 1))
    ax = _new_axes(ax, (width, height))
    _heatmap(ax, matrix, "viridis", vmin=0 if float(matrix.min()) >= 0 else None)  # weights start at 0
    _tick_labels(ax, x_labels, y_labels)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(title if title is not None else "attention weights")
    return ax.figure


def show_attention_on_image(image, patch_weights, patch_size: int, ax=None, title=None) -> Figure:
    """Per-patch weights (N,) laid over the image, N = (H / P) · (W / P) in row-major patch order.

    Typical source: the [CLS] token's attention to the patches, weights[0, 1:] of a ViT layer.
    """
    picture = to_hwc(image)
    height, width = picture.shape[:2]
    if patch_size < 1 or height % patch_size or width % patch_size:
        raise ValueError(f"the image is {height}×{width}, which patch_size={patch_size} does not divide")
    rows, cols = height // patch_size, width // patch_size
    weights = _as_tensor(patch_weights, "patch_weights")
    if weights.dim() != 1:
        raise ValueError(f"patch_weights must be (N,), one weight per patch, got {tuple(weights.shape)}")
    if weights.numel() == rows * cols + 1:
        raise ValueError(f"got {weights.numel()} weights for {rows * cols} patches: that is one too many, "
                         f"probably the [CLS] token's; pass patch_weights[1:]")
    if weights.numel() != rows * cols:
        raise ValueError(f"patch_weights has {weights.numel()} values but a {height}×{width} image has "
                         f"{rows}×{cols} = {rows * cols} patches of {patch_size}×{patch_size}")
    ax = _new_axes(ax, (4, 4 * height / width))
    _imshow(ax, picture)
    overlay = ax.imshow(weights.reshape(rows, cols).numpy(), cmap="inferno", alpha=0.55, interpolation="nearest",
                        extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    ax.figure.colorbar(overlay, ax=ax, pad=0.01, fraction=0.046)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title if title is not None else "attention per patch")
    return ax.figure


def show_similarity(sim, row_labels=None, col_labels=None, ax=None, title=None) -> Figure:
    """A similarity matrix sim (N, M), e.g. image embeddings · text embeddings for retrieval.

    Each row's best match is outlined; in a good retrieval model those boxes sit on the
    diagonal (row i matches column i). Values are written in the cells when the matrix is small.
    """
    matrix = _as_tensor(sim, "sim")
    if matrix.dim() != 2:
        raise ValueError(f"sim must be (N, M), got {tuple(matrix.shape)}")
    _check_labels(row_labels, matrix.shape[0], "row_labels", "rows")
    _check_labels(col_labels, matrix.shape[1], "col_labels", "columns")
    n, m = matrix.shape
    label_width = 0.07 * max((len(str(s)) for s in row_labels), default=0) if row_labels is not None else 0
    ax = _new_axes(ax, (max(3.0, 0.45 * m + 1.5) + label_width, max(2.5, 0.45 * n + 1)))
    _heatmap(ax, matrix, "coolwarm")
    best = matrix.argmax(dim=1)
    for i in range(n):
        ax.add_patch(Rectangle((int(best[i]) - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5))
    if n * m <= 144:
        for i in range(n):
            for j in range(m):
                ax.text(j, i, f"{float(matrix[i, j]):.2f}", ha="center", va="center", fontsize=7)
    _tick_labels(ax, col_labels, row_labels)
    ax.set_title(title if title is not None else "similarity (box = best match in the row)")
    return ax.figure


# ---------------------------------------------------------------- embeddings


def pca_2d(points) -> tuple[torch.Tensor, torch.Tensor]:
    """Project points (N, D) onto their first two principal components.

    Returns (coords (N, 2), explained (2,)), explained = each component's share of the variance.
    """
    x = _as_tensor(points, "points")
    if x.dim() != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"points must be (N, D) with N ≥ 2 and D ≥ 2, got {tuple(x.shape)}")
    x = x - x.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)  # x = U S Vᴴ; rows of Vᴴ are the components
    coords = x @ vh[:2].T  # (N, 2)
    variance = s**2
    explained = variance[:2] / variance.sum().clamp_min(1e-12)
    return coords, explained


def show_embeddings(points, labels, ax=None, title=None) -> Figure:
    """A 2-D PCA scatter of points (N, D), one colour per distinct label (labels: N strings or ints).

    A label that names one of the dataset's colours ("red", "green", …) is drawn in that colour."""
    coords, explained = pca_2d(points)
    if len(labels) != coords.shape[0]:
        raise ValueError(f"got {len(labels)} labels for {coords.shape[0]} points; pass one label per point")
    labels = [x.item() if isinstance(x, torch.Tensor) else x for x in labels]
    ax = _new_axes(ax, (4.5, 4))
    for label in dict.fromkeys(labels):  # distinct labels, in order of first appearance
        chosen = [i for i, x in enumerate(labels) if x == label]
        rgb = COLORS.get(label) if isinstance(label, str) else None
        color = None if rgb is None else [tuple(c / 255 for c in rgb)]
        ax.scatter(coords[chosen, 0].numpy(), coords[chosen, 1].numpy(), s=14, label=str(label), alpha=0.8, c=color)
    ax.set_xlabel(f"PC1 ({float(explained[0]):.0%} of variance)")
    ax.set_ylabel(f"PC2 ({float(explained[1]):.0%} of variance)")
    if len(set(labels)) <= 12:
        ax.legend(fontsize=7, markerscale=1.2, loc="best")
    ax.set_title(title if title is not None else f"{coords.shape[0]} embeddings, PCA to 2-D")
    return ax.figure


# ---------------------------------------------------------------- checks (below the code they guard)


def _check_labels(labels, n: int, name: str, axis: str) -> None:
    if labels is not None and len(labels) != n:
        raise ValueError(f"{name} has {len(labels)} labels but the matrix has {n} {axis}; pass one label per {axis[:-1]}")


def _check_rate(sample_rate) -> None:
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int in Hz (e.g. 16000), got {sample_rate!r}")
