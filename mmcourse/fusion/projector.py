"""The projector, written once: the connector that brings an encoder's states to the width of whatever reads them.

    Projector(d_in, d_out)              one Linear: CLIP's projection, LLaVA-1's connector
    Projector(d_in, d_out, hidden=h)    Linear → GELU → Linear: LLaVA-1.5's MLP connector, SimCLR's head
    ModalityProjection(widths, d)       one projector per modality, plus a learned modality embedding

Shapes: (…, d_in) → (…, d_out), applied to every token (or pooled vector) on its own.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from mmcourse.tokens import Tokens, check_modalities


class Projector(nn.Sequential):
    """(…, d_in) → (…, d_out): a Linear (hidden=0) or a two-layer MLP with a GELU between (hidden > 0)."""

    def __init__(self, d_in: int, d_out: int, hidden: int = 0):
        for name, value, low in (("d_in", d_in, 1), ("d_out", d_out, 1), ("hidden", hidden, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int ≥ {low}, got {value!r}")
        layers = [nn.Linear(d_in, d_out)] if hidden == 0 else [nn.Linear(d_in, hidden), nn.GELU(),
                                                               nn.Linear(hidden, d_out)]
        super().__init__(*layers)
        self.d_in, self.d_out = d_in, d_out


class ModalityProjection(nn.Module):
    """Bring every modality to d_model and tag it: W_m x + e_m (e_m a learned modality embedding).

    {modality: Tokens (B, L_m, D_m)} → {modality: Tokens (B, L_m, d_model)}, padding masks unchanged."""

    def __init__(self, widths: dict[str, int], d_model: int):
        super().__init__()
        if not widths:
            raise ValueError("a fusion module needs at least one modality, e.g. {'text': 64, 'image': 64}")
        self.widths = dict(widths)
        self.proj = nn.ModuleDict({m: Projector(w, d_model) for m, w in widths.items()})
        self.embedding = nn.ParameterDict({m: nn.Parameter(torch.zeros(d_model)) for m in widths})

    def forward(self, inputs: dict[str, Tokens]) -> dict[str, Tokens]:
        check_modalities(inputs, self.widths)
        return {m: Tokens(self.proj[m](t.states) + self.embedding[m], t.padding_mask) for m, t in inputs.items()}
