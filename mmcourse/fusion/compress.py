"""Fewer tokens for the LLM: merge neighbouring encoder states before the projector.

    pixel_shuffle(x, factor)          (B, H·W, D) → (B, H·W / f², D·f²)   space-to-depth (nanoVLM, InternVL)
    downsample_frames(x, stride, …)   (B, T, D) → (B, ⌈T / k⌉, D·k) or (B, ⌈T / k⌉, D)   audio frames (Qwen-Audio pools by 2)

Every LLM position costs the same compute in every one of its layers, so an encoder's 64 patches or 1500 audio
frames are too many: merging f × f neighbouring patches (or k neighbouring frames) into one wider vector keeps
all the numbers (stacking) or averages them (pooling), and the projector then maps the wider vector to the
LLM's width.
"""

from __future__ import annotations

import math

import torch


def pixel_shuffle(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """(B, N, D) patch tokens on a √N × √N grid (row-major) → (B, N / f², D · f²).

    Each output token holds an f × f block of neighbouring patches, concatenated in row-major order
    (top-left, top-right, …), so no number is lost: the grid gets coarser, the vectors wider."""
    _check_grid(x, factor)
    b, n, d = x.shape
    side = math.isqrt(n)
    x = x.reshape(b, side // factor, factor, side // factor, factor, d)  # (B, rows, f, cols, f, D)
    x = x.permute(0, 1, 3, 2, 4, 5)  # (B, rows, cols, f, f, D): each block's patches together
    return x.reshape(b, (side // factor) ** 2, factor * factor * d)


def downsample_frames(x: torch.Tensor, stride: int = 2, mode: str = "stack") -> torch.Tensor:
    """(B, T, D) frames → (B, ⌈T / k⌉, D·k) with mode="stack" (concatenate k neighbours), or
    (B, ⌈T / k⌉, D) with mode="mean" (average them: Qwen-Audio's pooling by 2).

    A last incomplete group is padded by repeating the last frame, so no frame is dropped."""
    _check_frames(x, stride, mode)
    b, t, d = x.shape
    groups = -(-t // stride)
    if groups * stride > t:
        x = torch.cat([x, x[:, -1:].expand(b, groups * stride - t, d)], dim=1)
    x = x.reshape(b, groups, stride, d)
    return x.reshape(b, groups, stride * d) if mode == "stack" else x.mean(dim=2)


def downsampled_length(n_frames: int, stride: int) -> int:
    """How many tokens downsample_frames leaves of n_frames: ⌈n_frames / stride⌉."""
    return -(-n_frames // stride)


# ---------------------------------------------------------------- checks (below the code they guard)


def _check_grid(x: torch.Tensor, factor: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ValueError(f"pixel_shuffle needs patch tokens (B, N, D), got shape {tuple(getattr(x, 'shape', ()))}; "
                         "drop the [CLS] token first (states[:, 1:])")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be an int ≥ 1, got {factor!r}")
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1] or side % factor:
        raise ValueError(f"pixel_shuffle needs a square grid whose side is a multiple of factor={factor}; got "
                         f"{x.shape[1]} tokens. Did you keep the [CLS] token? Pass states[:, 1:]")


def _check_frames(x: torch.Tensor, stride: int, mode: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[1] == 0:
        raise ValueError(f"downsample_frames needs frames (B, T ≥ 1, D), got shape {tuple(getattr(x, 'shape', ()))}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be an int ≥ 1, got {stride!r}")
    if mode not in ("stack", "mean"):
        raise ValueError(f"mode must be 'stack' (concatenate neighbours) or 'mean' (average them), got {mode!r}")
