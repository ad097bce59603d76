"""A causal text decoder conditioned on other modalities, and how it is trained (teacher forcing).

Two ways to condition a language model on an image or a sound (the `cond` Tokens):

    prefix  (LLaVA-style)    project the conditioning tokens to the model's width and put them
                             before the text: [v1 v2 … vN] [BOS] a red circle …   one causal stream
    cross   (Whisper/BLIP)   the text attends to the conditioning tokens in a cross-attention
                             layer inside every block; the text stream stays text-only

Training is teacher forcing: feed the true caption, predict each next token, ignore (-100) the
positions that are prompt or padding. Generation feeds the model its own output, one token at a
time; a KV cache keeps every layer's keys and values, so each step computes only the new token.

    model = TextDecoder(DecoderConfig(vocab_size=len(tokenizer), d_cond=encoder.width, mode="cross"))
    loss = teacher_forcing_loss(model(input_ids, cond), make_labels(input_ids, attention_mask))
    ids = greedy_decode(decoder_step(model, cond), bos_ids, max_new_tokens=12, eos_id=sep_id)

The generation loops live in mmcourse.decoding.generate: they serve any model through a step function.
Shapes: input_ids (B, T); cond Tokens (B, N, d_cond); logits (B, T, vocab).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcourse.fusion.blocks import Block, BlockCache
from mmcourse.fusion.projector import Projector
from mmcourse.tokens import Tokens

IGNORE_INDEX = -100  # cross_entropy skips these label positions


@dataclass
class DecoderConfig:
    vocab_size: int
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    max_len: int = 64  # text tokens (the prefix does not count)
    d_cond: int = 64  # width of the conditioning tokens
    mode: str = "prefix"  # "prefix" or "cross"

    def __post_init__(self):
        if self.mode not in ("prefix", "cross"):
            raise ValueError(f"mode must be 'prefix' (LLaVA-style) or 'cross' (Whisper/BLIP-style), got {self.mode!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")


class KVCache:
    """What the decoder keeps while generating: one BlockCache per layer (its self-attention keys and values,
    (B, H, T, d) each, growing by the new positions at every step; in cross mode also the cross-attention keys and
    values (B, H, N, d), computed from the conditioning at the first step and reused), and the key-padding mask
    (B, T) (True = padding) of every cached position."""

    def __init__(self, n_layers: int):
        self.layers = [BlockCache() for _ in range(n_layers)]
        self.padding: torch.Tensor | None = None
        self.prefix = 0  # how many of the cached positions are conditioning tokens (prefix mode)

    def __len__(self) -> int:
        return len(self.layers[0].attn)

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows `index` (B',) of the batch: beam search follows its surviving beams."""
        for layer in self.layers:
            layer.reorder(index)
        self.padding = None if self.padding is None else self.padding[index]


class TextDecoder(nn.Module):
    """A small GPT conditioned on Tokens from other modalities (prefix or cross-attention).

    prefix: the projected conditioning tokens (B, N, d_model) go before the text in one causal stream;
            the logits of the text positions only are returned.
    cross:  every block has a cross-attention layer from the text to the projected conditioning.
    The context `cfg.max_len` counts text positions (prompt + generated), not the prefix.
    """

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.position = nn.Embedding(cfg.max_len, cfg.d_model)
        self.projector = Projector(cfg.d_cond, cfg.d_model)  # conditioning width → model width
        d_context = cfg.d_model if cfg.mode == "cross" else None  # cross mode: every block also reads the conditioning
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_heads, d_context) for _ in range(cfg.n_layers))
        self.ln_final = nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.embed.weight  # weight tying, as in GPT-2

    def new_cache(self) -> KVCache:
        return KVCache(self.cfg.n_layers)

    def _check(self, input_ids, cond, attention_mask, past: int):
        if (not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2
                or input_ids.dtype not in (torch.long, torch.int)):
            raise ValueError(f"input_ids must be (B, T) integer token ids, got "
                             f"{tuple(getattr(input_ids, 'shape', ()))} "
                             f"{getattr(input_ids, 'dtype', type(input_ids).__name__)}; tokenize text first "
                             f"(floats are embeddings, not ids: bug 28 of the blog post)")
        if input_ids.shape[1] == 0:
            raise ValueError("input_ids is empty: start generation from at least a BOS token")
        if past + input_ids.shape[1] > self.cfg.max_len:
            raise ValueError(f"{past + input_ids.shape[1]} text positions exceed the decoder's context of "
                             f"{self.cfg.max_len}; shorten the prompt or lower max_new_tokens")
        if not isinstance(cond, Tokens):
            raise TypeError(f"cond must be mmcourse.tokens.Tokens(states (B, N, d_cond), padding_mask (B, N)), got "
                            f"{type(cond).__name__}; encoders return Tokens, or wrap a tensor: "
                            f"Tokens(x, torch.zeros(x.shape[:2], dtype=torch.bool))")
        if cond.states.shape[0] != input_ids.shape[0]:
            raise ValueError(f"cond has {cond.states.shape[0]} samples but input_ids has {input_ids.shape[0]}; "
                             f"pass one conditioning sequence per text")
        if cond.states.shape[-1] != self.cfg.d_cond:
            raise ValueError(f"cond tokens have width {cond.states.shape[-1]}, the decoder was built for "
                             f"d_cond = {self.cfg.d_cond}; build DecoderConfig(d_cond={cond.states.shape[-1]}) "
                             f"(the projector maps d_cond to d_model)")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must match input_ids "
                             f"{tuple(input_ids.shape)}")

    def forward(self, input_ids, cond: Tokens, attention_mask=None, cache: KVCache | None = None):
        """input_ids (B, T), cond Tokens (B, N, d_cond), attention_mask (B, T) 1 = real token
        → logits (B, T, vocab) for the text positions.

        With a cache, pass the whole prompt at the first call and only the new tokens afterwards."""
        first = cache is None or len(cache) == 0  # does this call see the conditioning for the first time?
        past_text = 0 if first else len(cache) - cache.prefix  # text positions already in the cache
        self._check(input_ids, cond, attention_mask, past_text)
        b, t = input_ids.shape
        positions = torch.arange(past_text, past_text + t, device=input_ids.device)
        x = self.embed(input_ids) + self.position(positions)  # (B, t, d)
        if attention_mask is None:
            padding = torch.zeros(b, t, dtype=torch.bool, device=x.device)  # (B, t) True = padding
        else:
            padding = attention_mask == 0
        n_prefix = 0
        if first:  # the projector runs once; later steps read the conditioning from the cache
            cond = Tokens(self.projector(cond.states), cond.padding_mask)  # (B, N, d_model)
            if self.cfg.mode == "prefix":
                x = torch.cat([cond.states, x], dim=1)  # [visual tokens][text tokens]: (B, N + t, d)
                padding = torch.cat([cond.padding_mask, padding], dim=1)
                n_prefix = cond.states.shape[1]
        if cache is not None:  # keys of all positions so far need their padding flags
            if first:
                cache.prefix = n_prefix
            cache.padding = padding if cache.padding is None else torch.cat([cache.padding, padding], dim=1)
            padding = cache.padding
        context = cond.states if self.cfg.mode == "cross" and first else None  # later steps: cached keys
        for i, block in enumerate(self.blocks):
            x = block(x, context, cond.padding_mask, padding_mask=padding, causal=True,
                      cache=None if cache is None else cache.layers[i])
        return self.lm_head(self.ln_final(x[:, n_prefix:]))  # (B, t, vocab)


# ---------------------------------------------------------------- training


def make_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, n_prompt: int = 0) -> torch.Tensor:
    """Labels for teacher forcing: the ids themselves, with IGNORE_INDEX on padding and on the first
    `n_prompt` positions (the prompt is given, not predicted). The shift happens in the loss.

    input_ids (B, T), attention_mask (B, T) 1 = real token → labels (B, T)."""
    if not isinstance(n_prompt, int) or n_prompt < 0:
        raise ValueError(f"n_prompt must be an int ≥ 0 (how many leading tokens are prompt), got {n_prompt!r}")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must match input_ids {tuple(input_ids.shape)}; "
                         f"pass the mask the tokenizer returned with these ids")
    labels = input_ids.clone()
    if attention_mask is not None:
        labels[attention_mask == 0] = IGNORE_INDEX
    labels[:, :n_prompt] = IGNORE_INDEX
    return labels


def teacher_forcing_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy: the logits at position t predict the label at t + 1.

    logits (B, T, V), labels (B, T) with IGNORE_INDEX where nothing is predicted."""
    if logits.shape[:2] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} must agree on (B, T)")
    if not bool((labels[:, 1:] != IGNORE_INDEX).any()):
        raise ValueError(f"every target is {IGNORE_INDEX}: there is nothing to predict (the loss would be NaN); "
                         f"check n_prompt and attention_mask in make_labels")
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                           ignore_index=IGNORE_INDEX)
