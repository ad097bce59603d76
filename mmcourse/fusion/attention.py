"""Scaled dot-product attention with padding and causal masks, and multi-head cross-attention.

    attention(Q, K, V) = softmax(Q Kᵀ / √d) V          (Vaswani et al., 2017)

Shapes: q (B, H, Lq, d), k and v (B, H, Lk, d) → (B, H, Lq, d); weights (B, H, Lq, Lk).
Softmax runs over the keys (the last axis): each query's weights sum to 1.

Masks use the key-padding convention of mmcourse.tokens: key_padding_mask (B, Lk), True = padding,
ignore this key. (PyTorch's own F.scaled_dot_product_attention takes the opposite boolean: True = attend.)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name} must be (B, H, L, d), got shape {tuple(t.shape)}; "
                             f"split heads first: x.view(B, L, H, d).transpose(1, 2)")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got k {tuple(k.shape)} and v {tuple(v.shape)}")
    if q.shape[:2] != k.shape[:2]:
        raise ValueError(f"q and k must agree on batch and heads (B, H): q {tuple(q.shape[:2])}, k {tuple(k.shape[:2])}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same head width d: q {q.shape[-1]}, k {k.shape[-1]}; "
                         f"project both to one width first")
    if q.dtype != k.dtype or k.dtype != v.dtype:
        raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if key_padding_mask is not None:
        if key_padding_mask.shape != (k.shape[0], k.shape[2]):
            raise ValueError(f"key_padding_mask must be (B, Lk) = {(k.shape[0], k.shape[2])}, "
                             f"got {tuple(key_padding_mask.shape)}")
        if key_padding_mask.dtype != torch.bool:
            raise TypeError(f"key_padding_mask must be bool with True = padding, got {key_padding_mask.dtype}; "
                            f"from a Hugging Face attention_mask use `attention_mask == 0`")
        if bool(key_padding_mask.all(dim=1).any()):
            empty = key_padding_mask.all(dim=1).nonzero().flatten().tolist()
            raise ValueError(f"samples {empty} have no real key (every key is padding); "
                             f"each sample needs at least one unmasked key")


def causal_mask(lq: int, lk: int, device=None) -> torch.Tensor:
    """(Lq, Lk) bool, True = may attend. Query i sits at position Lk − Lq + i (bottom-right aligned),
    so with Lq = Lk it is the usual lower triangle, and one new query sees every cached key."""
    return torch.ones(lq, lk, dtype=torch.bool, device=device).tril(diagonal=lk - lq)


def scaled_dot_product_attention(q, k, v, key_padding_mask=None, causal=False, return_weights=False):
    """softmax(q kᵀ / √d) v with optional padding and causal masks.

    q (B, H, Lq, d), k/v (B, H, Lk, d), key_padding_mask (B, Lk) bool True = padding.
    Returns out (B, H, Lq, d), and weights (B, H, Lq, Lk) if return_weights.
    Without weights it calls torch's fused F.scaled_dot_product_attention (fast, no (Lq × Lk) matrix kept).
    """
    _check_qkv(q, k, v, key_padding_mask)
    lq, lk = q.shape[-2], k.shape[-2]
    keep = None  # (B, 1, Lq or 1, Lk) bool, True = attend
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

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, d_model) → (B, H, L, d_head)
        b, length, _ = x.shape
        return x.view(b, length, self.n_heads, self.d_head).transpose(1, 2)

    def forward(self, x, context, key_padding_mask=None, return_weights=False):
        if x.dim() != 3 or context.dim() != 3:
            raise ValueError(f"x and context must be (B, L, D), got x {tuple(x.shape)} and context {tuple(context.shape)}")
        if x.shape[0] != context.shape[0]:
            raise ValueError(f"batch sizes differ: x has {x.shape[0]} samples, context has {context.shape[0]}")
        if x.shape[-1] != self.q_proj.in_features:
            raise ValueError(f"x has width {x.shape[-1]}, but this layer expects d_query = {self.q_proj.in_features}")
        if context.shape[-1] != self.k_proj.in_features:
            raise ValueError(f"context has width {context.shape[-1]}, but this layer expects "
                             f"d_context = {self.k_proj.in_features}")
        q, k, v = self._split(self.q_proj(x)), self._split(self.k_proj(context)), self._split(self.v_proj(context))
        result = scaled_dot_product_attention(q, k, v, key_padding_mask, return_weights=return_weights)
        out, weights = result if return_weights else (result, None)
        out = out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)  # merge heads: (B, Lq, d_model)
        out = self.out_proj(out)
        return (out, weights) if return_weights else out
