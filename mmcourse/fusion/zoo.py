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

The first, and the attention-based GatedCrossAttention and QueryResampler, fuse token by token; the
others pool each modality into one vector first, which keeps what a modality contains but loses where
(which patch held which colour). count_flops(module, inputs) measures what one forward pass costs.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from mmcourse.fusion.blocks import Block, CrossAttentionBlock
from mmcourse.fusion.projector import ModalityProjection, Projector
from mmcourse.tokens import Tokens, check_modalities, masked_mean


def pool(tokens: Tokens) -> torch.Tensor:
    """Masked mean over the real tokens: Tokens (B, L, D) → (B, D)."""
    return masked_mean(tokens.states, tokens.padding_mask)


def concat(tokens: list[Tokens]) -> Tokens:
    """Join token sequences along the length: [(B, L_i, D)] → (B, ΣL_i, D)."""
    return Tokens(torch.cat([t.states for t in tokens], dim=1), torch.cat([t.padding_mask for t in tokens], dim=1))


class EarlyFusion(nn.Module):
    """Concatenate the projected tokens of all modalities and run transformer blocks over them.

    (B, L_1, D_1), (B, L_2, D_2), … → (B, L_1 + L_2 + …, d). Every token attends to every token of
    every modality, so self-attention costs grow with (L_1 + L_2 + …)².
    """

    def __init__(self, widths: dict[str, int], d_model: int, n_heads: int = 4, n_layers: int = 1):
        super().__init__()
        self.project = ModalityProjection(widths, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))

    def forward(self, inputs: dict[str, Tokens]) -> Tokens:
        joint = concat(list(self.project(inputs).values()))  # (B, ΣL, d)
        x = joint.states
        for block in self.blocks:
            x = block(x, padding_mask=joint.padding_mask)
        return Tokens(x, joint.padding_mask)


class LateFusion(nn.Module):
    """Pool each modality separately, pass it through its own MLP, average the modalities: (B, 1, d)."""

    def __init__(self, widths: dict[str, int], d_model: int):
        super().__init__()
        self.widths = dict(widths)
        self.branch = nn.ModuleDict({m: Projector(w, d_model, hidden=d_model) for m, w in widths.items()})

    def forward(self, inputs: dict[str, Tokens]) -> Tokens:
        check_modalities(inputs, self.widths)
        vectors = torch.stack([self.branch[m](pool(t)) for m, t in inputs.items()], dim=1)  # (B, M, d)
        fused = vectors.mean(dim=1, keepdim=True)
        return Tokens(fused, torch.zeros(fused.shape[:2], dtype=torch.bool, device=fused.device))


def tensor_product(vectors: list[torch.Tensor]) -> torch.Tensor:
    """Outer product of [z_m, 1] over the modalities, flattened: [(B, k_m)] → (B, Π_m (k_m + 1)).

    Row-major, the first modality varying slowest: for two, entry i·(k_2 + 1) + j is z1[i]·z2[j],
    where z1[k_1] = z2[k_2] = 1. So the result holds every product z1[i]·z2[j], each z1[i] and z2[j]
    on its own (times the other's 1), and a constant 1 (the last entry).
    """
    if not vectors:
        raise ValueError("tensor_product needs at least one (B, k) tensor")
    if any(v.dim() != 2 for v in vectors) or len({v.shape[0] for v in vectors}) > 1:
        raise ValueError(f"tensor_product needs (B, k) tensors with one batch size, got shapes "
                         f"{[tuple(v.shape) for v in vectors]}; pool the tokens first: pool(tokens) → (B, D)")
    product = vectors[0].new_ones(vectors[0].shape[0], 1)  # (B, 1)
    for z in vectors:
        z1 = torch.cat([z, z.new_ones(z.shape[0], 1)], dim=-1)  # (B, k+1)
        product = (product.unsqueeze(-1) * z1.unsqueeze(1)).flatten(1)  # (B, previous·(k+1))
    return product


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
        check_modalities(inputs, self.widths)
        any_tokens = next(iter(inputs.values())).states
        b = any_tokens.shape[0]
        # a fixed order, so the flattened product always means the same
        z = [self.reduce[m](pool(inputs[m])) if m in inputs else any_tokens.new_zeros(b, self.k) for m in self.widths]
        fused = self.out(tensor_product(z)).unsqueeze(1)  # (B, 1, d)
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
        check_modalities(inputs, self.widths)
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

        x = x + tanh(α_attn) · CrossAttention(LN(x), LN(context))
        x = x + tanh(α_ffn)  · FFN(LN(x))
    x is the query modality's tokens (B, Lq, d) and stays their length; context is every other modality,
    projected to d and concatenated (B, Lc, d). α starts at 0, so at initialisation the block returns its
    input unchanged: a pretrained language model keeps its behaviour until training opens the gates
    (and until then only the gates receive a gradient). The query modality is required.
    """

    def __init__(self, widths: dict[str, int], d_model: int, query: str = "text", n_heads: int = 4):
        super().__init__()
        if query not in widths or len(widths) < 2:
            raise ValueError(f"query {query!r} must be one of the modalities {sorted(widths)}, with at least one other")
        self.widths, self.query = dict(widths), query
        self.enter = nn.Identity() if widths[query] == d_model else nn.Linear(widths[query], d_model)
        self.context = ModalityProjection({m: w for m, w in widths.items() if m != query}, d_model)
        self.norm_context = nn.LayerNorm(d_model)
        self.block = Block(d_model, n_heads, d_context=d_model, self_attention=False, gated=True)

    def forward(self, inputs: dict[str, Tokens], return_weights: bool = False):
        check_modalities(inputs, self.widths)
        if self.query not in inputs:
            raise ValueError(f"GatedCrossAttention needs its query modality {self.query!r}")
        others = {m: t for m, t in inputs.items() if m != self.query}
        if not others:
            raise ValueError(f"GatedCrossAttention needs at least one modality besides {self.query!r}")
        x = self.enter(inputs[self.query].states)  # (B, Lq, d)
        context = concat(list(self.context(others).values()))  # (B, Lc, d)
        x, weights = self.block(x, self.norm_context(context.states), context.padding_mask, return_weights=True)
        out = Tokens(x, inputs[self.query].padding_mask)
        return (out, weights) if return_weights else out


class QueryResampler(nn.Module):
    """n learned queries cross-attend to the tokens of every modality: (B, n_queries, d) whatever the input length.

        x = queries                                       (n_queries, d), learned, the same for every sample
        x = x + CrossAttention(LN(x), LN(all tokens))     for each layer
        x = x + FFN(LN(x))
    The Perceiver Resampler (Flamingo) and BLIP-2's Q-Former use this to hand an LLM a fixed,
    small number of visual tokens instead of hundreds of patches. With one layer the queries are
    fixed, so where they look cannot depend on the input (not on the question, say); from the
    second layer on they carry what the first one read, so they can. Hence two layers by default.
    """

    def __init__(self, widths: dict[str, int], d_model: int, n_queries: int = 8, n_heads: int = 4, n_layers: int = 2):
        super().__init__()
        self.project = ModalityProjection(widths, d_model)
        self.queries = nn.Parameter(torch.randn(n_queries, d_model) * 0.02)
        self.norm_context = nn.LayerNorm(d_model)
        self.layers = nn.ModuleList(CrossAttentionBlock(d_model, d_model, n_heads) for _ in range(n_layers))

    def forward(self, inputs: dict[str, Tokens]) -> Tokens:
        context = concat(list(self.project(inputs).values()))  # (B, ΣL, d)
        keys = self.norm_context(context.states)
        x = self.queries.expand(context.states.shape[0], -1, -1)  # (B, n_queries, d)
        for layer in self.layers:
            x = layer(x, keys, context.padding_mask)
        return Tokens(x, torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device))


class GraphFusion(nn.Module):
    """Each modality is a node (its pooled vector); nodes exchange messages over a complete graph.

        m_i = mean_{j ≠ i} MLP_msg([h_i, h_j])          message from every other modality
        h_i = LN(h_i + MLP_upd([h_i, m_i]))              update, for `steps` rounds
    Returns the nodes: Tokens (B, M, d). A single modality gets no messages and is only updated.
    The nodes here are whole modalities. Make every token a node instead, with edges across modalities
    and messages weighted by query–key similarity, and the graph is cross-attention by another name.
    """

    def __init__(self, widths: dict[str, int], d_model: int, steps: int = 2):
        super().__init__()
        self.project = ModalityProjection(widths, d_model)
        self.message = Projector(2 * d_model, d_model, hidden=d_model)
        self.update = Projector(2 * d_model, d_model, hidden=d_model)
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


def _cpu_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)  # shapes: 2·B·H·Lq·Lk·d for Q Kᵀ, the same for weights · V


def count_flops(fn, *args, **kwargs) -> int:
    """Floating-point operations of one forward call `fn(*args, **kwargs)`.

    Counted by torch.utils.flop_counter.FlopCounterMode: a multiply-add is 2 FLOPs; matrix products
    (Linear, @, bmm) and attention are counted, elementwise work (softmax, LayerNorm, GELU) is not.
    FlopCounterMode knows torch's GPU attention kernels but not the CPU one that
    F.scaled_dot_product_attention calls, so that one is added here (else attention would count 0).
    """
    if not callable(fn):
        raise TypeError(f"count_flops needs a callable (a module or a function), got {type(fn).__name__}")
    cpu_attention = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}
    # gradients stay on: under no_grad FlopCounterMode's module tracker trips over expanded parameters
    with FlopCounterMode(display=False, custom_mapping=cpu_attention) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops()
