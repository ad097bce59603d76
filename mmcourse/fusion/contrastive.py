"""A shared embedding space, CLIP-style (Radford et al., 2021).

Two encoders, two projection heads, one space: matching pairs (image_i, text_i) should be
closer to each other than to any other item in the batch.

    a = normalize(head_a(x_a)), b = normalize(head_b(x_b))        (B, D) each, unit length
    logits = scale · a bᵀ                                          (B, B), scale = exp(t) = 1/temperature
    loss = ( CE(logits, diag) + CE(logitsᵀ, diag) ) / 2          symmetric InfoNCE

CLIP learns t, initialised so that scale = 1/0.07 ≈ 14.3, and clamps the scale at 100.

The other rows of a batch are the negatives, so two rows that describe the same thing (the
same caption twice) are *false* negatives: the loss pushes apart what should coincide.
`distinct_batches` draws batches without such duplicates, and `unique_indices` deduplicates
a retrieval gallery, where identical captions could never be told apart.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcourse.fusion.projector import Projector

INIT_TEMPERATURE = 0.07
MAX_LOGIT_SCALE = 100.0


class ProjectionHead(nn.Module):
    """Map an encoder's pooled output (B, d_in) to the shared space (B, d_out), unit length.

    hidden=0 gives CLIP's single linear projection; hidden>0 a two-layer MLP (as in SimCLR).
    Unit length makes the dot product of two outputs their cosine similarity.
    """

    def __init__(self, d_in: int, d_out: int, hidden: int = 0):
        super().__init__()
        self.d_in, self.d_out = d_in, d_out
        self.net = Projector(d_in, d_out, hidden)  # a Linear (hidden=0) or Linear → GELU → Linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.d_in:
            hint = "; pool the tokens first (mmcourse.fusion.pool)" if x.dim() == 3 else ""
            raise ValueError(f"this head takes vectors of width d_in = {self.d_in}, got shape {tuple(x.shape)}; "
                             f"build it as ProjectionHead({x.shape[-1]}, ...) for this encoder{hint}")
        return F.normalize(self.net(x), dim=-1)


class LogitScale(nn.Module):
    """CLIP's learnable temperature, stored as log(1/temperature); forward() returns the clamped scale.

    Learning the logarithm keeps the scale positive and makes its steps relative (×e^δ, not +δ).
    The clamp (at 100, i.e. temperature 0.01) stops the scale from growing without end: on
    pairs the model already separates, a larger scale always lowers the loss.
    """

    def __init__(self, temperature: float = INIT_TEMPERATURE, max_scale: float = MAX_LOGIT_SCALE):
        super().__init__()
        if not 0 < temperature:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if not 0 < max_scale:
            raise ValueError(f"max_scale must be positive, got {max_scale}")
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.max_scale = max_scale

    def forward(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=self.max_scale)

    @property
    def temperature(self) -> float:
        """The current temperature, 1 / scale (after the clamp)."""
        return 1.0 / float(self().detach())


def clip_loss(a: torch.Tensor, b: torch.Tensor, logit_scale) -> torch.Tensor:
    """Symmetric InfoNCE. a (B, D), b (B, D): row i of a matches row i of b. Inputs are L2-normalised here.

    logit_scale is the scale 1/temperature (a float or a 0-dim tensor, e.g. LogitScale()()), not its log.
    """
    _check_pairs(a, b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a has {a.shape[0]} rows and b has {b.shape[0]}: the loss needs matching pairs, one per row")
    if a.shape[0] < 2:
        raise ValueError("a contrastive loss needs at least 2 pairs (the other rows are the negatives)")
    value = float(logit_scale.detach()) if isinstance(logit_scale, torch.Tensor) else float(logit_scale)
    if not value > 0:
        raise ValueError(f"logit_scale must be positive (it is 1/temperature), got {value:g}; "
                         f"pass the scale LogitScale()() = exp(log_scale), not the logarithm itself")
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = logit_scale * a @ b.T  # (B, B): row i = a_i against every b_j
    target = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarities (Na, D), (Nb, D) → (Na, Nb)."""
    _check_pairs(a, b)
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def recall_at_k(similarity: torch.Tensor, k: int = 1) -> tuple[float, float]:
    """Recall@K in both directions for an (N, N) similarity whose correct matches lie on the diagonal.

    Returns (rows → columns, columns → rows): the fraction of rows whose match is among their
    k most similar columns, and the same for columns. Ties count against the match.
    """
    if similarity.dim() != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"similarity must be square (N, N) with matches on the diagonal, got {tuple(similarity.shape)}")
    n = similarity.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and N = {n}, got {k!r}")
    diagonal = similarity.diagonal()
    # rank = how many candidates score at least as high as the match (the match itself included)
    rank_rows = (similarity >= diagonal[:, None]).sum(dim=1)
    rank_cols = (similarity >= diagonal[None, :]).sum(dim=0)
    return (rank_rows <= k).float().mean().item(), (rank_cols <= k).float().mean().item()


# ---------------------------------------------------------------- duplicates: galleries and batches


def unique_indices(labels: Sequence[Hashable]) -> list[int]:
    """Indices of the first occurrence of each distinct label, in order: ["a", "b", "a", "c"] → [0, 1, 3].

    Use it to build a retrieval gallery: two items with the same caption cannot be told apart,
    so a gallery holding both would count a correct answer as a miss half of the time.
    """
    seen, keep = set(), []
    for i, label in enumerate(labels):
        if label not in seen:
            seen.add(label)
            keep.append(i)
    return keep


def distinct_batches(tensors: dict[str, torch.Tensor], labels: Sequence[Hashable], batch_size: int,
                     seed: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """Endless random mini-batches in which no two items share a label (e.g. the same caption).

    In a contrastive batch every other row is a negative; a duplicate would be a false negative
    that the loss pushes away. Each batch visits the items in a fresh seeded random order and
    keeps the first item of each label until it holds batch_size items.
    """
    sizes = {k: v.shape[0] for k, v in tensors.items()}
    n = len(labels)
    if any(size != n for size in sizes.values()):
        raise ValueError(f"every tensor needs one row per label ({n} labels), got {sizes}")
    n_distinct = len(set(labels))
    if not 2 <= batch_size <= n_distinct:
        raise ValueError(f"batch_size must be between 2 and the number of distinct labels ({n_distinct}), "
                         f"got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=generator).tolist()
        seen, keep = set(), []
        for i in order:
            if labels[i] not in seen:
                seen.add(labels[i])
                keep.append(i)
                if len(keep) == batch_size:
                    break
        index = torch.tensor(keep)
        yield {k: v[index] for k, v in tensors.items()}


# ---------------------------------------------------------------- checks (below the code they guard)


def _check_pairs(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"a and b must be (B, D), got {tuple(a.shape)} and {tuple(b.shape)}; pool token states first")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a has width {a.shape[1]} and b has {b.shape[1]}: project both into the shared space first")
