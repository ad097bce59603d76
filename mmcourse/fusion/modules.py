"""The fusion zoo: seven ways to combine modalities, one interface.

Every module is built from the widths of its inputs and one model width:

    fusion = GatedCrossAttention({"text": 64, "image": 64}, d_model=64, query="text")
    fused = fusion({"text": Tokens(...), "image": Tokens(...)})      # → Tokens (B, L_out, d_model)
    vector = pool(fused)                                              # → (B, d_model) for a task head

Inputs are mmcourse.tokens.Tokens (states (B, L, D) + padding_mask (B, L), True = padding), one per
modality; a module may be given a subset of its modalities (a missing modality), except where noted.

| module               | idea                                                       | paper                       |
|----------------------|------------------------------------------------------------|-----------------------------|
| EarlyFusion          | concatenate all tokens, run self-attention over them       | VisualBERT, "single stream" |
| LateFusion           | pool each modality on its own, then average                | classic late fusion         |
| TensorFusion         | outer product of the pooled vectors (each with a 1 added)  | Zadeh et al., 2017 (TFN)    |
| LowRankFusion        | the same product, factorised to rank r                     | Liu et al., 2018 (LMF)      |
| GatedCrossAttention  | one modality attends to the others through a tanh gate = 0 | Alayrac et al., 2022        |
| QueryResampler       | n learned queries attend to everything: n tokens out       | Perceiver / BLIP-2 Q-Former |
| GraphFusion          | modalities are nodes; messages pass along the edges        | graph-based fusion          |
"""

from __future__ import annotations

import torch
import torch.nn as nn

from mmcourse.fusion.attention import MultiHeadCrossAttention
from mmcourse.tokens import Tokens


def pool(tokens: Tokens) -> torch.Tensor:
    """Masked mean over the real tokens: Tokens (B, L, D) → (B, D)."""
    keep = (~tokens.padding_mask).to(tokens.states.dtype).unsqueeze(-1)  # (B, L, 1)
    return (tokens.states * keep).sum(1) / keep.sum(1).clamp(min=1.0)


def concat(tokens: list[Tokens]) -> Tokens:
    """Join token sequences along the length: [(B, L_i, D)] → (B, ΣL_i, D)."""
    return Tokens(torch.cat([t.states for t in tokens], dim=1), torch.cat([t.padding_mask for t in tokens], dim=1))


class FeedForward(nn.Sequential):
    """The transformer MLP: (…, d) → (…, d)."""

    def __init__(self, d: int, mult: int = 4):
        super().__init__(nn.Linear(d, mult * d), nn.GELU(), nn.Linear(mult * d, d))


class ModalityProjection(nn.Module):
    """Bring every modality to d_model and tag it: W_m x + e_m (e_m a learned modality embedding)."""

    def __init__(self, widths: dict[str, int], d_model: int):
        super().__init__()
        if not widths:
            raise ValueError("a fusion module needs at least one modality, e.g. {'text': 64, 'image': 64}")
        self.widths = dict(widths)
        self.proj = nn.ModuleDict({m: nn.Linear(w, d_model) for m, w in widths.items()})
        self.embedding = nn.ParameterDict({m: nn.Parameter(torch.zeros(d_model)) for m in widths})

    def forward(self, inputs: dict[str, Tokens]) -> dict[str, Tokens]:
        check_inputs(inputs, self.widths)
        return {m: Tokens(self.proj[m](t.states) + self.embedding[m], t.padding_mask) for m, t in inputs.items()}


def check_inputs(inputs: dict[str, Tokens], widths: dict[str, int]) -> None:
    """Known modalities, the widths the module was built for, one batch size."""
    if not inputs:
        raise ValueError(f"no modality given; expected some of {sorted(widths)}")
    unknown = set(inputs) - set(widths)
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}; this module was built for {sorted(widths)}")
    for m, t in inputs.items():
        if not isinstance(t, Tokens):
            raise TypeError(f"inputs[{m!r}] must be mmcourse.tokens.Tokens(states, padding_mask), got {type(t).__name__}")
        if t.states.shape[-1] != widths[m]:
            raise ValueError(f"{m} tokens have width {t.states.shape[-1]}, but the module was built for {widths[m]}")
    sizes = {m: t.states.shape[0] for m, t in inputs.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"modalities have different batch sizes: {sizes}")


class EarlyFusion(nn.Module):
    """Concatenate the projected tokens of all modalities and run transformer layers over them."""

    def __init__(self, widths: dict[str, int], d_model: int, n_heads: int = 4, n_layers: int = 1):
        super().__init__()
        self.project = ModalityProjection(widths, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)

    def forward(self, inputs: dict[str, Tokens]) -> Tokens:
        joint = concat(list(self.project(inputs).values()))  # (B, ΣL, d)
        return Tokens(self.encoder(joint.states, src_key_padding_mask=joint.padding_mask), joint.padding_mask)


class LateFusion(nn.Module):
    """Pool each modality separately, pass it through its own MLP, average the modalities: (B, 1, d)."""

    def __init__(self, widths: dict[str, int], d_model: int):
        super().__init__()
        self.widths = dict(widths)
        self.branch = nn.ModuleDict({m: nn.Sequential(nn.Linear(w, d_model), nn.GELU(), nn.Linear(d_model, d_model))
                                     for m, w in widths.items()})

    def forward(self, inputs: dict[str, Tokens]) -> Tokens:
        check_inputs(inputs, self.widths)
        vectors = torch.stack([self.branch[m](pool(t)) for m, t in inputs.items()], dim=1)  # (B, M, d)
        fused = vectors.mean(dim=1, keepdim=True)
        return Tokens(fused, torch.zeros(fused.shape[:2], dtype=torch.bool, device=fused.device))


class TensorFusion(nn.Module):
    """Outer product of the pooled vectors, each extended by a constant 1 (Zadeh et al., 2017).

    z_m (B, k) → [z_m, 1] (B, k+1); ⊗ over M modalities → (B, (k+1)^M) → Linear → (B, 1, d).
    The 1s keep every single modality and every pair in the product, not only the M-way interaction.
    A missing modality contributes zeros (so only its constant 1 survives).
    """

    def __init__(self, widths: dict[str, int], d_model: int, k: int = 8):
        super().__init__()
        self.widths, self.k = dict(widths), k
        self.reduce = nn.ModuleDict({m: nn.Linear(w, k) for m, w in widths.items()})
        self.out = nn.Linear((k + 1) ** len(widths), d_model)

    def forward(self, inputs: dict[str, Tokens]) -> Tokens:
        check_inputs(inputs, self.widths)
        any_tokens = next(iter(inputs.values())).states
        b = any_tokens.shape[0]
        product = torch.ones(b, 1, device=any_tokens.device, dtype=any_tokens.dtype)
        for m in self.widths:  # a fixed order, so the flattened product always means the same
            z = self.reduce[m](pool(inputs[m])) if m in inputs else any_tokens.new_zeros(b, self.k)
            z1 = torch.cat([z, z.new_ones(b, 1)], dim=-1)  # (B, k+1)
            product = (product.unsqueeze(-1) * z1.unsqueeze(1)).flatten(1)  # (B, previous·(k+1))
        fused = self.out(product).unsqueeze(1)
        return Tokens(fused, torch.zeros(b, 1, dtype=torch.bool, device=fused.device))


class LowRankFusion(nn.Module):
    """Tensor fusion without the huge tensor (Liu et al., 2018): h = Σ_r ∏_m ([z_m, 1] W_m^(r)).

    Each modality has `rank` factors (k+1) × d; the product is elementwise over modalities,
    the sum over the rank. Cost grows linearly with the number of modalities, not exponentially.
    """

    def __init__(self, widths: dict[str, int], d_model: int, rank: int = 4, k: int = 16):
        super().__init__()
        self.widths, self.k = dict(widths), k
        self.reduce = nn.ModuleDict({m: nn.Linear(w, k) for m, w in widths.items()})
        self.factors = nn.ParameterDict({m: nn.Parameter(torch.randn(rank, k + 1, d_model) * (k + 1) ** -0.5)
                                         for m in widths})
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, inputs: dict[str, Tokens]) -> Tokens:
        check_inputs(inputs, self.widths)
        any_tokens = next(iter(inputs.values())).states
        b = any_tokens.shape[0]
        product = None
        for m in self.widths:
            z = self.reduce[m](pool(inputs[m])) if m in inputs else any_tokens.new_zeros(b, self.k)
            z1 = torch.cat([z, z.new_ones(b, 1)], dim=-1)  # (B, k+1)
            h = torch.einsum("bk,rkd->brd", z1, self.factors[m])  # (B, rank, d)
            product = h if product is None else product * h
        fused = (product.sum(dim=1) + self.bias).unsqueeze(1)  # (B, 1, d)
        return Tokens(fused, torch.zeros(b, 1, dtype=torch.bool, device=fused.device))


class GatedCrossAttention(nn.Module):
    """Flamingo's gated cross-attention block: the query modality attends to all the others.

        x = x + tanh(α_attn) · CrossAttention(LN(x), context)
        x = x + tanh(α_ffn)  · FFN(LN(x))
    α starts at 0, so at initialisation the block returns its input unchanged: a pretrained
    language model keeps its behaviour until training opens the gates. The query modality is required.
    """

    def __init__(self, widths: dict[str, int], d_model: int, query: str = "text", n_heads: int = 4):
        super().__init__()
        if query not in widths or len(widths) < 2:
            raise ValueError(f"query {query!r} must be one of the modalities {sorted(widths)}, with at least one other")
        self.widths, self.query = dict(widths), query
        self.enter = nn.Identity() if widths[query] == d_model else nn.Linear(widths[query], d_model)
        self.context = ModalityProjection({m: w for m, w in widths.items() if m != query}, d_model)
        self.norm_attn, self.norm_ffn = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = MultiHeadCrossAttention(d_model, d_model, d_model, n_heads)
        self.ffn = FeedForward(d_model)
        self.alpha_attn = nn.Parameter(torch.zeros(()))
        self.alpha_ffn = nn.Parameter(torch.zeros(()))

    def forward(self, inputs: dict[str, Tokens], return_weights: bool = False):
        check_inputs(inputs, self.widths)
        if self.query not in inputs:
            raise ValueError(f"GatedCrossAttention needs its query modality {self.query!r}")
        others = {m: t for m, t in inputs.items() if m != self.query}
        if not others:
            raise ValueError(f"GatedCrossAttention needs at least one modality besides {self.query!r}")
        x = self.enter(inputs[self.query].states)  # (B, Lq, d)
        context = concat(list(self.context(others).values()))  # (B, Lc, d)
        attended, weights = self.attn(self.norm_attn(x), context.states, context.padding_mask, return_weights=True)
        x = x + torch.tanh(self.alpha_attn) * attended
        x = x + torch.tanh(self.alpha_ffn) * self.ffn(self.norm_ffn(x))
        out = Tokens(x, inputs[self.query].padding_mask)
        return (out, weights) if return_weights else out


class QueryResampler(nn.Module):
    """n learned queries cross-attend to the tokens of every modality: (B, n_queries, d) whatever the input length.

    The Perceiver Resampler (Flamingo) and BLIP-2's Q-Former use this to hand an LLM a fixed,
    small number of visual tokens instead of hundreds of patches.
    """

    def __init__(self, widths: dict[str, int], d_model: int, n_queries: int = 8, n_heads: int = 4, n_layers: int = 1):
        super().__init__()
        self.project = ModalityProjection(widths, d_model)
        self.queries = nn.Parameter(torch.randn(n_queries, d_model) * 0.02)
        self.layers = nn.ModuleList(nn.ModuleDict({
            "norm_q": nn.LayerNorm(d_model), "attn": MultiHeadCrossAttention(d_model, d_model, d_model, n_heads),
            "norm_ffn": nn.LayerNorm(d_model), "ffn": FeedForward(d_model)}) for _ in range(n_layers))

    def forward(self, inputs: dict[str, Tokens]) -> Tokens:
        context = concat(list(self.project(inputs).values()))  # (B, ΣL, d)
        x = self.queries.expand(context.states.shape[0], -1, -1)  # (B, n_queries, d)
        for layer in self.layers:
            x = x + layer["attn"](layer["norm_q"](x), context.states, context.padding_mask)
            x = x + layer["ffn"](layer["norm_ffn"](x))
        return Tokens(x, torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device))


class GraphFusion(nn.Module):
    """Each modality is a node (its pooled vector); nodes exchange messages over a complete graph.

        m_i = mean_{j ≠ i} MLP_msg([h_i, h_j])          message from every other modality
        h_i = LN(h_i + MLP_upd([h_i, m_i]))              update, for `steps` rounds
    Returns the nodes: Tokens (B, M, d). A single modality gets no messages and is only updated.
    """

    def __init__(self, widths: dict[str, int], d_model: int, steps: int = 2):
        super().__init__()
        self.project = ModalityProjection(widths, d_model)
        self.message = nn.Sequential(nn.Linear(2 * d_model, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.update = nn.Sequential(nn.Linear(2 * d_model, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.norm = nn.LayerNorm(d_model)
        self.steps = steps

    def forward(self, inputs: dict[str, Tokens]) -> Tokens:
        h = torch.stack([pool(t) for t in self.project(inputs).values()], dim=1)  # (B, M, d)
        b, n, d = h.shape
        others = ~torch.eye(n, dtype=torch.bool, device=h.device)  # (M, M) edges i ← j, j ≠ i
        for _ in range(self.steps):
            pairs = torch.cat([h.unsqueeze(2).expand(b, n, n, d), h.unsqueeze(1).expand(b, n, n, d)], dim=-1)
            msg = self.message(pairs) * others[None, :, :, None]  # (B, M, M, d), self-edges zeroed
            msg = msg.sum(dim=2) / max(n - 1, 1)
            h = self.norm(h + self.update(torch.cat([h, msg], dim=-1)))
        return Tokens(h, torch.zeros(b, n, dtype=torch.bool, device=h.device))


ZOO = {
    "early (concatenate + self-attention)": EarlyFusion,
    "late (pool, then average)": LateFusion,
    "tensor (outer product)": TensorFusion,
    "low-rank tensor": LowRankFusion,
    "gated cross-attention": GatedCrossAttention,
    "query resampler": QueryResampler,
    "graph (message passing)": GraphFusion,
}
