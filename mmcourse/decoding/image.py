"""Images from text: a patch decoder that draws a scene from its caption, and a probe that checks the drawing.

An encoder cuts an image into patches and turns each patch into a token (mmcourse.encoding.vision). A patch
decoder runs that road backwards: one learned query per patch position asks the conditioning tokens
(a caption's token states, or fused tokens) what belongs in its patch, predicts the patch's 3·P·P
pixel values, and `unpatchify` lays the patches out as an image.

    decoder = PatchImageDecoder(ImageDecoderConfig(d_cond=64, image_size=32, patch_size=8))   # N = (32 / 8)² = 16 queries
    images = decoder(cond)              # cond: Tokens (B, L, 64) → images (B, 3, 32, 32), floats in [0, 1]

    queries (N, d) ──cross-attention to cond──► feed-forward ──► Linear ──► patches (B, N, 3·P·P)
                   (n_layers times)                                      + pixel bias, unpatchify, sigmoid

Pixels are floats in [0, 1] (the dataset's uint8 images / 255): what viz.show_images displays and what
`AttributeProbe` reads. Trained with the pixel MSE, a decoder predicts the average of all images that fit
its input; `average_per_caption` computes that average directly, which is why a caption that leaves the
exact position open gives a blurred drawing (notebook 09).

The probe is a small CNN trained on true images to name the colour, shape, size and quadrant of the
one object in a scene; `attribute_accuracy` scores its guesses, e.g. on generated images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcourse.fusion.blocks import CrossAttentionBlock
from mmcourse.fusion.projector import Projector
from mmcourse.tokens import Tokens, check_conditioning
from mmcourse.encoding.vision import patchify, unpatchify

ATTRIBUTES = {"colors": 6, "shapes": 4, "sizes": 2, "quadrants": 4}  # label name → classes (mmcourse.data)


# ---------------------------------------------------------------- pixels


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, 3, S, S) in 0..255 → float32 in [0, 1]; float images in [0, 1] pass through."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (B, 3, S, S), got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, S, S), got shape {tuple(images.shape)}"
                         + ("; for one image use image[None]" if images.dim() == 3 else ""))
    if images.dtype == torch.uint8:
        return images.float() / 255
    if not images.is_floating_point():
        raise TypeError(f"images have dtype {images.dtype}; pass uint8 pixels (0..255) or floats in [0, 1]")
    low, high = float(images.min()), float(images.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(f"float images must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]; divide 0..255 "
                         f"pixels by 255, and undo a normalisation (x * std + mean) before decoding or probing")
    return images.float()


def per_image_mse(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared pixel error of each image: (B, 3, S, S) twice → (B,). Average with .mean() for one number."""
    _check_pair(generated, target)
    return (generated - target).pow(2).mean(dim=(1, 2, 3))


def average_per_caption(images: torch.Tensor, captions: list[str]) -> torch.Tensor:
    """For every image, the mean of all images that share its caption: (B, 3, S, S) → (B, 3, S, S).

    This is what a decoder trained with the pixel MSE converges to (the conditional mean minimises the
    squared error): where the caption leaves something open, such as the exact position, it is blurred.
    """
    images = to_unit_range(images)
    if len(captions) != images.shape[0]:
        raise ValueError(f"got {len(captions)} captions for {images.shape[0]} images; pass one caption per image")
    names = sorted(set(captions))
    group = torch.tensor([names.index(c) for c in captions])  # (B,) caption id of each image
    sums = torch.zeros(len(names), *images.shape[1:]).index_add_(0, group, images)
    counts = torch.bincount(group, minlength=len(names)).float()
    return (sums / counts.view(-1, 1, 1, 1))[group]


# ---------------------------------------------------------------- the decoder


@dataclass
class ImageDecoderConfig:
    """The sizes of a PatchImageDecoder: conditioning width, image side S and patch side P (N = (S / P)² queries),
    model width, number of cross-attention blocks and of heads."""
    d_cond: int
    image_size: int = 32
    patch_size: int = 8
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4

    def __post_init__(self):
        for name, value in vars(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.image_size % self.patch_size:
            fit = max(d for d in range(1, self.patch_size + 1) if self.image_size % d == 0)
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}; "
                             f"choose e.g. patch_size={fit}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")


class PatchImageDecoder(nn.Module):
    """Conditioning tokens (B, L, d_cond) → images (B, 3, S, S) in [0, 1], one learned query per patch.

    N = (S / P)² queries cross-attend to the conditioning tokens (padding ignored) in n_layers blocks;
    a Linear layer turns each query's state into its patch's 3·P·P pixel logits, a learned per-pixel
    bias is added (see start_from), `unpatchify` places the patches, and a sigmoid maps to [0, 1].
    The Linear layer starts at zero, so before training the decoder draws the bias picture: grey, or
    the mean image after start_from.
    """

    def __init__(self, cfg: ImageDecoderConfig):
        super().__init__()
        if not isinstance(cfg, ImageDecoderConfig):
            raise TypeError(f"PatchImageDecoder takes an ImageDecoderConfig, got {type(cfg).__name__}; "
                            f"e.g. PatchImageDecoder(ImageDecoderConfig(d_cond=64, image_size=32, patch_size=8))")
        self.cfg = cfg
        d_cond, image_size, patch_size, d_model = cfg.d_cond, cfg.image_size, cfg.patch_size, cfg.d_model
        self.d_cond, self.image_size, self.patch_size = d_cond, image_size, patch_size
        self.n_patches = (image_size // patch_size) ** 2
        patch_values = 3 * patch_size * patch_size
        self.projector = Projector(d_cond, d_model)  # conditioning width → model width
        self.queries = nn.Parameter(torch.randn(self.n_patches, d_model) * 0.02)  # one per patch position
        self.blocks = nn.ModuleList(CrossAttentionBlock(d_model, d_model, cfg.n_heads) for _ in range(cfg.n_layers))
        self.ln_final = nn.LayerNorm(d_model)
        self.to_pixels = nn.Linear(d_model, patch_values)
        nn.init.zeros_(self.to_pixels.weight)  # so an untrained decoder draws exactly the pixel bias picture
        nn.init.zeros_(self.to_pixels.bias)
        self.pixel_bias = nn.Parameter(torch.zeros(self.n_patches, patch_values))  # logits of a background picture

    def patch_logits(self, cond: Tokens) -> torch.Tensor:
        """cond Tokens (B, L, d_cond) → pixel logits per patch (B, N, 3·P·P), before unpatchify and sigmoid."""
        check_conditioning(cond, self.d_cond, "PatchImageDecoder")
        cond = Tokens(self.projector(cond.states), cond.padding_mask)  # (B, L, d_model)
        x = self.queries.expand(cond.states.shape[0], -1, -1)  # (B, N, d_model)
        for block in self.blocks:
            x = block(x, cond.states, cond.padding_mask)
        return self.to_pixels(self.ln_final(x)) + self.pixel_bias  # (B, N, 3·P·P)

    def forward(self, cond: Tokens) -> torch.Tensor:
        """cond Tokens (B, L, d_cond) → images (B, 3, S, S), floats in [0, 1]."""
        patches = self.patch_logits(cond)
        return torch.sigmoid(unpatchify(patches, self.patch_size, self.image_size))

    @torch.no_grad()
    def start_from(self, mean_image: torch.Tensor) -> None:
        """Set the pixel bias so that an untrained decoder draws `mean_image` (3, S, S) in [0, 1]
        (up to the clamp to [0.01, 0.99] that keeps the logits finite):
        training then starts from the average picture instead of grey, and skips the slow first steps."""
        s = self.image_size
        if mean_image.shape != (3, s, s):
            raise ValueError(f"mean_image must be (3, {s}, {s}) in [0, 1], got shape {tuple(mean_image.shape)}; "
                             f"e.g. to_unit_range(images).mean(dim=0)")
        logits = torch.logit(mean_image.float().clamp(0.01, 0.99))  # the sigmoid's inverse
        self.pixel_bias.copy_(patchify(logits[None], self.patch_size)[0].to(self.pixel_bias.device))


@torch.inference_mode()
def generate_images(text_encoder, decoder: PatchImageDecoder, captions) -> torch.Tensor:
    """Caption strings → images (B, 3, S, S) in [0, 1]: encode with `text_encoder` (a mmcourse TextEncoder
    or anything that maps a list of strings to Tokens), then decode. Both models run in eval mode."""
    if isinstance(captions, str):
        captions = [captions]
    modes = decoder.training, text_encoder.training
    decoder.eval()
    text_encoder.eval()
    try:
        return decoder(text_encoder(captions))
    finally:  # give the models back in the mode they came in
        decoder.train(modes[0])
        text_encoder.train(modes[1])


# ---------------------------------------------------------------- the probe


class AttributeProbe(nn.Module):
    """A small CNN that names the one object of a scene: images (B, 3, S, S) in [0, 1] → logits per attribute.

    Returns {"colors": (B, 6), "shapes": (B, 4), "sizes": (B, 2), "quadrants": (B, 4)}. Colour, shape and
    size are read from a max over all positions (wherever the object is); the quadrant from a 2 × 2 max.
    """

    def __init__(self, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # (B, w, S/2, S/2)
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 4w, S/4, S/4)
        )
        self.what = nn.ModuleDict({name: nn.Linear(4 * width, n) for name, n in ATTRIBUTES.items() if name != "quadrants"})
        self.where = nn.Linear(4 * width * 4, ATTRIBUTES["quadrants"])

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[-1] % 4 or images.shape[-2] % 4:
            raise ValueError(f"AttributeProbe reads images (B, 3, S, S) with S a multiple of 4, got {tuple(images.shape)}")
        h = self.features(images)  # (B, 4w, S/4, S/4)
        logits = {name: head(h.amax(dim=(2, 3))) for name, head in self.what.items()}
        logits["quadrants"] = self.where(F.adaptive_max_pool2d(h, 2).flatten(1))  # 2 × 2 cells = the quadrants
        return logits


def attribute_accuracy(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> dict[str, float]:
    """Share of correct guesses per attribute, and "joint": colour and shape both right.

    logits {name: (B, C)}, labels {name: (B,)} class indices → {name: float in [0, 1], ..., "joint": float}.
    """
    missing = set(logits) - set(labels)
    if missing:
        raise ValueError(f"no labels for {sorted(missing)}; pass labels with the keys {sorted(logits)}")
    correct = {}
    for name, scores in logits.items():
        target = labels[name]
        if scores.dim() != 2 or target.shape != scores.shape[:1]:
            raise ValueError(f"{name}: logits must be (B, C) and labels (B,), got {tuple(scores.shape)} and "
                             f"{tuple(target.shape)}")
        correct[name] = scores.argmax(dim=-1) == target.to(scores.device)
    result = {name: c.float().mean().item() for name, c in correct.items()}
    if "colors" in correct and "shapes" in correct:
        result["joint"] = (correct["colors"] & correct["shapes"]).float().mean().item()
    return result


# ---------------------------------------------------------------- checks (below the code they guard)


def _check_pair(generated: torch.Tensor, target: torch.Tensor) -> None:
    for name, x in (("generated", generated), ("target", target)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} must be a float tensor (B, 3, S, S) in [0, 1]; convert uint8 images with "
                            f"to_unit_range(images)")
    if generated.dim() != 4:
        raise ValueError(f"generated must be (B, 3, S, S), got shape {tuple(generated.shape)}")
    if generated.shape != target.shape:
        raise ValueError(f"generated {tuple(generated.shape)} and target {tuple(target.shape)} must have the same "
                         f"shape: one target per image. A (3, S, S) target would silently broadcast over the batch; "
                         f"if you mean one picture for all, use target.expand_as(generated)")
