"""Notebook 08's captioner: a frozen image encoder, a trained projector, a text decoder that writes the caption.

    pixel_values (B, 3, S, S) ─► frozen ViT ─► patch states (B, g², w), [CLS] dropped, standardised
                              ─► projector: 2 × 2 conv over the patch grid → GELU → 1 × 1 conv     (B, (g−1)², w)
                              ─► Tokens ─► TextDecoder (prefix or cross) ─► logits (B, T, vocab)

Only the projector, its position embeddings and the decoder learn; the ViT stays frozen, as in LLaVA's first
stage. The 2 × 2 convolution lets each image token see four neighbouring patches (g² = 64 → 49 tokens).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from mmcourse.tokens import Tokens


class FrozenEncoderWithProjector(nn.Module):
    """pixel_values (B, 3, S, S) → Tokens (B, (grid − 1)², width) from a frozen mmcourse ImageEncoder `vit`.

    mean and std (buffers) standardise the frozen features; set them from the training set's features."""

    def __init__(self, vit: nn.Module, grid: int):
        super().__init__()
        self.vit, self.grid, width = vit.requires_grad_(False), grid, vit.width
        self.register_buffer("mean", torch.zeros(width))  # feature statistics, set from the training set
        self.register_buffer("std", torch.ones(width))
        self.projector = nn.Sequential(nn.Conv2d(width, 2 * width, kernel_size=2), nn.GELU(),
                                       nn.Conv2d(2 * width, width, kernel_size=1))
        self.position = nn.Parameter(torch.randn(1, (grid - 1) ** 2, width) * 0.02)

    @torch.no_grad()
    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The frozen part: standardised patch states (B, grid², width), [CLS] dropped."""
        return (self.vit(pixel_values).states[:, 1:] - self.mean) / self.std

    def project(self, features: torch.Tensor) -> Tokens:
        """Standardised patch states (B, grid², width) → image tokens (B, (grid − 1)², width)."""
        b, n, d = features.shape
        grid = features.transpose(1, 2).reshape(b, d, self.grid, self.grid)  # the patches back on their grid
        x = self.projector(grid).flatten(2).transpose(1, 2) + self.position  # (B, (grid − 1)², d)
        return Tokens(x, torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device))

    def forward(self, pixel_values: torch.Tensor) -> Tokens:
        return self.project(self.features(pixel_values))


class Captioner(nn.Module):
    """pixel_values (B, 3, S, S), input_ids (B, T) → logits (B, T, vocab): encoder → Tokens → decoder."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        return self.decoder(input_ids, self.encoder(pixel_values))
