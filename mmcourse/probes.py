"""Looking inside a model: which input parts a score depends on, what its states encode, how peaked its attention is.

    patch_attribution(grad, pixel_values, patch_size=8)       # (B, 64)  gradient × input, summed per patch
    frame_attribution(grad, input_features)                   # (B, 300) gradient × input, summed per log-mel frame
    linear_probe_accuracy(train_x, train_y, test_x, test_y)   # 0.93: how linearly decodable y is from x
    mean_max_weight(scores, padding_mask)                     # 0.98: nearly one-hot attention (1/Lk = uniform)
    neighbour_correlation(pixel_values)                       # 0.9 for a photo, 0.0 for torch.randn
"""

from __future__ import annotations

import torch
import torch.nn as nn

from mmcourse.encoding.vision import patchify

def patch_attribution(grad: torch.Tensor, pixel_values: torch.Tensor, patch_size: int,
                      baseline: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Gradient × (input − baseline), summed over each patch: (B, C, S, S) → (B, N), N = (S / P)².

    grad is ∂score/∂pixel_values. Patches come in row-major order, as a ViT orders its tokens. The sum is
    the first-order estimate of how much the score would fall if the patch were replaced by the baseline.
    The baseline is part of every attribution: with 0, a normalised image is compared with mid-grey, so
    an empty dark background gets credit too; with the background's value it gets none.
    """
    _check_pair(grad, pixel_values, 4, "(B, C, S, S)")
    return patchify(grad * (pixel_values - baseline), patch_size).sum(dim=-1)  # (B, N, C·P·P) → (B, N)


def frame_attribution(grad: torch.Tensor, input_features: torch.Tensor,
                      baseline: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Gradient × (input − baseline), summed over the mel bins of each frame: (B, n_mels, F) → (B, F).

    For Whisper's log-mel features a natural baseline is silence: the floor value that padding gets.
    """
    _check_pair(grad, input_features, 3, "(B, n_mels, F)")
    return (grad * (input_features - baseline)).sum(dim=1)


def linear_probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                          ridge: float = 1e-3) -> float:
    """Fit a linear classifier on frozen features in closed form (ridge least squares); its test accuracy.

    train_x (N, D), train_y (N,) class ids → X = [train_x, 1] (N, D + 1), Y = one-hot(train_y) (N, C),
    W = (XᵀX + ridge · I)⁻¹ XᵀY, prediction argmax([test_x, 1] W). C = 1 + the largest label seen.
    A probe measures what is *linearly decodable* from a representation, not what the model uses.
    """
    for name, t, dims in (("train_x", train_x, 2), ("test_x", test_x, 2), ("train_y", train_y, 1), ("test_y", test_y, 1)):
        if not isinstance(t, torch.Tensor) or t.dim() != dims:
            raise ValueError(f"{name} must be a {'(N, D)' if dims == 2 else '(N,)'} tensor, "
                             f"got {tuple(getattr(t, 'shape', ()))}")
    if train_x.shape[0] != train_y.shape[0] or test_x.shape[0] != test_y.shape[0]:
        raise ValueError(f"one label per row: train_x {tuple(train_x.shape)} with train_y {tuple(train_y.shape)}, "
                         f"test_x {tuple(test_x.shape)} with test_y {tuple(test_y.shape)}")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x has {train_x.shape[1]} features and test_x {test_x.shape[1]}: probe the same layer")
    if train_y.is_floating_point() or test_y.is_floating_point():
        raise TypeError("labels must be integer class ids (0, 1, …), not floats or one-hot rows")
    if ridge < 0:
        raise ValueError(f"ridge must be ≥ 0, got {ridge}")

    def with_bias(x):
        x = x.detach().double().cpu()
        return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)  # (N, D + 1)

    x, x_test = with_bias(train_x), with_bias(test_x)
    classes = int(max(train_y.max(), test_y.max())) + 1
    y = nn.functional.one_hot(train_y.cpu().long(), classes).double()  # (N, C)
    weights = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)  # (D + 1, C)
    return float(((x_test @ weights).argmax(dim=1) == test_y.cpu()).double().mean())


# ---------------------------------------------------------------- attention and images


def neighbour_correlation(x: torch.Tensor) -> float:
    """Correlation between each pixel and the pixel to its right, over everything in x (…, H, W).

    About 0.9 for a photo (neighbouring pixels look alike), about 0 for torch.randn noise: the quickest test
    of whether an "image" is one."""
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[-1] < 2:
        raise ValueError(f"x must be a tensor (…, H, W) with W ≥ 2, got {tuple(getattr(x, 'shape', ()))}")
    pairs = torch.stack([x[..., :, :-1].flatten(), x[..., :, 1:].flatten()]).double()
    return torch.corrcoef(pairs)[0, 1].item()


def mean_max_weight(scores: torch.Tensor, padding_mask: torch.Tensor | None = None) -> float:
    """How peaked attention is: the mean, over queries, of the largest softmax weight each gives (1.0 = one-hot,
    1/Lk = spread evenly). scores (B, Lq, Lk) before the softmax, padding_mask (B, Lk) True = padding."""
    if not isinstance(scores, torch.Tensor) or scores.dim() != 3:
        raise ValueError(f"scores must be (B, Lq, Lk) attention scores, got {tuple(getattr(scores, 'shape', ()))}")
    if padding_mask is not None:
        if padding_mask.shape != (scores.shape[0], scores.shape[2]) or padding_mask.dtype != torch.bool:
            raise ValueError(f"padding_mask must be (B, Lk) = {(scores.shape[0], scores.shape[2])} bool, True = "
                             f"padding, got {tuple(padding_mask.shape)} {padding_mask.dtype}")
        scores = scores.masked_fill(padding_mask[:, None, :], float("-inf"))
    return scores.softmax(dim=-1).amax(dim=-1).mean().item()


# ---------------------------------------------------------------- checks


def _check_pair(grad: torch.Tensor, x: torch.Tensor, dims: int, layout: str) -> None:
    for name, t in (("grad", grad), ("x", x)):
        if not isinstance(t, torch.Tensor) or t.dim() != dims:
            raise ValueError(f"{name} must be a {layout} tensor, got {tuple(getattr(t, 'shape', ()))}")
    if grad.shape != x.shape:
        raise ValueError(f"grad {tuple(grad.shape)} and input {tuple(x.shape)} must have the same shape: "
                         f"the gradient of a score with respect to exactly this input")
