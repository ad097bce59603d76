"""mmcourse.viz: every picture comes back as a Figure with the expected parts; bad input fails clearly."""

import matplotlib

matplotlib.use("Agg")  # no display: draw into memory only

import io  # noqa: E402

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mmcourse import viz  # noqa: E402


def render(fig: Figure) -> None:
    """Draw the figure to PNG in memory, so errors that only appear when drawing show up."""
    fig.savefig(io.BytesIO(), format="png", dpi=40)


def images_in(fig: Figure) -> int:
    return sum(len(ax.images) for ax in fig.axes)


# ---------------------------------------------------------------- images


def test_show_images_batch_with_wrapped_titles():
    batch = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    titles = [f"a large red circle in the top left and a small blue square number {i}" for i in range(6)]
    fig = viz.show_images(batch, titles=titles, ncols=4)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6 and images_in(fig) == 6  # the two empty cells of the 2×4 grid are removed
    assert "\n" in fig.axes[0].get_title()  # long captions wrap
    render(fig)


def test_show_images_accepts_lists_numpy_pil_and_floats():
    hwc = np.zeros((8, 8, 3), dtype=np.uint8)
    pil = PIL.Image.new("RGB", (8, 8), "red")
    float_chw = torch.rand(3, 8, 8)
    fig = viz.show_images([hwc, pil, float_chw], titles=["numpy", "pil", "float"])
    assert images_in(fig) == 3
    assert images_in(viz.show_images(float_chw)) == 1  # a single (3, H, W) image


def test_viz_reads_images_by_the_same_rules_as_preprocess_images():
    """One layout parser (vision.as_chw): channels first or last, tensor or array, grey, RGB or RGBA."""
    from mmcourse.encoding import vision

    chw = torch.randint(0, 256, (3, 8, 6), dtype=torch.uint8)
    for image in (chw, chw.permute(1, 2, 0), chw.numpy(), chw.permute(1, 2, 0).numpy()):
        assert np.array_equal(viz.to_hwc(image), chw.permute(1, 2, 0).numpy())
        assert torch.equal(vision.as_chw(image), chw)
    assert viz.to_hwc(torch.rand(1, 5, 5)).shape == (5, 5)  # grey
    assert viz.to_hwc(torch.full((3, 4, 4), 1.0005)).max() == 1.0  # rounding error clipped


def test_show_images_rejects_bad_input():
    with pytest.raises(ValueError, match="one title per image"):
        viz.show_images(torch.zeros(2, 3, 8, 8), titles=["only one"])
    with pytest.raises(ValueError, match="undo the normalisation"):
        viz.show_images(torch.full((3, 8, 8), -1.0))
    with pytest.raises(ValueError, match="size 1, 3 or 4"):
        viz.show_images(torch.zeros(2, 8, 8))
    with pytest.raises(TypeError, match="PIL image"):
        viz.show_images(["not an image"])


def test_show_patch_grid_numbers_patches_row_major():
    fig = viz.show_patch_grid(torch.zeros(3, 32, 48, dtype=torch.uint8), patch_size=16)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == [str(i) for i in range(2 * 3)]
    assert ax.texts[1].get_position()[0] > ax.texts[0].get_position()[0]  # index 1 is right of index 0
    assert len(ax.lines) == (3 - 1) + (2 - 1)  # inner grid lines
    with pytest.raises(ValueError, match="does not divide"):
        viz.show_patch_grid(torch.zeros(3, 30, 30), patch_size=16)


# ---------------------------------------------------------------- sound


def test_show_waveform_time_axis_in_seconds():
    fig = viz.show_waveform(torch.zeros(8000), 16000, title="half a second")
    ax = fig.axes[0]
    assert len(ax.lines) == 1
    assert ax.get_xlim() == pytest.approx((0.0, 0.5))
    assert ax.get_title() == "half a second"
    with pytest.raises(ValueError, match=r"mean\(dim=0\)"):
        viz.show_waveform(torch.zeros(2, 100), 16000)
    with pytest.raises(ValueError, match="sample_rate"):
        viz.show_waveform(torch.zeros(100), 0)


def test_show_spectrogram_extent_and_colorbar():
    fig = viz.show_spectrogram(torch.randn(80, 300), sample_rate=16000, hop_length=160)
    assert len(fig.axes) == 2  # the picture and its colour bar
    image = fig.axes[0].images[0]
    assert image.get_extent() == pytest.approx([0.0, 3.0, 0.0, 80.0])  # 300 frames × 10 ms
    render(fig)
    with pytest.raises(ValueError, match=r"spec\[0\]"):
        viz.show_spectrogram(torch.randn(1, 80, 300))


def test_axes_can_be_shared_in_one_figure():
    fig, (left, right) = viz.subplots(1, 2)
    assert viz.show_waveform(np.zeros(160, dtype=np.float32), 16000, ax=left) is fig
    assert viz.show_spectrogram(np.zeros((8, 10)), ax=right) is fig
    assert len(fig.axes) == 3


def test_audio_player():
    from IPython.display import Audio

    player = viz.audio_player(torch.linspace(-0.5, 0.5, 1600), 16000)
    assert isinstance(player, Audio)
    assert player.data[:4] == b"RIFF"
    loud = viz.audio_player(np.linspace(-3, 3, 1600), 16000)  # out of range: scaled down, not an error
    assert isinstance(loud, Audio)
    with pytest.raises(ValueError, match="mono"):
        viz.audio_player(torch.zeros(2, 1600), 16000)
    with pytest.raises(ValueError, match="empty"):
        viz.audio_player(torch.zeros(0), 16000)


# ---------------------------------------------------------------- attention, similarity, embeddings


def test_show_attention_heatmap_and_labels():
    weights = torch.softmax(torch.randn(3, 5), dim=-1)
    fig = viz.show_attention(weights, x_labels=list("abcde"), y_labels=["q0", "q1", "q2"], title="cross")
    ax = fig.axes[0]
    assert len(fig.axes) == 2 and len(ax.images) == 1
    assert ax.images[0].get_array().shape == (3, 5)
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcde")
    with pytest.raises(ValueError, match=r"weights\[0, 0\]"):
        viz.show_attention(torch.rand(1, 2, 3, 5))
    with pytest.raises(ValueError, match="x_labels has 2 labels"):
        viz.show_attention(weights, x_labels=["a", "b"])


def test_show_attention_on_image():
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    fig = viz.show_attention_on_image(image, torch.rand(16), patch_size=8)
    ax = fig.axes[0]
    assert len(ax.images) == 2  # the image and the overlay
    assert ax.images[1].get_array().shape == (4, 4)
    render(fig)
    with pytest.raises(ValueError, match=r"\[CLS\]"):
        viz.show_attention_on_image(image, torch.rand(17), patch_size=8)
    with pytest.raises(ValueError, match="16 patches"):
        viz.show_attention_on_image(image, torch.rand(10), patch_size=8)


def test_show_similarity_marks_best_match_per_row():
    sim = torch.eye(4) + 0.1 * torch.rand(4, 4)
    fig = viz.show_similarity(sim, row_labels=list("abcd"), col_labels=list("ABCD"))
    ax = fig.axes[0]
    assert len(ax.patches) == 4
    assert [p.get_x() for p in ax.patches] == [-0.5, 0.5, 1.5, 2.5]  # on the diagonal
    assert len(ax.texts) == 16
    with pytest.raises(ValueError, match="row_labels"):
        viz.show_similarity(sim, row_labels=["a"])
    with pytest.raises(ValueError, match=r"\(N, M\)"):
        viz.show_similarity(torch.rand(4))


def test_pca_matches_the_main_directions():
    torch.manual_seed(0)
    points = torch.randn(200, 1) * torch.tensor([[5.0, 0.0, 0.0]]) + 0.1 * torch.randn(200, 3)
    coords, explained = viz.pca_2d(points)
    assert coords.shape == (200, 2)
    assert float(explained[0]) > 0.95
    reference = torch.pca_lowrank(points, q=2, center=True)[0][:, 0]
    assert abs(torch.nn.functional.cosine_similarity(coords[:, 0], reference, dim=0)) > 0.999


def test_show_embeddings_one_collection_per_label():
    points = torch.randn(30, 8)
    labels = ["red", "green", "blue"] * 10
    fig = viz.show_embeddings(points, labels)
    ax = fig.axes[0]
    collections = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(collections) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["red", "green", "blue"]
    from mmcourse.data import COLORS
    for collection, name in zip(collections, ["red", "green", "blue"]):  # a colour name is drawn in that colour
        np.testing.assert_allclose(collection.get_facecolor()[0][:3], np.array(COLORS[name]) / 255, atol=1e-6)
    tensor_labels = viz.show_embeddings(points, torch.arange(30) % 2).axes[0]  # tensor labels work too
    assert [t.get_text() for t in tensor_labels.get_legend().get_texts()] == ["0", "1"]
    with pytest.raises(ValueError, match="one label per point"):
        viz.show_embeddings(points, labels[:5])
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        viz.show_embeddings(torch.randn(30), labels)


def test_figures_show_as_images_under_the_agg_backend(monkeypatch):
    """With MPLBACKEND=Agg (tests, the site build) the inline backend is off; a displayed Figure must still be a PNG."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import matplotlib\nassert matplotlib.get_backend().lower() == 'agg'\n"
                                  "from mmcourse import viz\nfig, ax = viz.subplots()\nax.plot([1, 2])\nfig"),
        nbformat.v4.new_code_cell("from IPython.display import display\ndisplay(viz.show_waveform([0.0, 1.0, 0.0], 16000))")])
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    for cell in nb.cells:
        kinds = [set(out.get("data", {})) for out in cell.outputs if out.output_type in ("execute_result", "display_data")]
        assert kinds and all("image/png" in k for k in kinds), f"no PNG for {cell.source!r}: {cell.outputs}"


# ---------------------------------------------------------------- Chinese labels


def test_chinese_labels_find_a_cjk_font():
    import warnings

    from tests.conftest import require_cjk_font

    fonts = require_cjk_font()
    assert fonts[0] in matplotlib.rcParams["font.family"], (fonts, matplotlib.rcParams["font.family"])
    fig, ax = viz.subplots(1, 1)
    ax.set_title("注意力掩码 · attention mask")
    ax.set_xlabel("梅尔频谱的帧")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        render(fig)
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert not missing, f"Chinese glyphs drawn as boxes: {missing[:2]}"


def test_without_a_cjk_font_nothing_changes_and_nothing_warns(monkeypatch, recwarn):
    monkeypatch.setattr(viz, "cjk_fonts", lambda: [])
    monkeypatch.setitem(matplotlib.rcParams, "font.family", ["sans-serif"])
    assert viz.use_cjk_fonts() == []
    assert matplotlib.rcParams["font.family"] == ["sans-serif"]
    assert not [w for w in recwarn if "font" in str(w.message).lower()]


def test_a_cjk_font_installed_after_matplotlibs_cache_is_found(monkeypatch):
    """matplotlib's font cache predates `apt-get install fonts-noto-cjk`: the system's font folders are searched."""
    from matplotlib import font_manager

    from tests.conftest import require_cjk_font

    require_cjk_font()
    monkeypatch.setattr(font_manager.fontManager, "ttflist",
                        [f for f in font_manager.fontManager.ttflist if f.name not in viz.CJK_FAMILIES])
    assert viz.cjk_fonts(), "a CJK font on disk that is missing from matplotlib's cache was not found"
