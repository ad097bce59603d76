"""Attention, written once: scaled dot-product attention with padding and causal masks, and the multi-head layer
that every block of the course (encoders' self-attention, fusion's cross-attention, the decoders) is built from.

    attention(Q, K, V) = softmax(Q Kᵀ / √d) V          (Vaswani et al., 2017)

Shapes: q (B, H, Lq, d), k (B, H, Lk, d), v (B, H, Lk, d_v) → (B, H, Lq, d_v); weights (B, H, Lq, Lk).
Softmax runs over the keys (the last axis): each query's weights sum to 1.

Masks use the key-padding convention of mmcourse.tokens: key_padding_mask (B, Lk), True = padding,
ignore this key. The three conventions in use, and how to convert:
    Hugging Face attention_mask (B, L), 1 = real token        key_padding_mask = attention_mask == 0
    key_padding_mask (B, L) bool, True = padding (ours, nn.MultiheadAttention)
    F.scaled_dot_product_attention attn_mask, True = attend   attn_mask = ~key_padding_mask[:, None, None, :]

Cross-attention: queries from one modality, keys and values from another,

    x (B, Lq, d_query) ──────── W_q ─────┐
                                         ├─ split heads → attention per head → merge heads ─ W_o ─► (B, Lq, d_model)
    context (B, Lk, d_context) ─ W_k, W_v ┘

Self-attention is the same layer with context = x. While generating, an AttentionCache keeps the keys and
values already computed (they grow by one position per step for self-attention; for cross-attention they are
computed once from the context). mmcourse.fusion.blocks wraps the layer into transformer blocks.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def causal_mask(lq: int, lk: int, device=None) -> torch.Tensor:
    """(Lq, Lk) bool, True = may attend. Query i sits at position Lk − Lq + i (bottom-right aligned),
    so with Lq = Lk it is the usual lower triangle, and one new query sees every cached key."""
    return torch.ones(lq, lk, dtype=torch.bool, device=device).tril(diagonal=lk - lq)


def scaled_dot_product_attention(q, k, v, key_padding_mask=None, causal=False, return_weights=False):
    """softmax(q kᵀ / √d) v with optional padding and causal masks.

    q (B, H, Lq, d), k (B, H, Lk, d), v (B, H, Lk, d_v), key_padding_mask (B, Lk) bool True = padding.
    Returns out (B, H, Lq, d_v), and weights (B, H, Lq, Lk) if return_weights.
    Without weights it calls torch's fused F.scaled_dot_product_attention (fast, no (Lq × Lk) matrix kept).
    """
    _check_qkv(q, k, v, key_padding_mask)
    lq, lk = q.shape[-2], k.shape[-2]
    keep = None  # (B, 1, 1, Lk) or (Lq, Lk) or (B, 1, Lq, Lk) bool, True = attend
    if key_padding_mask is not None:
        keep = ~key_padding_mask[:, None, None, :]
    if causal:
        tri = causal_mask(lq, lk, q.device)
        keep = tri if keep is None else keep & tri

    if not return_weights:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep)

    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, Lq, Lk)
    if keep is not None:
        scores = scores.masked_fill(~keep, float("-inf"))
    weights = scores.softmax(dim=-1)  # over the keys
    return weights @ v, weights


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, L, D) → (B, H, L, D / H): head h gets the features x[..., h·D/H : (h+1)·D/H]."""
    b, length, d = x.shape
    if d % n_heads:
        raise ValueError(f"the width {d} of x {_shape(x)} is not divisible by n_heads = {n_heads}")
    return x.reshape(b, length, n_heads, d // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, L, d) → (B, L, H·d), the inverse of split_heads."""
    b, h, length, d = x.shape
    return x.transpose(1, 2).reshape(b, length, h * d)


class AttentionCache:
    """The keys and values one attention layer has computed so far: (B, H, T, d_head) each.

    growing (self-attention while generating): each step's new keys and values are appended after the old ones.
    fixed (cross-attention): they depend only on the context, so the first step computes them and later steps reuse them
    (as Whisper's EncoderDecoderCache does).
    """

    def __init__(self, growing: bool = True):
        self.growing = growing
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the new positions' k, v (B, H, t, d) after the cached ones; return all (B, H, T_past + t, d)."""
        if self.growing and self.keys is not None:
            k, v = torch.cat([self.keys, k], dim=2), torch.cat([self.values, v], dim=2)
        self.keys, self.values = k, v
        return k, v

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows `index` (B',) of the batch: beam search follows its surviving beams."""
        if self.keys is not None:
            self.keys, self.values = self.keys[index], self.values[index]


class MultiHeadAttention(nn.Module):
    """Queries from x attend to keys and values from a context: another modality (cross-attention) or x itself.

    x (B, Lq, d_query), context (B, Lk, d_context) or None (= x, self-attention), key_padding_mask (B, Lk)
    True = padding, causal: query i sees keys ≤ its position → (B, Lq, d_model) [and weights (B, n_heads, Lq, Lk)].
    Learned projections W_q, W_k, W_v map both into one width; W_o mixes the heads.
    """

    def __init__(self, d_query: int, d_context: int, d_model: int, n_heads: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_query, d_model)
        self.k_proj = nn.Linear(d_context, d_model)
        self.v_proj = nn.Linear(d_context, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x, context=None, key_padding_mask=None, causal: bool = False,
                cache: AttentionCache | None = None, return_weights: bool = False):
        reuse = cache is not None and not cache.growing and len(cache) > 0  # cross-attention keys from step 1
        context = None if reuse else (x if context is None else context)
        past = len(cache) if cache is not None and cache.growing else 0
        self._check(x, context, key_padding_mask, n_keys=len(cache) if reuse else past + context.shape[1])
        q = split_heads(self.q_proj(x), self.n_heads)  # (B, H, Lq, d_head)
        if reuse:
            k, v = cache.keys, cache.values  # (B, H, Lk, d_head)
        else:
            k = split_heads(self.k_proj(context), self.n_heads)  # (B, H, Lk, d_head)
            v = split_heads(self.v_proj(context), self.n_heads)
            if cache is not None:
                k, v = cache.update(k, v)  # (B, H, T_past + Lk, d_head) when growing
        result = scaled_dot_product_attention(q, k, v, key_padding_mask, causal=causal, return_weights=return_weights)
        out, weights = result if return_weights else (result, None)
        out = self.out_proj(merge_heads(out))  # (B, Lq, d_model)
        return (out, weights) if return_weights else out

    def _check(self, x, context, key_padding_mask, n_keys: int) -> None:
        """x (B, Lq, d_query) and context (B, Lk, d_context) or None (keys already cached) in the layer's dtype."""
        pairs = (("x", x),) if context is None else (("x", x), ("context", context))
        for name, t in pairs:
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a tensor (B, L, D), got {type(t).__name__}")
            if t.dim() != 3:
                raise ValueError(f"{name} must be (B, L, D), got {name} {_shape(t)}"
                                 + ("; for one sample add a batch axis: x[None]" if t.dim() == 2 else ""))
        if context is not None and x.shape[0] != context.shape[0]:
            raise ValueError(f"batch sizes differ: x {_shape(x)} has {x.shape[0]} samples, context "
                             f"{_shape(context)} has {context.shape[0]}; pass one context per query sequence")
        if x.shape[-1] != self.q_proj.in_features:
            raise ValueError(f"x {_shape(x)} has width {x.shape[-1]}, but this layer expects "
                             f"d_query = {self.q_proj.in_features}")
        if context is not None and context.shape[-1] != self.k_proj.in_features:
            raise ValueError(f"context {_shape(context)} has width {context.shape[-1]}, but this layer expects "
                             f"d_context = {self.k_proj.in_features}")
        weight = self.q_proj.weight
        for name, t in pairs:
            if t.dtype != weight.dtype:
                raise TypeError(f"{name} {_shape(t)} is {t.dtype}, but the layer's weights are {weight.dtype}; "
                                f"convert with {name}.to({weight.dtype}) (or the layer with .to({t.dtype}))")
        if key_padding_mask is not None:
            keys = "the cached keys" if context is None else f"context {_shape(context)}"
            _check_key_padding_mask(key_padding_mask, x.shape[0], n_keys, keys)


# ---------------------------------------------------------------- checks


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _check_key_padding_mask(key_padding_mask, batch: int, length: int, keys: str) -> None:
    """key_padding_mask must be (B, Lk) bool, True = padding, with at least one real key per sample."""
    if not isinstance(key_padding_mask, torch.Tensor):
        raise TypeError(f"key_padding_mask must be a (B, Lk) bool tensor, got {type(key_padding_mask).__name__}")
    if _shape(key_padding_mask) != (batch, length):
        raise ValueError(f"key_padding_mask {_shape(key_padding_mask)} must be (B, Lk) = {(batch, length)}, "
                         f"one flag per key of {keys}")
    if key_padding_mask.dtype != torch.bool:
        raise TypeError(f"key_padding_mask must be bool with True = padding, got {key_padding_mask.dtype}; "
                        f"from a Hugging Face attention_mask (1 = real token) use `attention_mask == 0`")
    empty = key_padding_mask.all(dim=1)
    if bool(empty.any()):
        raise ValueError(f"samples {empty.nonzero().flatten().tolist()} have no real key (every key is padding); "
                         f"each sample needs at least one unmasked key")


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a tensor (B, H, L, d), got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be (B, H, L, d), got shape {_shape(t)}; "
                             f"split heads first: x.view(B, L, H, d).transpose(1, 2) (see split_heads)")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a float tensor, got {t.dtype} with shape {_shape(t)}")
    if q.dtype != k.dtype or k.dtype != v.dtype:
        raise TypeError(f"q, k and v must share a dtype, got q {q.dtype}, k {k.dtype}, v {v.dtype}; "
                        f"convert with .to(q.dtype)")
    if q.shape[0] != k.shape[0] or k.shape[0] != v.shape[0]:
        raise ValueError(f"batch sizes differ: q {_shape(q)}, k {_shape(k)}, v {_shape(v)} (dim 0); "
                         f"each query sequence needs its own keys and values, batch and heads (B, H) must agree")
    if q.shape[1] != k.shape[1] or k.shape[1] != v.shape[1]:
        raise ValueError(f"numbers of heads differ: q {_shape(q)}, k {_shape(k)}, v {_shape(v)} (dim 1); "
                         f"batch and heads (B, H) must agree")
    if k.shape[2] != v.shape[2]:
        raise ValueError(f"k {_shape(k)} and v {_shape(v)} must have the same number of keys Lk (dim 2): "
                         f"one value per key, both from the same modality")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q {_shape(q)} and k {_shape(k)} must have the same head width d (last dim), "
                         f"got {q.shape[-1]} and {k.shape[-1]}; project both to one width first")
    if key_padding_mask is not None:
        _check_key_padding_mask(key_padding_mask, k.shape[0], k.shape[2], f"k {_shape(k)}")
