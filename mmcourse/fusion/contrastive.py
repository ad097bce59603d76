"""A shared embedding space, CLIP-style (Radford et al., 2021).

Two encoders, two projection heads, one space: matching pairs (image_i, text_i) should be
closer to each other than to any other item in the batch.

    a = normalize(head_a(x_a)), b = normalize(head_b(x_b))        (B, D) each, unit length
    logits = scale · a bᵀ                                          (B, B), scale = exp(t) = 1/temperature
    loss = ( CE(logits, diag) + CE(logitsᵀ, diag) ) / 2          symmetric InfoNCE

CLIP learns t, initialised so that scale = 1/0.07 ≈ 14.3, and clamps the scale at 100.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

INIT_TEMPERATURE = 0.07
MAX_LOGIT_SCALE = 100.0


class ProjectionHead(nn.Module):
    """Map an encoder's pooled output (B, d_in) to the shared space (B, d_out), unit length.

    hidden=0 gives CLIP's single linear projection; hidden>0 a two-layer MLP (as in SimCLR).
    """

    def __init__(self, d_in: int, d_out: int, hidden: int = 0):
        super().__init__()
        self.net = nn.Linear(d_in, d_out) if hidden == 0 else nn.Sequential(
            nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=-1)


class LogitScale(nn.Module):
    """CLIP's learnable temperature, stored as log(1/temperature); forward() returns the clamped scale."""

    def __init__(self, temperature: float = INIT_TEMPERATURE, max_scale: float = MAX_LOGIT_SCALE):
        super().__init__()
        if not 0 < temperature:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.max_scale = max_scale

    def forward(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=self.max_scale)


def clip_loss(a: torch.Tensor, b: torch.Tensor, logit_scale) -> torch.Tensor:
    """Symmetric InfoNCE. a (B, D), b (B, D): row i of a matches row i of b. Inputs are L2-normalised here."""
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"a and b must be (B, D), got {tuple(a.shape)} and {tuple(b.shape)}; pool token states first")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a has {a.shape[0]} rows and b has {b.shape[0]}: the loss needs matching pairs, one per row")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a has width {a.shape[1]} and b has {b.shape[1]}: project both into the shared space first")
    if a.shape[0] < 2:
        raise ValueError("a contrastive loss needs at least 2 pairs (the other rows are the negatives)")
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = logit_scale * a @ b.T  # (B, B): row i = a_i against every b_j
    target = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarities (Na, D), (Nb, D) → (Na, Nb)."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def recall_at_k(similarity: torch.Tensor, k: int = 1) -> tuple[float, float]:
    """Recall@K in both directions for an (N, N) similarity whose correct matches lie on the diagonal.

    Returns (rows → columns, columns → rows): the fraction of rows whose match is among their
    k most similar columns, and the same for columns. Ties count against the match.
    """
    if similarity.dim() != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"similarity must be square (N, N) with matches on the diagonal, got {tuple(similarity.shape)}")
    n = similarity.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and N = {n}, got {k}")
    diagonal = similarity.diagonal()
    # rank = how many candidates score at least as high as the match (the match itself included)
    rank_rows = (similarity >= diagonal[:, None]).sum(dim=1)
    rank_cols = (similarity >= diagonal[None, :]).sum(dim=0)
    return (rank_rows <= k).float().mean().item(), (rank_cols <= k).float().mean().item()
