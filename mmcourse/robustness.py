"""The hard parts, in code: noisy pairs, missing modalities, modality imbalance, attribution, probes.

    partner = misalign_pairs(1000, fraction=0.2, seed=0)    # (1000,): text partner[i] goes with image i; 200 are wrong
    inputs = modality_dropout({"text": t, "audio": a}, p=0.5, generator=g)   # some modalities masked, per sample
    is_present(inputs["text"])                                # (B,) True where the sample still has a real token
    loss.backward(); grad_norms({"text": model.text_branch, "audio": model.audio_branch})   # {"text": 0.4, ...}
    patch_attribution(grad, pixel_values, patch_size=8)       # (B, 64)  gradient × input, summed per patch
    frame_attribution(grad, input_features)                   # (B, 300) gradient × input, summed per log-mel frame
    linear_probe_accuracy(train_x, train_y, test_x, test_y)   # 0.93: how linearly decodable y is from x

Missing modalities follow mmcourse.tokens' key-padding convention: a modality that a sample lacks is
a Tokens whose padding_mask is True everywhere in that sample's row. Fusion that pools or attends over
real tokens only then ignores it, exactly as it ignores padding; no zeros are fed in its place.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn

from mmcourse.tokens import Tokens
from mmcourse.vision import patchify

# ---------------------------------------------------------------- data: misaligned pairs


def misalign_pairs(n: int, fraction: float, seed: int = 0) -> torch.Tensor:
    """Which text goes with which image when a `fraction` of n pairs is wrong: partner (n,) long.

    Pair i is (image i, text partner[i]). Exactly k = round(fraction · n) pairs, chosen at random, get
    the text of another item, drawn uniformly from the other n − 1 (so partner[i] ≠ i for them);
    the rest keep partner[i] = i. The same seed always gives the same pairs. This is how web alt-text
    goes wrong: the caption belongs to some other picture.
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int ≥ 2 (a wrong partner needs another item), got {n!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1] (the share of wrong pairs), got {fraction!r}")
    generator = torch.Generator().manual_seed(seed)
    k = round(fraction * n)
    wrong = torch.randperm(n, generator=generator)[:k]  # (k,) the pairs to break
    partner = torch.arange(n)
    partner[wrong] = (wrong + torch.randint(1, n, (k,), generator=generator)) % n  # any item but itself
    return partner


# ---------------------------------------------------------------- missing modalities


def _check_inputs(inputs: dict[str, Tokens]) -> int:
    """A non-empty dict of Tokens with one batch size; returns B."""
    if not isinstance(inputs, dict) or not inputs:
        raise ValueError("inputs must be a non-empty dict {modality: Tokens}, e.g. {'text': t, 'audio': a}")
    for name, tokens in inputs.items():
        if not isinstance(tokens, Tokens):
            raise TypeError(f"inputs[{name!r}] must be mmcourse.tokens.Tokens(states, padding_mask), "
                            f"got {type(tokens).__name__}")
    sizes = {name: tokens.states.shape[0] for name, tokens in inputs.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"modalities have different batch sizes: {sizes}; each sample needs all its modalities")
    return next(iter(sizes.values()))


def is_present(tokens: Tokens) -> torch.Tensor:
    """(B,) bool: True where the sample has at least one real (unmasked) token of this modality."""
    if not isinstance(tokens, Tokens):
        raise TypeError(f"expected mmcourse.tokens.Tokens, got {type(tokens).__name__}")
    return ~tokens.padding_mask.all(dim=1)


def modality_dropout(inputs: dict[str, Tokens], p: float, generator: torch.Generator | None = None) -> dict[str, Tokens]:
    """Drop whole modalities per sample during training, never all of a sample's modalities.

    inputs {name: Tokens (B, L_m, D_m)} → the same dict with new padding masks: for each sample, each
    modality is dropped with probability p (all its tokens marked as padding); a sample that would lose
    every modality it has keeps one of them, chosen at random. States are not touched and nothing is
    rescaled (unlike nn.Dropout): the point is to train on the subsets of modalities met at test time.
    Because of the "keep one" rule, the actual drop rate is a little below p (p − p²/2 for two modalities).
    Random numbers come from `generator` (CPU) if given, so a seeded generator makes it reproducible.
    """
    batch = _check_inputs(inputs)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    names = list(inputs)
    present = torch.stack([is_present(inputs[m]).cpu() for m in names], dim=1)  # (B, M)
    drop = (torch.rand(batch, len(names), generator=generator) < p) & present  # (B, M)
    emptied = present.any(dim=1) & ~(present & ~drop).any(dim=1)  # (B,) would lose everything it has
    scores = torch.rand(batch, len(names), generator=generator).masked_fill(~present, -1.0)
    keep = scores.argmax(dim=1)  # (B,) a random present modality
    drop[emptied, keep[emptied]] = False
    return {m: Tokens(inputs[m].states, inputs[m].padding_mask | drop[:, j, None].to(inputs[m].padding_mask.device))
            for j, m in enumerate(names)}


# ---------------------------------------------------------------- training: per-modality gradients


def grad_norms(groups: dict[str, nn.Module | Iterable[torch.Tensor]]) -> dict[str, float]:
    """After loss.backward(): the L2 norm of each group's gradients, as if they were one long vector.

    groups {name: a module or its parameters} → {name: ‖∇‖₂}. A parameter without a gradient (unused in
    this step, or frozen) counts as zero. Call it between backward() and optimizer.step(): zero_grad
    (set_to_none) wipes the gradients.
    """
    if not isinstance(groups, dict) or not groups:
        raise ValueError("groups must be a non-empty dict {name: module or parameters}")
    norms = {}
    for name, group in groups.items():
        params = list(group.parameters()) if isinstance(group, nn.Module) else list(group)
        if not params:
            raise ValueError(f"group {name!r} has no parameters")
        squares = [p.grad.detach().float().pow(2).sum() for p in params if p.grad is not None]
        norms[name] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    return norms


# ---------------------------------------------------------------- interpretability: attribution and probes


def _check_pair(grad: torch.Tensor, x: torch.Tensor, dims: int, layout: str) -> None:
    for name, t in (("grad", grad), ("x", x)):
        if not isinstance(t, torch.Tensor) or t.dim() != dims:
            raise ValueError(f"{name} must be a {layout} tensor, got {tuple(getattr(t, 'shape', ()))}")
    if grad.shape != x.shape:
        raise ValueError(f"grad {tuple(grad.shape)} and input {tuple(x.shape)} must have the same shape: "
                         f"the gradient of a score with respect to exactly this input")


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
