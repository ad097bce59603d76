"""mmcourse.decoding.image: the patch decoder, its pixel helpers, the probe, and their errors."""

import pytest
import torch
import torch.nn.functional as F

from mmcourse import data
from mmcourse.encoding import vision
from mmcourse.decoding.image import (ATTRIBUTES, AttributeProbe, ImageDecoderConfig, PatchImageDecoder, attribute_accuracy,
                                     average_per_caption, generate_images, per_image_mse, to_unit_range)
from mmcourse.tokens import Tokens


def cond(b=2, length=5, width=12, seed=0, padded=True):
    g = torch.Generator().manual_seed(seed)
    padding = torch.zeros(b, length, dtype=torch.bool)
    if padded:
        padding[0, length - 2:] = True  # sample 0 has two padding tokens
    return Tokens(torch.randn(b, length, width, generator=g), padding)


def decoder(**kwargs):
    torch.manual_seed(0)
    settings = dict(d_cond=12, image_size=16, patch_size=4, d_model=32, n_layers=2, n_heads=4)
    settings.update(kwargs)
    return PatchImageDecoder(ImageDecoderConfig(**settings)).eval()


@pytest.mark.parametrize("image_size,patch_size", [(16, 4), (32, 8), (12, 6), (8, 8)])
def test_shapes_and_range(image_size, patch_size):
    model = decoder(image_size=image_size, patch_size=patch_size)
    with torch.no_grad():
        patches = model.patch_logits(cond(b=3))
        images = model(cond(b=3))
    n = (image_size // patch_size) ** 2
    assert patches.shape == (3, n, 3 * patch_size * patch_size)
    assert images.shape == (3, 3, image_size, image_size)
    assert images.dtype == torch.float32 and 0 <= images.min() and images.max() <= 1


def test_forward_is_unpatchify_of_the_patch_logits():
    model = decoder()
    c = cond()
    with torch.no_grad():
        model.to_pixels.weight.normal_()  # an untrained decoder draws the same grey for everything
        expected = torch.sigmoid(vision.unpatchify(model.patch_logits(c), 4, 16))
        assert torch.equal(model(c), expected)
        # patch n lands in grid row n // 4, column n % 4: give patch 6 (row 1, column 2) alone a high logit
        model.to_pixels.weight.zero_(), model.to_pixels.bias.zero_()
        model.pixel_bias.fill_(-10.0)
        model.pixel_bias[6] = 10.0
        image = model(c)[0]
    bright = image.mean(dim=0) > 0.5  # (16, 16)
    where = torch.zeros(16, 16, dtype=torch.bool)
    where[4:8, 8:12] = True
    assert torch.equal(bright, where)


def test_start_from_draws_the_mean_image():
    model = decoder()
    mean = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(3)) * 0.9 + 0.05
    with torch.no_grad():
        assert torch.allclose(model(cond()), torch.full((2, 3, 16, 16), 0.5)), "untrained: the grey bias picture"
    model.start_from(mean)
    with torch.no_grad():
        out = model(cond())
    assert torch.allclose(out, mean.expand_as(out), atol=1e-5)


def test_padding_is_ignored():
    model = decoder()
    c = cond(padded=True)
    with torch.no_grad():
        model.to_pixels.weight.normal_()
        full = model(c)
        trimmed = model(Tokens(c.states[:1, :3], c.padding_mask[:1, :3]))  # sample 0 without its padding
        changed = c.states.clone()
        changed[0, 3:] = 1e3  # whatever sits in padded positions
        moved = model(Tokens(changed, c.padding_mask))
    assert torch.allclose(trimmed, full[:1], atol=1e-6)
    assert torch.allclose(moved, full, atol=1e-6)
    assert not torch.allclose(full[0], full[1]), "different conditioning must give different images"


def test_bad_conditioning_errors_name_the_fix():
    model = decoder()
    with pytest.raises(ValueError, match=r"width 768.*d_cond = 12.*nn.Linear\(768, 12\)"):
        model(cond(width=768))
    with pytest.raises(TypeError, match="Tokens"):
        model(torch.randn(2, 5, 12))
    with pytest.raises(TypeError, match="token ids"):
        model(Tokens(torch.zeros(2, 5, 12, dtype=torch.long), torch.zeros(2, 5, dtype=torch.bool)))
    with pytest.raises(ValueError, match="all padding"):
        model(Tokens(torch.randn(2, 5, 12), torch.ones(2, 5, dtype=torch.bool)))


def test_bad_construction_errors():
    with pytest.raises(ValueError, match="not a multiple of patch_size 5.*patch_size=4"):
        PatchImageDecoder(ImageDecoderConfig(d_cond=8, image_size=32, patch_size=5))
    with pytest.raises(ValueError, match="divisible"):
        PatchImageDecoder(ImageDecoderConfig(d_cond=8, d_model=30, n_heads=4))
    with pytest.raises(ValueError, match="positive int"):
        PatchImageDecoder(ImageDecoderConfig(d_cond=0))
    with pytest.raises(ValueError, match=r"\(3, 16, 16\)"):
        decoder().start_from(torch.rand(3, 32, 32))


def test_to_unit_range():
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    out = to_unit_range(images)
    assert out.dtype == torch.float32 and torch.allclose(out[0, :, 0, 0], torch.tensor([0.0, 0.2, 1.0]))
    assert to_unit_range(out) is not None and torch.equal(to_unit_range(out), out)
    with pytest.raises(ValueError, match="divide 0..255"):
        to_unit_range(images.float())
    with pytest.raises(ValueError, match="undo a normalisation"):
        to_unit_range(out * 2 - 1)
    with pytest.raises(ValueError, match=r"image\[None\]"):
        to_unit_range(out[0])
    with pytest.raises(TypeError, match="uint8"):
        to_unit_range(images.long())


def test_per_image_mse():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(4, 3, 8, 8, generator=g), torch.rand(4, 3, 8, 8, generator=g)
    expected = torch.stack([F.mse_loss(a[i], b[i]) for i in range(4)])
    assert torch.allclose(per_image_mse(a, b), expected)
    with pytest.raises(ValueError, match="broadcast"):
        per_image_mse(a, b[0])
    with pytest.raises(TypeError, match="to_unit_range"):
        per_image_mse(a, (b * 255).to(torch.uint8))


def test_average_per_caption():
    g = torch.Generator().manual_seed(2)
    images = torch.rand(5, 3, 4, 4, generator=g)
    captions = ["red", "blue", "red", "green", "red"]
    out = average_per_caption(images, captions)
    red = images[[0, 2, 4]].mean(dim=0)
    for i, c in enumerate(captions):
        expected = red if c == "red" else images[i]
        assert torch.allclose(out[i], expected, atol=1e-6)
    assert torch.allclose(average_per_caption((images * 255).round().to(torch.uint8), captions),
                          average_per_caption((images * 255).round() / 255, captions), atol=1e-6)
    with pytest.raises(ValueError, match="one caption per image"):
        average_per_caption(images, captions[:4])


def test_attribute_accuracy():
    logits = {"colors": torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0]]),
              "shapes": torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])}
    labels = {"colors": torch.tensor([0, 1, 2, 2]), "shapes": torch.tensor([0, 1, 1, 1]), "sizes": torch.zeros(4)}
    acc = attribute_accuracy(logits, labels)
    assert acc == {"colors": 0.75, "shapes": 0.75, "joint": 0.5}
    with pytest.raises(ValueError, match="no labels for"):
        attribute_accuracy(logits, {"colors": labels["colors"]})
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        attribute_accuracy({"colors": logits["colors"]}, {"colors": labels["colors"][:2]})


def test_probe_shapes_and_errors():
    torch.manual_seed(0)
    probe = AttributeProbe(width=4)
    out = probe(torch.rand(3, 3, 32, 32))
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (3, n) for k, n in ATTRIBUTES.items()}
    with pytest.raises(ValueError, match="multiple of 4"):
        probe(torch.rand(3, 3, 30, 30))


@pytest.fixture(scope="module")
def scenes():
    ds = data.MultimodalScenes(48, seed=4, n_objects=1, image_size=16, audio=False)
    clean = torch.stack([torch.from_numpy(data.render_scene(ds.scene(i), 16)).permute(2, 0, 1) for i in range(48)])
    captions = [ds.scene(i).caption for i in range(48)]
    return to_unit_range(clean), captions


def caption_tokens(captions, width=12):
    """A stand-in caption encoder: one fixed random vector per word, so tests need no BERT."""
    vocab = sorted({w for c in captions for w in c.split()})
    table = torch.randn(len(vocab), width, generator=torch.Generator().manual_seed(0))
    length = max(len(c.split()) for c in captions)
    states = torch.zeros(len(captions), length, width)
    padding = torch.ones(len(captions), length, dtype=torch.bool)
    for i, c in enumerate(captions):
        for j, w in enumerate(c.split()):
            states[i, j], padding[i, j] = table[vocab.index(w)], False
    return Tokens(states, padding)


def train(targets, tokens, steps=100, seed=0):
    torch.manual_seed(seed)
    model = PatchImageDecoder(ImageDecoderConfig(d_cond=12, image_size=16, patch_size=4, d_model=32))
    model.start_from(targets.mean(dim=0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = F.mse_loss(model(tokens), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model.eval(), losses


def test_short_training_lowers_the_loss_and_is_deterministic(scenes):
    targets, captions = scenes
    tokens = caption_tokens(captions)
    model, losses = train(targets, tokens)
    mean_image_loss = F.mse_loss(targets.mean(dim=0).expand_as(targets), targets).item()
    assert abs(losses[0] - mean_image_loss) < 0.1 * mean_image_loss, "start_from: training starts at the mean image"
    assert losses[-1] < losses[0] / 3, losses[::10]
    again, losses_again = train(targets, tokens)
    assert losses == losses_again
    with torch.no_grad():
        assert torch.equal(model(tokens), again(tokens))


def test_generate_with_a_text_encoder_keeps_modes():
    from mmcourse.encoding.text import TextEncoder

    encoder = TextEncoder.from_tier("tiny")
    model = decoder(d_cond=encoder.width).train()
    with torch.no_grad():
        model.to_pixels.weight.normal_()
    captions = ["a small red circle in the top left", "a large blue cross in the bottom right"]
    images = generate_images(encoder, model, captions)
    assert images.shape == (2, 3, 16, 16)
    assert model.training and not encoder.training, "generate must hand the models back in their modes"
    with torch.no_grad():
        assert torch.allclose(images, model.eval()(encoder(captions)))
    assert generate_images(encoder, model, captions[0]).shape == (1, 3, 16, 16)


def test_error_sizes_passed_without_a_config():
    with pytest.raises(TypeError, match=r"takes an ImageDecoderConfig.*PatchImageDecoder\(ImageDecoderConfig\(d_cond=64"):
        PatchImageDecoder(64)
