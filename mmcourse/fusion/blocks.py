"""The transformer block, written once: pre-norm residual attention and a feed-forward layer.

    x = x + Attention(LN(x), context)       self-attention (context = x) or cross-attention to another modality
    x = x + CrossAttention(LN(x), context)  only in a decoder that has both (Whisper, BLIP): self first, then cross
    x = x + FFN(LN(x))                      FFN: Linear(d, 4d) → GELU → Linear(4d, d), token by token

Every encoder layer, fusion layer and decoder layer of mmcourse is this block; what differs is what the
attention reads. gated=True multiplies each residual branch by tanh(α), α = 0 at the start (Flamingo): the block
then returns its input unchanged until training opens the gates.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from mmcourse.fusion.attention import AttentionCache, MultiHeadAttention


class FeedForward(nn.Sequential):
    """The transformer MLP, applied to every token on its own: (…, d) → (…, d). Parameters ffn.0 and ffn.2."""

    def __init__(self, d: int, mult: int = 4):
        super().__init__(nn.Linear(d, mult * d), nn.GELU(), nn.Linear(mult * d, d))


class Block(nn.Module):
    """A pre-norm transformer block: (B, L, d_model) → (B, L, d_model) [and the attention weights].

    self_attention=True, d_context=None    self-attention only (an encoder layer; a GPT layer with causal=True)
    self_attention=False, d_context=D      cross-attention only: x reads a context of width D
    self_attention=True, d_context=D       both, self first (a Whisper/BLIP decoder layer)

    forward(x, context=None, context_padding_mask=None, padding_mask=None, causal=False, cache=None):
    padding_mask (B, L) True = padding marks x's own padded positions for self-attention, context_padding_mask
    (B, Lc) the context's; cache is a BlockCache while generating.
    """

    def __init__(self, d_model: int, n_heads: int, d_context: int | None = None, self_attention: bool = True,
                 ffn_mult: int = 4, gated: bool = False):
        super().__init__()
        if not self_attention and d_context is None:
            raise ValueError("a block needs self-attention, cross-attention (d_context) or both")
        self.self_attention, self.cross = self_attention, self_attention and d_context is not None
        self.norm_attn = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, d_model if self_attention else d_context, d_model, n_heads)
        if self.cross:  # a second attention, to the context, after the self-attention
            self.norm_cross = nn.LayerNorm(d_model)
            self.cross_attn = MultiHeadAttention(d_model, d_context, d_model, n_heads)
        self.norm_ffn = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, ffn_mult)
        if gated:
            self.alpha_attn = nn.Parameter(torch.zeros(()))
            self.alpha_ffn = nn.Parameter(torch.zeros(()))
        self.gated = gated

    def forward(self, x, context=None, context_padding_mask=None, padding_mask=None, causal: bool = False,
                cache: "BlockCache | None" = None, return_weights: bool = False):
        attn_cache = cross_cache = None
        if cache is not None:
            attn_cache, cross_cache = cache.attn, cache.cross
        h = self.norm_attn(x)
        if self.self_attention:
            attended = self.attn(h, None, padding_mask, causal=causal, cache=attn_cache, return_weights=return_weights)
        else:
            attended = self.attn(h, context, context_padding_mask, cache=cross_cache, return_weights=return_weights)
        attended, weights = attended if return_weights else (attended, None)
        x = x + self._gate("alpha_attn") * attended
        if self.cross:
            read = self.cross_attn(self.norm_cross(x), context, context_padding_mask, cache=cross_cache,
                                   return_weights=return_weights)
            read, weights = read if return_weights else (read, weights)
            x = x + read
        x = x + self._gate("alpha_ffn") * self.ffn(self.norm_ffn(x))
        return (x, weights) if return_weights else x

    def _gate(self, name: str):
        return torch.tanh(getattr(self, name)) if self.gated else 1.0


class CrossAttentionBlock(Block):
    """The block whose attention reads another modality (notebook 06): x (B, Lq, d_model), context (B, Lk, d_context),
    key_padding_mask (B, Lk) True = padding → (B, Lq, d_model). Sub-modules norm_attn, attn, norm_ffn, ffn."""

    def __init__(self, d_model: int, d_context: int, n_heads: int, ffn_mult: int = 4):
        super().__init__(d_model, n_heads, d_context=d_context, self_attention=False, ffn_mult=ffn_mult)


class BlockCache:
    """What one block keeps while generating: its self-attention's growing keys, its cross-attention's fixed ones."""

    def __init__(self):
        self.attn = AttentionCache(growing=True)
        self.cross = AttentionCache(growing=False)

    def reorder(self, index: torch.Tensor) -> None:
        self.attn.reorder(index)
        self.cross.reorder(index)
