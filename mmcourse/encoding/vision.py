"""Images: from a photo to the tensor a ViT reads, patches, and the image encoder.

A ViT never sees a photo. It sees pixel_values (B, 3, S, S): every image resized to S × S,
rescaled from 0..255 to 0..1, then normalised per channel as (x − mean) / std. It then cuts
them into (S / P)² patches of P × P pixels and turns each patch into one token. (patchify and unpatchify
also take H × W images, (H / P) · (W / P) patches, as tiling and NaViT-style models need.)

    pixel_values = preprocess_images([photo_a, photo_b], size=224)   # (2, 3, 224, 224), in [-1, 1]
    patches = patchify(pixel_values, 16)                              # (2, 196, 3·16·16 = 768)
    patchify(torch.zeros(1, 3, 224, 336), 14).shape                   # (1, 16·24 = 384, 588): any H × W, P | H, W
    encoder = ImageEncoder.from_tier("tiny")                          # a 64-px ViT with 8-px patches
    tokens = encoder(batch["image"])                                  # Tokens: states (B, 1 + 64, 64)

What preprocess_images accepts (one image, a list of them, or a batch tensor / array):
    PIL images           any mode
    numpy arrays         (H, W, 3) channels-last, as PIL and scikit-image give them
    torch tensors        (3, H, W) channels-first, as mmcourse.data and torchvision give them
    dtypes               uint8 in 0..255, or float in [0, 1]
and the conversions it makes (each is tested in tests/test_vision.py):
    grey (PIL "L", (H, W), one channel)     → the channel is copied three times
    RGBA (PIL with alpha, four channels)    → composited on a white background (as transformers'
                                              convert_to_rgb does), then the alpha channel is dropped
    the other layout                        → a torch (H, W, 3) tensor is read as channels-last and a numpy
                                              (3, H, W) array as channels-first, because their other end
                                              cannot hold channels (sizes 1, 3, 4). Where both ends could
                                              (tiny images such as (3, 4, 3)) the type's convention wins.
Anything else is an error that says what to do: a float image above 1 (divide by 255), a float image
below 0 (it is already normalised), other dtypes, an empty batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from mmcourse import tiers
from mmcourse.tokens import Tokens

CHANNELS = (1, 3, 4)  # grey, RGB, RGBA


# ---------------------------------------------------------------- one image → (3, H, W) uint8


def _channels_first(image: torch.Tensor, torch_layout: bool, where: str) -> torch.Tensor:
    """A 3-D image (C, H, W) or (H, W, C) → (C, H, W). torch_layout: the input came as a torch tensor."""
    first, last = image.shape[0] in CHANNELS, image.shape[-1] in CHANNELS
    if first and last:  # e.g. (3, 4, 3): only tiny images are ambiguous; follow the convention of the type
        return image if torch_layout else image.permute(2, 0, 1)
    if first:
        return image
    if last:
        return image.permute(2, 0, 1)
    raise ValueError(f"{where} has shape {tuple(image.shape)}: no dimension of size 1, 3 or 4 holds the colour "
                     f"channels. Pass (3, H, W) torch tensors or (H, W, 3) arrays"
                     + ("; a batch of grey images (B, H, W) needs images.unsqueeze(1)" if torch_layout else ""))


def as_chw(image, where: str = "the image") -> torch.Tensor:
    """A PIL image, numpy array or tensor → a (C, H, W) tensor, C in (1, 3, 4), uint8 or float32 in [0, 1].

    The one image-layout parser of the course (preprocess_images and viz use it): (C, H, W) or (H, W, C), the
    channels found by their size (1, 3 or 4); when both ends could be channels, a torch tensor is read as
    (C, H, W) and an array as (H, W, C). Float rounding errors up to 1e-3 outside [0, 1] are clipped."""
    if isinstance(image, PIL.Image.Image):
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        rgb = np.asarray(image.convert("RGBA" if has_alpha else "RGB"))  # "L", "P", "CMYK" … → RGB(A)
        return torch.from_numpy(rgb.copy()).permute(2, 0, 1)  # (H, W, C) → (C, H, W)
    torch_layout = isinstance(image, torch.Tensor)
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.array(image))  # a copy: the caller's array may be read-only
    elif not torch_layout:
        raise TypeError(f"{where} is a {type(image).__name__}; pass a PIL image, a numpy array or a torch tensor")
    image = image.detach().cpu()
    if image.dtype != torch.uint8 and not image.is_floating_point():
        raise TypeError(f"{where} has dtype {image.dtype}; pass uint8 pixels (0..255) or floats in [0, 1], "
                        f"e.g. image.to(torch.uint8) if the values are whole numbers 0..255")
    if image.dim() == 2:  # (H, W): grey
        image = image[None]
    elif image.dim() == 3:
        image = _channels_first(image, torch_layout, where)
    else:
        raise ValueError(f"{where} has shape {tuple(image.shape)}; one image is (3, H, W) as a tensor, "
                         f"(H, W, 3) as an array, or (H, W) if grey")
    if image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"{where} is empty: shape {tuple(image.shape)}")
    if image.is_floating_point():
        image = image.float()
        if not bool(torch.isfinite(image).all()):
            raise ValueError(f"{where} contains NaN or infinite values")
        low, high = float(image.min()), float(image.max())
        if high > 1 + 1e-3:
            raise ValueError(f"{where} is a float image with values up to {high:.4g}; float images must lie in "
                             f"[0, 1]. If these are 0..255 pixels, divide by 255 (image / 255) or pass uint8")
        if low < -1e-3:
            raise ValueError(f"{where} is a float image with values down to {low:.4g}; float images must lie in "
                             f"[0, 1]. It looks normalised already: give ImageEncoder the pixel_values directly, "
                             f"or undo the normalisation (x * std + mean)")
        image = image.clamp(0.0, 1.0)
    return image


def _to_rgb(image: torch.Tensor) -> torch.Tensor:
    """(C, H, W) with C in (1, 3, 4) → (3, H, W): grey is repeated, RGBA is composited on white."""
    if image.shape[0] == 1:
        return image.expand(3, -1, -1)
    if image.shape[0] == 4:  # out = alpha · rgb + (1 − alpha) · white, alpha in [0, 1]
        if image.dtype == torch.uint8:
            rgba = image.double()
            alpha = rgba[3:] / 255  # (1, H, W)
            return (alpha * rgba[:3] + (1 - alpha) * 255).round().to(torch.uint8)
        alpha = image[3:]
        return alpha * image[:3] + (1 - alpha) * 1.0
    return image


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    """Floats in [0, 1] → uint8 0..255. Truncated, not rounded, exactly as ViTImageProcessorPil does
    before it hands the image to Pillow (0.999 → 254); floats that came from uint8 (k / 255) are exact."""
    return image if image.dtype == torch.uint8 else (image * 255).to(torch.uint8)


def _resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """(3, H, W) uint8 → (3, size, size) uint8 with Pillow's bilinear filter, as ViT's processor resizes.

    Pillow widens the filter when it shrinks an image (an antialiasing filter), so this is not the same as
    torch.nn.functional.interpolate(mode="bilinear"); it is what the checkpoints were trained with.
    """
    picture = PIL.Image.fromarray(image.permute(1, 2, 0).numpy())
    picture = picture.resize((size, size), resample=PIL.Image.Resampling.BILINEAR)
    return torch.from_numpy(np.array(picture)).permute(2, 0, 1)


# ---------------------------------------------------------------- preprocessing


def image_list(images) -> list:
    """One image, a list of images, or a batch (4-D tensor or array) → a list of single images."""
    if isinstance(images, (list, tuple)):
        for i, image in enumerate(images):
            if getattr(image, "ndim", 0) == 4:
                raise ValueError(f"item {i} of the list is itself a batch of shape {tuple(image.shape)}; pass one "
                                 f"flat list of images (e.g. [*batch_a, *batch_b]) or one batch tensor (torch.cat)")
        images = list(images)
    elif isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 4:
        images = list(images)
    else:
        images = [images]
    if not images:
        raise ValueError("got no images (an empty list or a batch of size 0); pass at least one image")
    return images


def preprocess_images(images, size: int = 224, mean: Sequence[float] = (0.5, 0.5, 0.5),
                      std: Sequence[float] = (0.5, 0.5, 0.5)) -> torch.Tensor:
    """Resize, rescale and normalise images into ViT pixel_values (B, 3, size, size), float32, on the CPU.

    images: one image, a list of images (sizes may differ), a (B, 3, H, W) tensor or a (B, H, W, 3)
    array; each a PIL image, uint8 (0..255) or float in [0, 1] (see the module docstring).
    For every image: to RGB → Pillow bilinear resize to size × size → x / 255 → (x − mean) / std.
    This is transformers' ViTImageProcessorPil step for step (tests/test_vision.py compares them);
    mean = std = 0.5 is google/vit-base-patch16-224's setting and maps [0, 1] to [-1, 1].
    """
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int (the side of the square output), got {size!r}")
    mean, std = _check_stats(mean, "mean"), _check_stats(std, "std")
    if min(std) <= 0:
        raise ValueError(f"std must be positive, got {std}")
    batch = []
    for i, image in enumerate(image_list(images)):
        image = as_chw(image, f"image {i}")  # (C, H, W), uint8 or float in [0, 1]
        image = _to_uint8(_to_rgb(image))  # (3, H, W) uint8
        batch.append(_resize(image, size))  # (3, size, size) uint8
    pixels = torch.stack(batch).float() / 255  # rescale: (B, 3, size, size) in [0, 1]
    mean_t, std_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    return (pixels - mean_t) / std_t  # normalise


# ---------------------------------------------------------------- patches


def patchify(pixel_values: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images (B, C, H, W) into patches (B, N, C·P·P), N = (H / P) · (W / P); H and W need not be equal.

    A square S × S image gives (S / P)² patches (224 px, P = 16: 196); a 224 × 336 image at P = 14 gives
    16 · 24 = 384. Patches come in row-major order: patch n is at grid row n // (W/P), column n % (W/P), as a
    ViT orders its tokens. Inside a patch the C·P·P features are ordered channel, then pixel row, then pixel
    column, which is how a Conv2d weight (D, C, P, P) flattens with weight.reshape(D, C·P·P); so
    Conv2d(C, D, P, stride=P) on the image equals patchify(...) @ weight.reshape(D, -1).T + bias, for any H × W.
    H and W must be multiples of P (the error says what to crop or resize to).
    """
    if pixel_values.dim() != 4:
        raise ValueError(f"pixel_values must be (B, C, H, W), got shape {tuple(pixel_values.shape)}"
                         + ("; for one image use pixel_values[None]" if pixel_values.dim() == 3 else ""))
    b, c, h, w = pixel_values.shape
    _check_patch_size(patch_size, h, w)
    rows, cols = h // patch_size, w // patch_size  # the patch grid
    x = pixel_values.reshape(b, c, rows, patch_size, cols, patch_size)  # (B, C, grid row, row, grid col, col)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, grid row, grid col, C, row, col)
    return x.reshape(b, rows * cols, c * patch_size * patch_size)


def unpatchify(patches: torch.Tensor, patch_size: int, image_size: int | tuple[int, int] | None = None, *,
               grid: tuple[int, int] | None = None) -> torch.Tensor:
    """The exact inverse of patchify: patches (B, N, C·P·P) → images (B, C, H, W).

    Say which image the patches came from, either way (N alone cannot tell 8 × 2 patches from 4 × 4):
        image_size   S for a square S × S image (as before), or (H, W) in pixels
        grid         (rows, cols) of patches, the image being (rows · P) × (cols · P)
    e.g. unpatchify(patches, 16, 224) → (B, C, 224, 224); unpatchify(patches, 14, (224, 336)) and
    unpatchify(patches, 14, grid=(16, 24)) → (B, C, 224, 336).
    """
    if patches.dim() != 3:
        raise ValueError(f"patches must be (B, N, C·P·P), got shape {tuple(patches.shape)}")
    if (image_size is None) == (grid is None):
        raise ValueError("give the image's size in pixels (image_size=S for S × S, or (H, W)) or its patch grid "
                         "(grid=(rows, cols)), exactly one of the two: the number of patches alone does not "
                         "say the image's shape")
    if grid is not None:
        if not _is_pair(grid) or min(grid) < 1:
            raise ValueError(f"grid must be (rows, cols), two positive ints, got {grid!r}")
        _check_patch_size(patch_size, patch_size, patch_size)
        h, w = grid[0] * patch_size, grid[1] * patch_size
    else:
        h, w = (image_size, image_size) if isinstance(image_size, int) else _pair(image_size, "image_size")
        _check_patch_size(patch_size, h, w)
    b, n, features = patches.shape
    rows, cols = h // patch_size, w // patch_size
    if n != rows * cols:
        hint = "did you keep the [CLS] token? drop it with tokens[:, 1:]" if n == rows * cols + 1 else \
            "check the image size (or grid) and patch_size"
        raise ValueError(f"a {h}×{w} image has ({h}/{patch_size})·({w}/{patch_size}) = {rows * cols} patches, "
                         f"got {n}; {hint}")
    if features % (patch_size * patch_size):
        raise ValueError(f"each patch should hold C·{patch_size}·{patch_size} values, got {features}, "
                         f"which is not a multiple of {patch_size * patch_size}; check patch_size")
    c = features // (patch_size * patch_size)
    x = patches.reshape(b, rows, cols, c, patch_size, patch_size)  # (B, grid row, grid col, C, row, col)
    x = x.permute(0, 3, 1, 4, 2, 5)  # (B, C, grid row, row, grid col, col)
    return x.reshape(b, c, h, w)


# ---------------------------------------------------------------- the encoder


class ImageEncoder(torch.nn.Module):
    """A ViT that takes images and returns Tokens(states (B, 1 + N, D), padding_mask (B, 1 + N)).

    states[:, 0] is the [CLS] token, states[:, 1:] one token per patch in row-major order;
    no image token is padding, so padding_mask is all False.
    """

    def __init__(self, model: torch.nn.Module, image_size: int, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model  # a transformers ViTModel: model(pixel_values).last_hidden_state (B, 1 + N, D)
        self.image_size = image_size
        self.mean, self.std = _check_stats(mean, "mean"), _check_stats(std, "std")

    @classmethod
    def from_tier(cls, tier: str = "tiny", name: str | None = None, **kwargs) -> "ImageEncoder":
        """Load with mmcourse.tiers.load_image_encoder (kwargs go there, e.g. attn_implementation="eager");
        size, mean and std come from the returned image processor."""
        model, processor = tiers.load_image_encoder(tier, name, **kwargs)
        size = processor.size
        if size["height"] is None or size["height"] != size["width"]:
            raise ValueError(f"ImageEncoder needs a processor that resizes to a square, got size={size}")
        return cls(model, size["height"], processor.image_mean, processor.image_std)

    @property
    def width(self) -> int:
        """D, the size of each token vector."""
        return self.model.config.hidden_size

    def _check_pixel_values(self, x: torch.Tensor) -> None:
        s = self.image_size
        if x.dim() == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
            raise ValueError(f"pixel_values {tuple(x.shape)} are channels-last; this encoder expects (B, 3, {s}, {s}): "
                             f"use pixel_values.permute(0, 3, 1, 2)")
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ValueError(f"this encoder expects pixel_values of shape (B, 3, {s}, {s}), got {tuple(x.shape)}; "
                             f"preprocess_images resizes: encoder(preprocess_images(images, size={s})), "
                             f"or pass the raw images (uint8 tensors, arrays, PIL images) to the encoder")
        low = min((0 - m) / d for m, d in zip(self.mean, self.std))
        high = max((1 - m) / d for m, d in zip(self.mean, self.std))
        if float(x.min()) < low - 1e-3 or float(x.max()) > high + 1e-3:
            raise ValueError(f"pixel_values lie in [{float(x.min()):.3g}, {float(x.max()):.3g}], but images normalised "
                             f"with mean {self.mean} and std {self.std} lie in [{low:.3g}, {high:.3g}]: these are not "
                             f"preprocessed images (raw 0..255 floats? torch.randn noise?). Pass uint8 images, or "
                             f"preprocess_images(images, size={s}, mean={self.mean}, std={self.std})")

    def forward(self, images) -> Tokens:
        """images: a float tensor (B, 3, S, S) is taken as pixel_values, already preprocessed; anything else
        (uint8 tensors, arrays, PIL images, lists of them) goes through preprocess_images first."""
        if isinstance(images, torch.Tensor) and images.is_floating_point():
            self._check_pixel_values(images)
            pixel_values = images
        else:
            pixel_values = preprocess_images(images, self.image_size, self.mean, self.std)
        device = next(self.model.parameters()).device
        states = self.model(pixel_values=pixel_values.to(device)).last_hidden_state  # (B, 1 + N, D)
        padding_mask = torch.zeros(states.shape[:2], dtype=torch.bool, device=device)
        return Tokens(states, padding_mask)


def resize_position_embeddings(pos, new_grid: int):
    """A ViT's position embeddings (1, 1 + g², D) for a (new_grid × new_grid) patch grid: (1, 1 + new_grid², D).

    The [CLS] embedding is kept; the g × g grid of patch embeddings is resized with bicubic
    interpolation, as transformers' ViT does with interpolate_pos_encoding=True (Dosovitskiy et al., 2021).
    """
    if pos.dim() != 3 or pos.shape[0] != 1:
        raise ValueError(f"pos must be (1, 1 + g², D), got {tuple(pos.shape)}")
    g = math.isqrt(pos.shape[1] - 1)
    if g * g != pos.shape[1] - 1:
        raise ValueError(f"pos has {pos.shape[1]} rows: not 1 [CLS] + a square grid g²; did you drop the [CLS] row?")
    if not isinstance(new_grid, int) or new_grid < 1:
        raise ValueError(f"new_grid must be a positive int (patches per side), got {new_grid!r}")
    cls, patches = pos[:, :1], pos[:, 1:]
    d = pos.shape[-1]
    grid = patches.reshape(1, g, g, d).permute(0, 3, 1, 2)  # (1, D, g, g)
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, d)], dim=1)


# ---------------------------------------------------------------- checks (below the code they guard)


def _check_stats(values, name: str) -> tuple[float, float, float]:
    """mean or std: three numbers, one per channel (R, G, B), or one number for all three."""
    values = (float(values),) * 3 if isinstance(values, (int, float)) else tuple(float(v) for v in values)
    if len(values) != 3:
        raise ValueError(f"{name} needs one value per RGB channel (3 values), got {len(values)}: {values}")
    return values


def _is_pair(value) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value)


def _pair(value, name: str) -> tuple[int, int]:
    if not _is_pair(value):
        raise ValueError(f"{name} must be an int S (a square S × S image) or (H, W), two ints; got {value!r}")
    return int(value[0]), int(value[1])


def _check_patch_size(patch_size: int, height: int, width: int | None = None) -> None:
    """patch_size a positive int that divides the image's height and width (the error names the side and the fix)."""
    if not isinstance(patch_size, int) or isinstance(patch_size, bool) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    width = height if width is None else width
    for side, size in (("height", height), ("width", width)):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"the image {side} must be a positive int, got {size!r}")
    bad = [(side, size) for side, size in (("height", height), ("width", width)) if size % patch_size]
    if bad:
        down = [max(1, s // patch_size) * patch_size for s in (height, width)]
        up = [-(-s // patch_size) * patch_size for s in (height, width)]
        sides = " and ".join(f"{side} {size}" for side, size in bad)
        square = f", or resize: preprocess_images(images, size={down[0]})" if height == width else ""
        raise ValueError(f"image {sides} {'is' if len(bad) == 1 else 'are'} not a multiple of patch_size "
                         f"{patch_size} (the image is {height}×{width}); crop it to {down[0]}×{down[1]} "
                         f"(pixel_values[..., :{down[0]}, :{down[1]}]) or pad it to {up[0]}×{up[1]}{square}")
