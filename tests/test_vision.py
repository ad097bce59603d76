import numpy as np
import PIL.Image
import pytest
import torch
from skimage import data as samples
from transformers import ViTImageProcessorPil

from mmcourse import data
from mmcourse.encoding import vision
from mmcourse.tokens import Tokens

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def reference(images, size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), **kwargs):
    """transformers' ViT image processor (the PIL backend, as the tiny tier and the hub checkpoints use)."""
    processor = ViTImageProcessorPil(size={"height": size, "width": size}, image_mean=list(mean), image_std=list(std))
    return processor(images, return_tensors="pt", **kwargs)["pixel_values"]


def max_diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).detach().abs().max())


@pytest.fixture(scope="module")
def photos():
    """Real photos of different sizes and aspect ratios, uint8 (H, W, 3)."""
    return [samples.chelsea(), samples.astronaut(), samples.coffee()]


@pytest.fixture(scope="module")
def scenes():
    """A batch of synthetic scenes as the dataset gives them: uint8 (B, 3, 64, 64)."""
    ds = data.MultimodalScenes(4, seed=3, audio=False)
    return torch.stack([ds[i]["image"] for i in range(4)])


# ---------------------------------------------------------------- equal to ViTImageProcessorPil


@pytest.mark.parametrize("size", [224, 64, 600])  # shrink (Pillow's widened filter), shrink a lot, enlarge
def test_uint8_arrays_and_pil_images_match_the_processor(photos, size):
    ours = vision.preprocess_images(photos, size=size)
    assert ours.shape == (3, 3, size, size) and ours.dtype == torch.float32
    assert max_diff(ours, reference(photos, size=size)) <= 1e-5
    pil = [PIL.Image.fromarray(p) for p in photos]
    assert max_diff(vision.preprocess_images(pil, size=size), reference(pil, size=size)) <= 1e-5


def test_other_mean_and_std_match_the_processor(photos):
    ours = vision.preprocess_images(photos, 96, IMAGENET_MEAN, IMAGENET_STD)
    assert max_diff(ours, reference(photos, 96, IMAGENET_MEAN, IMAGENET_STD)) <= 1e-5


def test_uint8_chw_tensors_from_the_dataset_match_the_processor(scenes):
    for size in (64, 224, 32):
        assert max_diff(vision.preprocess_images(scenes, size), reference(list(scenes), size)) <= 1e-5


def test_float_chw_tensors_match_the_processor_told_not_to_rescale(photos):
    exact = [torch.from_numpy(p).permute(2, 0, 1).float() / 255 for p in photos]  # k / 255: what float images usually are
    g = torch.Generator().manual_seed(0)
    random = [torch.rand(3, 50, 70, generator=g), torch.rand(3, 64, 64, generator=g)]
    for images in (exact, random):
        for size in (64, 224):
            # the processor assumes 0..255 and would divide [0, 1] floats by 255 a second time: do_rescale=False
            expected = reference(images, size, do_rescale=False)
            assert max_diff(vision.preprocess_images(images, size), expected) <= 1e-5


def test_float_images_are_the_uint8_images_divided_by_255(scenes):
    assert torch.equal(vision.preprocess_images(scenes.float() / 255, 64), vision.preprocess_images(scenes, 64))


def test_values_at_the_target_size_are_just_rescaled_and_normalised(scenes):
    expected = (scenes.float() / 255 - 0.5) / 0.5
    assert max_diff(vision.preprocess_images(scenes, 64), expected) <= 1e-6
    assert vision.preprocess_images(scenes, 64).min() >= -1 and vision.preprocess_images(scenes, 64).max() <= 1


# ---------------------------------------------------------------- documented conversions


def test_rgba_is_composited_on_white():
    rgba = np.zeros((5, 6, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red …
    rgba[:, :2, 3] = 255  # … opaque on the left
    rgba[:, 2:4, 3] = 0  # … fully transparent in the middle: white
    rgba[:, 4:, 3] = 128  # … half transparent on the right: pink
    out = vision.preprocess_images(rgba, size=6, mean=(0, 0, 0), std=(1, 1, 1))[0]  # (3, 6, 6) in [0, 1]
    assert torch.equal(out[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.equal(out[:, 0, 2], torch.tensor([1.0, 1.0, 1.0]))
    assert max_diff(out[:, 0, 5], torch.tensor([1.0, 127 / 255, 127 / 255])) <= 1e-6
    # the same as transformers' convert_to_rgb, for PIL images, uint8 arrays and float arrays
    g = np.random.default_rng(0)
    random = g.integers(0, 256, (40, 30, 4), dtype=np.uint8)
    for image, kwargs in ((PIL.Image.fromarray(random, "RGBA"), {}), (random, {}),
                          (random.astype(np.float32) / 255, {"do_rescale": False})):
        assert max_diff(vision.preprocess_images(image, 32), reference(image, 32, do_convert_rgb=True, **kwargs)) <= 1e-5


def test_grey_images_become_three_equal_channels(photos):
    grey = PIL.Image.fromarray(photos[0]).convert("L")
    ours = vision.preprocess_images(grey, 64)
    assert ours.shape == (1, 3, 64, 64)
    assert torch.equal(ours[0, 0], ours[0, 1]) and torch.equal(ours[0, 0], ours[0, 2])
    assert max_diff(ours, reference(grey, 64, do_convert_rgb=True)) <= 1e-5
    as_array = np.array(grey)  # (H, W)
    for image in (as_array, as_array[..., None], torch.from_numpy(as_array)[None], torch.from_numpy(as_array)):
        assert torch.equal(vision.preprocess_images(image, 64), ours)


def test_the_other_channel_layout_is_converted_when_unambiguous(scenes):
    expected = vision.preprocess_images(scenes, 32)
    assert torch.equal(vision.preprocess_images(scenes.permute(0, 2, 3, 1), 32), expected)  # torch (B, H, W, 3)
    assert torch.equal(vision.preprocess_images([s.permute(1, 2, 0).float() / 255 for s in scenes], 32), expected)
    assert torch.equal(vision.preprocess_images(scenes.numpy(), 32), expected)  # numpy (B, 3, H, W)
    assert torch.equal(vision.preprocess_images(scenes.permute(0, 2, 3, 1).numpy(), 32), expected)  # numpy (B, H, W, 3)
    tiny = torch.rand(3, 4, 3)  # either end could be the channels: tensors are read (C, H, W), arrays (H, W, C)
    assert torch.equal(vision.preprocess_images(tiny, 4), vision.preprocess_images(tiny.permute(1, 2, 0).numpy(), 4))


def test_one_image_a_list_and_a_batch_agree(scenes, photos):
    batch = vision.preprocess_images(scenes, 64)
    assert torch.equal(vision.preprocess_images(list(scenes), 64), batch)
    assert torch.equal(vision.preprocess_images(tuple(scenes), 64), batch)
    assert torch.equal(vision.preprocess_images(scenes[1], 64), batch[1:2])
    mixed = vision.preprocess_images([photos[0], PIL.Image.fromarray(photos[1]), scenes[0]], 64)  # kinds and sizes mix
    assert mixed.shape == (3, 3, 64, 64) and torch.equal(mixed[2], batch[0])


# ---------------------------------------------------------------- errors that name the fix


@pytest.mark.parametrize("image, error, match", [
    (torch.rand(3, 8, 8) * 255, ValueError, r"divide by 255"),  # 0..255 floats
    (torch.rand(3, 8, 8) * 2 - 1, ValueError, r"normalised already"),  # [-1, 1] floats
    (torch.full((3, 8, 8), float("nan")), ValueError, r"NaN"),
    (torch.randint(0, 255, (3, 8, 8)), TypeError, r"image.to\(torch.uint8\)"),  # int64
    (torch.rand(5, 8, 8), ValueError, r"unsqueeze\(1\)"),  # a batch of grey images passed as one image
    (torch.rand(2, 8, 8), ValueError, r"size 1, 3 or 4"),  # two channels
    (torch.rand(3, 0, 8), ValueError, r"empty"),
    ([], ValueError, r"at least one image"),
    (torch.zeros(0, 3, 8, 8, dtype=torch.uint8), ValueError, r"at least one image"),
    ([torch.rand(2, 3, 8, 8)], ValueError, r"flat list"),  # a batch inside a list
    ("cat.png", TypeError, r"PIL image, a numpy array or a torch tensor"),
])
def test_bad_images_raise_errors_that_name_the_fix(image, error, match):
    with pytest.raises(error, match=match):
        vision.preprocess_images(image, 16)


def test_the_error_says_which_image_is_wrong(scenes):
    with pytest.raises(ValueError, match=r"image 2 .*divide by 255"):
        vision.preprocess_images([scenes[0], scenes[1], scenes[2].float()], 16)


def test_bad_settings_raise(scenes):
    with pytest.raises(ValueError, match="size"):
        vision.preprocess_images(scenes, 0)
    with pytest.raises(ValueError, match="3 values"):
        vision.preprocess_images(scenes, 16, mean=(0.5,))
    with pytest.raises(ValueError, match="positive"):
        vision.preprocess_images(scenes, 16, std=(0.5, 0.0, 0.5))
    assert torch.equal(vision.preprocess_images(scenes, 16, mean=0.5, std=0.5), vision.preprocess_images(scenes, 16))


# ---------------------------------------------------------------- patches


def test_patchify_shape_and_row_major_order():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    patches = vision.patchify(x, 4)
    assert patches.shape == (2, 4, 3 * 4 * 4)
    assert torch.equal(patches[:, 0], x[:, :, :4, :4].reshape(2, -1))  # top left
    assert torch.equal(patches[:, 1], x[:, :, :4, 4:].reshape(2, -1))  # top right: along the row first
    assert torch.equal(patches[:, 2], x[:, :, 4:, :4].reshape(2, -1))  # bottom left
    # features: channel, then pixel row, then pixel column
    assert torch.equal(patches[0, 0, :4], x[0, 0, 0, :4]) and torch.equal(patches[0, 0, 16], x[0, 1, 0, 0])


def test_patchify_with_a_conv_weight_is_a_strided_conv():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 10, kernel_size=4, stride=4)
    x = torch.randn(2, 3, 16, 16)
    by_conv = conv(x).flatten(2).transpose(1, 2)  # (B, D, 4, 4) → (B, 16, D)
    by_linear = vision.patchify(x, 4) @ conv.weight.reshape(10, -1).T + conv.bias
    assert max_diff(by_conv, by_linear) <= 1e-5


def test_patchify_matches_the_tiny_vits_patch_embedding(scenes):
    encoder = vision.ImageEncoder.from_tier("tiny")
    projection = encoder.model.embeddings.patch_embeddings.projection  # Conv2d(3, 64, 8, stride 8)
    x = vision.preprocess_images(scenes, 64)
    with torch.no_grad():
        expected = encoder.model.embeddings.patch_embeddings(x)  # (B, 64, 64)
        ours = vision.patchify(x, 8) @ projection.weight.reshape(64, -1).T + projection.bias
    assert expected.shape == (4, 64, 64) and max_diff(ours, expected) <= 1e-5


@pytest.mark.parametrize("shape, patch", [((2, 3, 16, 16), 4), ((1, 1, 12, 12), 3), ((3, 4, 8, 8), 8), ((1, 3, 6, 6), 1)])
def test_unpatchify_inverts_patchify(shape, patch):
    x = torch.randn(shape)
    patches = vision.patchify(x, patch)
    assert torch.equal(vision.unpatchify(patches, patch, shape[-1]), x)
    assert torch.equal(vision.patchify(vision.unpatchify(patches, patch, shape[-1]), patch), patches)


@pytest.mark.parametrize("shape, patch", [((2, 3, 8, 12), 4), ((1, 3, 224, 336), 14), ((2, 1, 6, 3), 3),
                                          ((1, 4, 32, 48), 16), ((1, 3, 5, 7), 1)])
def test_non_square_round_trip_and_row_major_order(shape, patch):
    x = torch.randn(shape)
    b, c, h, w = shape
    patches = vision.patchify(x, patch)
    rows, cols = h // patch, w // patch
    assert patches.shape == (b, rows * cols, c * patch * patch)
    # patch n sits at grid row n // cols, column n % cols (along the row first)
    n = rows * cols - 1 if rows * cols > 1 else 0
    r, q = divmod(n, cols)
    assert torch.equal(patches[:, n], x[:, :, r * patch:(r + 1) * patch, q * patch:(q + 1) * patch].reshape(b, -1))
    assert torch.equal(vision.unpatchify(patches, patch, (h, w)), x)
    assert torch.equal(vision.unpatchify(patches, patch, grid=(rows, cols)), x)
    assert torch.equal(vision.patchify(vision.unpatchify(patches, patch, grid=(rows, cols)), patch), patches)


def test_patchify_equals_an_einops_style_reshape_and_unfold():
    # "b c (h p1) (w p2) -> b (h w) (c p1 p2)", written with torch alone, and F.unfold (which orders c, p1, p2 too)
    x = torch.randn(2, 3, 28, 42)
    p = 7
    reference = x.unfold(2, p, p).unfold(3, p, p)  # (B, C, 4, 6, P, P)
    reference = reference.permute(0, 2, 3, 1, 4, 5).reshape(2, 4 * 6, 3 * p * p)
    assert torch.equal(vision.patchify(x, p), reference)
    assert torch.equal(vision.patchify(x, p), torch.nn.functional.unfold(x, p, stride=p).transpose(1, 2))


def test_patchify_is_a_strided_conv_with_the_identity_weight_on_a_non_square_image():
    # A Conv2d(C, C·P·P, P, stride=P) whose filter k picks feature k of a patch (channel, row, column) returns
    # exactly the patches: the convolution and patchify cut the same patches in the same order.
    c, p = 3, 4
    conv = torch.nn.Conv2d(c, c * p * p, p, stride=p, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(c * p * p).reshape(c * p * p, c, p, p))
    x = torch.randn(2, c, 12, 20)
    with torch.no_grad():
        by_conv = conv(x).flatten(2).transpose(1, 2)  # (B, C·P·P, 3, 5) → (B, 15, C·P·P)
    assert torch.equal(vision.patchify(x, p), by_conv)


def test_patchify_matches_transformers_vit_on_a_non_square_image():
    from transformers import ViTConfig, ViTModel

    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32)
    torch.manual_seed(0)
    model = ViTModel(cfg, add_pooling_layer=False).eval()
    projection = model.embeddings.patch_embeddings.projection  # Conv2d(3, 16, 8, stride 8)
    x = torch.randn(2, 3, 24, 40)  # a 3 × 5 grid; the model was configured for 32 × 32
    with torch.no_grad():
        expected = model.embeddings.patch_embeddings(x)  # (B, 15, 16): transformers 5 checks no size here
        states = model(x, interpolate_pos_encoding=True).last_hidden_state
        ours = vision.patchify(x, 8) @ projection.weight.reshape(16, -1).T + projection.bias
    assert expected.shape == (2, 15, 16) and max_diff(ours, expected) <= 1e-5
    assert states.shape[1] == 1 + vision.patchify(x, 8).shape[1]  # [CLS] + (24/8)·(40/8) tokens


def test_patch_errors():
    with pytest.raises(ValueError, match=r"height 30 is not a multiple of patch_size 16.*crop it to 16×48.*pad it to "
                                         r"32×48"):
        vision.patchify(torch.zeros(1, 3, 30, 48), 16)
    with pytest.raises(ValueError, match="width 50 is not a multiple"):
        vision.patchify(torch.zeros(1, 3, 32, 50), 16)
    with pytest.raises(ValueError, match=r"height 30 and width 50 are not.*crop it to 16×48") as both:
        vision.patchify(torch.zeros(1, 3, 30, 50), 16)
    assert "preprocess_images" not in str(both.value)  # it resizes to squares: suggested for square images only
    with pytest.raises(ValueError, match=r"multiple.*preprocess_images\(images, size=8\)"):
        vision.patchify(torch.zeros(1, 3, 10, 10), 4)
    with pytest.raises(ValueError, match=r"pixel_values\[None\]"):
        vision.patchify(torch.zeros(3, 8, 8), 4)
    with pytest.raises(ValueError, match="positive int"):
        vision.patchify(torch.zeros(1, 3, 8, 8), 0)
    with pytest.raises(ValueError, match=r"\[CLS\]"):
        vision.unpatchify(torch.zeros(1, 5, 48), 4, 8)  # 4 patches + a [CLS] token
    with pytest.raises(ValueError, match="4 patches"):
        vision.unpatchify(torch.zeros(1, 9, 48), 4, 8)
    with pytest.raises(ValueError, match="multiple of 16"):
        vision.unpatchify(torch.zeros(1, 4, 50), 4, 8)
    with pytest.raises(ValueError, match="exactly one of the two"):
        vision.unpatchify(torch.zeros(1, 6, 48), 4)  # 6 patches: 2 × 3 or 3 × 2? say which
    with pytest.raises(ValueError, match="exactly one of the two"):
        vision.unpatchify(torch.zeros(1, 6, 48), 4, (8, 12), grid=(2, 3))
    with pytest.raises(ValueError, match=r"8×12 image has \(8/4\)·\(12/4\) = 6 patches, got 8"):
        vision.unpatchify(torch.zeros(1, 8, 48), 4, (8, 12))
    with pytest.raises(ValueError, match="width 10 is not a multiple"):
        vision.unpatchify(torch.zeros(1, 6, 48), 4, (8, 10))
    with pytest.raises(ValueError, match="grid must be"):
        vision.unpatchify(torch.zeros(1, 6, 48), 4, grid=(6,))
    with pytest.raises(ValueError, match="image_size must be"):
        vision.unpatchify(torch.zeros(1, 6, 48), 4, (8.0, 12))


# ---------------------------------------------------------------- the encoder


@pytest.fixture(scope="module")
def encoder():
    return vision.ImageEncoder.from_tier("tiny")


def test_from_tier_reads_the_processors_settings(encoder):
    assert encoder.image_size == 64 and encoder.mean == (0.5, 0.5, 0.5) and encoder.std == (0.5, 0.5, 0.5)
    assert encoder.width == 64
    wide = vision.ImageEncoder.from_tier("tiny", image_size=32, patch_size=4, hidden_size=32)
    assert (wide.image_size, wide.width) == (32, 32)


def test_encoder_returns_tokens_equal_to_the_model_on_the_processors_output(encoder, scenes):
    with torch.no_grad():
        tokens = encoder(scenes)  # raw uint8 images
        processor = ViTImageProcessorPil(size={"height": 64, "width": 64}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
        expected = encoder.model(pixel_values=processor(list(scenes), return_tensors="pt")["pixel_values"])
    assert isinstance(tokens, Tokens)
    assert tokens.states.shape == (4, 65, 64)  # [CLS] + 8 × 8 patches
    assert tokens.padding_mask.dtype == torch.bool and not tokens.padding_mask.any()
    assert max_diff(tokens.states, expected.last_hidden_state) <= 1e-5
    with torch.no_grad():
        assert torch.equal(encoder(vision.preprocess_images(scenes, 64)).states, tokens.states)  # pixel_values
        assert torch.equal(encoder([PIL.Image.fromarray(s.permute(1, 2, 0).numpy()) for s in scenes]).states,
                           tokens.states)


def test_encoder_resizes_raw_images_but_not_pixel_values(encoder, photos):
    with torch.no_grad():
        assert encoder(photos).states.shape == (3, 65, 64)
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\).*preprocess_images resizes"):
        encoder(vision.preprocess_images(photos, 224))
    with pytest.raises(ValueError, match=r"permute\(0, 3, 1, 2\)"):
        encoder(torch.zeros(2, 64, 64, 3))
    with pytest.raises(ValueError, match="randn"):
        encoder(torch.randn(1, 3, 64, 64))  # the blog's "image"
    with pytest.raises(ValueError, match="not preprocessed"):
        encoder(torch.full((1, 3, 64, 64), 255.0))
