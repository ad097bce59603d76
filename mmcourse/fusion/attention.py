"""Scaled dot-product attention with padding and causal masks, multi-head cross-attention, and the block.

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

and CrossAttentionBlock wraps it as a transformer block: residual, LayerNorm, feed-forward.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


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


class MultiHeadCrossAttention(nn.Module):
    """Queries from one modality attend to keys/values from another.

    x (B, Lq, d_query), context (B, Lk, d_context), key_padding_mask (B, Lk) True = padding
    → (B, Lq, d_model) [and weights (B, n_heads, Lq, Lk)].
    Learned projections W_q, W_k, W_v map both modalities into one width; W_o mixes the heads.
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

    def _check(self, x, context, key_padding_mask) -> None:
        for name, t in (("x", x), ("context", context)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a tensor (B, L, D), got {type(t).__name__}")
        if x.dim() != 3 or context.dim() != 3:
            raise ValueError(f"x and context must be (B, L, D), got x {_shape(x)} and context {_shape(context)}"
                             + ("; for one sample add a batch axis: x[None]" if 2 in (x.dim(), context.dim()) else ""))
        if x.shape[0] != context.shape[0]:
            raise ValueError(f"batch sizes differ: x {_shape(x)} has {x.shape[0]} samples, context "
                             f"{_shape(context)} has {context.shape[0]}; pass one context per query sequence")
        if x.shape[-1] != self.q_proj.in_features:
            raise ValueError(f"x {_shape(x)} has width {x.shape[-1]}, but this layer expects "
                             f"d_query = {self.q_proj.in_features}")
        if context.shape[-1] != self.k_proj.in_features:
            raise ValueError(f"context {_shape(context)} has width {context.shape[-1]}, but this layer expects "
                             f"d_context = {self.k_proj.in_features}")
        weight = self.q_proj.weight
        for name, t in (("x", x), ("context", context)):
            if t.dtype != weight.dtype:
                raise TypeError(f"{name} {_shape(t)} is {t.dtype}, but the layer's weights are {weight.dtype}; "
                                f"convert with {name}.to({weight.dtype}) (or the layer with .to({t.dtype}))")
        if key_padding_mask is not None:
            _check_key_padding_mask(key_padding_mask, context.shape[0], context.shape[1], f"context {_shape(context)}")

    def forward(self, x, context, key_padding_mask=None, return_weights=False):
        self._check(x, context, key_padding_mask)
        q = split_heads(self.q_proj(x), self.n_heads)  # (B, H, Lq, d_head)
        k = split_heads(self.k_proj(context), self.n_heads)  # (B, H, Lk, d_head)
        v = split_heads(self.v_proj(context), self.n_heads)  # (B, H, Lk, d_head)
        result = scaled_dot_product_attention(q, k, v, key_padding_mask, return_weights=return_weights)
        out, weights = result if return_weights else (result, None)
        out = self.out_proj(merge_heads(out))  # (B, Lq, d_model)
        return (out, weights) if return_weights else out


class CrossAttentionBlock(nn.Module):
    """A pre-norm transformer block whose attention reads another modality.

        x = x + CrossAttention(LN(x), context)        (B, Lq, d_model)
        x = x + FFN(LN(x))                            FFN: Linear(d, 4d) → GELU → Linear(4d, d)

    x (B, Lq, d_model), context (B, Lk, d_context) (encoder outputs, already layer-normed),
    key_padding_mask (B, Lk) True = padding → (B, Lq, d_model) [and weights (B, n_heads, Lq, Lk)].
    The residuals keep what x knew; the attention adds what it read; the FFN digests it per token.
    """

    def __init__(self, d_model: int, d_context: int, n_heads: int, ffn_mult: int = 4):
        super().__init__()
        self.norm_attn = nn.LayerNorm(d_model)
        self.attn = MultiHeadCrossAttention(d_model, d_context, d_model, n_heads)
        self.norm_ffn = nn.LayerNorm(d_model)
        hidden = ffn_mult * d_model
        self.ffn = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))

    def forward(self, x, context, key_padding_mask=None, return_weights=False):
        if return_weights:
            attended, weights = self.attn(self.norm_attn(x), context, key_padding_mask, return_weights=True)
        else:
            attended, weights = self.attn(self.norm_attn(x), context, key_padding_mask), None
        x = x + attended  # (B, Lq, d_model)
        x = x + self.ffn(self.norm_ffn(x))
        return (x, weights) if return_weights else x
