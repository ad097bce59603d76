"""A causal text decoder conditioned on other modalities, and the ways to generate with it.

Two ways to condition a language model on an image or a sound (the `cond` Tokens):

    prefix  (LLaVA-style)    project the conditioning tokens to the model's width and put them
                             before the text: [v1 v2 … vN] [BOS] a red circle …   one causal stream
    cross   (Whisper/BLIP)   the text attends to the conditioning tokens in a cross-attention
                             layer inside every block; the text stream stays text-only

Training is teacher forcing: feed the true caption, predict each next token, ignore (-100) the
positions that are prompt or padding. Generation feeds the model its own output, one token at a
time; a KV cache keeps every layer's keys and values, so each step computes only the new token.

Shapes: input_ids (B, T); cond Tokens (B, N, d_cond); logits (B, T, vocab).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcourse.fusion.attention import MultiHeadCrossAttention, scaled_dot_product_attention
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


class KVCache:
    """Per layer, the keys and values of every position seen so far: (B, H, T, d) each,
    plus the key-padding mask (B, T) (True = padding) of those positions."""

    def __init__(self, n_layers: int):
        self.keys: list[torch.Tensor | None] = [None] * n_layers
        self.values: list[torch.Tensor | None] = [None] * n_layers
        self.padding: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows `index` (B',) of the batch: beam search follows its surviving beams."""
        self.keys = [None if k is None else k[index] for k in self.keys]
        self.values = [None if v is None else v[index] for v in self.values]
        self.padding = None if self.padding is None else self.padding[index]


class CausalSelfAttention(nn.Module):
    """Masked multi-head self-attention: position t sees positions ≤ t (and no padding)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, padding, cache: KVCache | None, layer: int):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))  # (B, H, t, dh)
        if cache is not None:
            k, v = cache.append(layer, k, v)  # (B, H, T_past + t, dh)
        y = scaled_dot_product_attention(q, k, v, key_padding_mask=padding, causal=True)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, [cross-attention to cond], feed-forward."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.ln_self = nn.LayerNorm(cfg.d_model)
        self.self_attn = CausalSelfAttention(cfg.d_model, cfg.n_heads)
        self.cross = cfg.mode == "cross"
        if self.cross:
            self.ln_cross = nn.LayerNorm(cfg.d_model)
            self.cross_attn = MultiHeadCrossAttention(cfg.d_model, cfg.d_model, cfg.d_model, cfg.n_heads)
        self.ln_ffn = nn.LayerNorm(cfg.d_model)
        self.ffn = nn.Sequential(nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(), nn.Linear(4 * cfg.d_model, cfg.d_model))

    def forward(self, x, padding, cond: Tokens | None, cache, layer):
        x = x + self.self_attn(self.ln_self(x), padding, cache, layer)
        if self.cross:
            x = x + self.cross_attn(self.ln_cross(x), cond.states, cond.padding_mask)
        return x + self.ffn(self.ln_ffn(x))


class TextDecoder(nn.Module):
    """A small GPT conditioned on Tokens from other modalities (prefix or cross-attention)."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        if cfg.mode not in ("prefix", "cross"):
            raise ValueError(f"mode must be 'prefix' or 'cross', got {cfg.mode!r}")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.position = nn.Embedding(cfg.max_len, cfg.d_model)
        self.project = nn.Linear(cfg.d_cond, cfg.d_model)  # the projector: conditioning width → model width
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_final = nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.embed.weight  # weight tying, as in GPT-2

    def new_cache(self) -> KVCache:
        return KVCache(self.cfg.n_layers)

    def _check(self, input_ids, cond, attention_mask, past: int):
        if input_ids.dim() != 2 or input_ids.dtype not in (torch.long, torch.int):
            raise ValueError(f"input_ids must be (B, T) integer token ids, got {tuple(input_ids.shape)} {input_ids.dtype}; "
                             f"tokenize text first (floats are embeddings, not ids: bug 28 of the blog post)")
        if input_ids.shape[1] == 0:
            raise ValueError("input_ids is empty: start generation from at least a BOS token")
        if past + input_ids.shape[1] > self.cfg.max_len:
            raise ValueError(f"{past + input_ids.shape[1]} text positions exceed the decoder's context of "
                             f"{self.cfg.max_len}; shorten the prompt or lower max_new_tokens")
        if cond is None:
            raise ValueError("this decoder is conditioned: pass cond=Tokens(states, padding_mask) from an encoder")
        if cond.states.shape[0] != input_ids.shape[0]:
            raise ValueError(f"cond has {cond.states.shape[0]} samples but input_ids has {input_ids.shape[0]}")
        if cond.states.shape[-1] != self.cfg.d_cond:
            raise ValueError(f"cond tokens have width {cond.states.shape[-1]}, the decoder was built for "
                             f"d_cond = {self.cfg.d_cond}; project them or build DecoderConfig(d_cond=...)")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must match input_ids {tuple(input_ids.shape)}")

    def forward(self, input_ids, cond: Tokens, attention_mask=None, cache: KVCache | None = None):
        """input_ids (B, T), cond Tokens (B, N, d_cond), attention_mask (B, T) 1 = real token
        → logits (B, T, vocab) for the text positions. With a cache, input_ids are only the new tokens."""
        past_text = 0 if cache is None or len(cache) == 0 else len(cache) - (cond.states.shape[1] if self.cfg.mode == "prefix" else 0)
        self._check(input_ids, cond, attention_mask, past_text)
        b, t = input_ids.shape
        positions = torch.arange(past_text, past_text + t, device=input_ids.device)
        x = self.embed(input_ids) + self.position(positions)  # (B, t, d)
        padding = torch.zeros(b, t, dtype=torch.bool, device=x.device) if attention_mask is None else attention_mask == 0
        cond = Tokens(self.project(cond.states), cond.padding_mask)  # the projector
        n_prefix = 0
        if self.cfg.mode == "prefix" and (cache is None or len(cache) == 0):
            x = torch.cat([cond.states, x], dim=1)  # [visual tokens][text tokens]
            padding = torch.cat([cond.padding_mask, padding], dim=1)
            n_prefix = cond.states.shape[1]
        if cache is not None:  # keys of all positions so far need their padding flags
            cache.padding = padding if cache.padding is None else torch.cat([cache.padding, padding], dim=1)
            padding = cache.padding
        for i, block in enumerate(self.blocks):
            x = block(x, padding, cond, cache, i)
        return self.lm_head(self.ln_final(x[:, n_prefix:]))


# ---------------------------------------------------------------- training


def make_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, n_prompt: int = 0) -> torch.Tensor:
    """Labels for teacher forcing: the ids themselves, with IGNORE_INDEX on padding and on the first
    `n_prompt` positions (the prompt is given, not predicted). The shift happens in the loss."""
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
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                           ignore_index=IGNORE_INDEX)


# ---------------------------------------------------------------- generation

Step = Callable[[torch.Tensor], torch.Tensor]  # ids so far (B, T) → next-token logits (B, V)


def decoder_step(model: TextDecoder, cond: Tokens, use_cache: bool = True) -> Step:
    """A step function for `model`: with a cache it feeds only the newest token after the first call."""
    cache = model.new_cache() if use_cache else None

    def step(ids: torch.Tensor) -> torch.Tensor:
        if cache is None:
            return model(ids, cond)[:, -1]
        new = ids if len(cache) == 0 else ids[:, -1:]
        return model(new, cond, cache=cache)[:, -1]

    return step


def _check_generation(prompt_ids: torch.Tensor, max_new_tokens: int) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    if prompt_ids.dim() != 2 or prompt_ids.shape[1] == 0:
        raise ValueError(f"prompt_ids must be (B, T) with T ≥ 1 (at least a BOS token), got {tuple(prompt_ids.shape)}")


@torch.inference_mode()
def greedy_decode(step: Step, prompt_ids: torch.Tensor, max_new_tokens: int, eos_id: int | None = None) -> torch.Tensor:
    """Append the most likely token, `max_new_tokens` times or until every row has produced eos_id.

    Rows that finished keep receiving eos_id. Returns (B, T + n_generated)."""
    _check_generation(prompt_ids, max_new_tokens)
    ids, done = prompt_ids, torch.zeros(prompt_ids.shape[0], dtype=torch.bool, device=prompt_ids.device)
    for _ in range(max_new_tokens):
        next_id = step(ids).argmax(dim=-1)  # (B,)
        if eos_id is not None:
            next_id = torch.where(done, torch.full_like(next_id, eos_id), next_id)
            done |= next_id == eos_id
        ids = torch.cat([ids, next_id[:, None]], dim=1)
        if eos_id is not None and bool(done.all()):
            break
    return ids


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set to -inf every logit outside the top-k, and outside the smallest set whose probability ≥ top_p."""
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be ≥ 1, got {top_k}")
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # probability mass of the tokens ranked above
        sorted_logits = sorted_logits.masked_fill(before >= top_p, float("-inf"))  # the top token always stays
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


@torch.inference_mode()
def sample_decode(step: Step, prompt_ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None, eos_id: int | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample each next token from softmax(logits / temperature), optionally top-k / top-p filtered.
    Pass a seeded `generator` for repeatable samples."""
    _check_generation(prompt_ids, max_new_tokens)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (use greedy_decode for temperature 0), got {temperature}")
    ids, done = prompt_ids, torch.zeros(prompt_ids.shape[0], dtype=torch.bool, device=prompt_ids.device)
    for _ in range(max_new_tokens):
        logits = filter_logits(step(ids) / temperature, top_k, top_p)
        next_id = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)
        if eos_id is not None:
            next_id = torch.where(done, torch.full_like(next_id, eos_id), next_id)
            done |= next_id == eos_id
        ids = torch.cat([ids, next_id[:, None]], dim=1)
        if eos_id is not None and bool(done.all()):
            break
    return ids


@torch.inference_mode()
def beam_search(model: TextDecoder, cond: Tokens, prompt_ids: torch.Tensor, max_new_tokens: int,
                beam_size: int = 4, eos_id: int | None = None, length_penalty: float = 1.0) -> torch.Tensor:
    """Keep the `beam_size` most probable continuations at every step (sum of log-probabilities,
    divided by length**length_penalty when ranking finished ones). One prompt at a time: B = 1.

    Returns the best sequence (1, T + n)."""
    _check_generation(prompt_ids, max_new_tokens)
    if prompt_ids.shape[0] != 1:
        raise ValueError(f"beam_search decodes one example at a time; got a batch of {prompt_ids.shape[0]} "
                         f"(loop over the batch, or use greedy_decode for batches)")
    if beam_size < 1:
        raise ValueError(f"beam_size must be ≥ 1, got {beam_size}")
    cond = Tokens(cond.states.expand(beam_size, -1, -1), cond.padding_mask.expand(beam_size, -1))
    cache = model.new_cache()
    ids = prompt_ids.expand(beam_size, -1)  # (K, T)
    scores = torch.full((beam_size,), float("-inf"), device=ids.device)
    scores[0] = 0.0  # all beams start identical: keep one alive so the first step does not pick duplicates
    finished: list[tuple[float, torch.Tensor]] = []
    logits = model(ids, cond, cache=cache)[:, -1]
    for step in range(max_new_tokens):
        logp = logits.log_softmax(dim=-1)  # (K, V)
        total = (scores[:, None] + logp).reshape(-1)  # (K·V,)
        top, flat = total.topk(2 * beam_size)  # spare candidates replace beams that end
        beams, tokens = flat // logp.shape[-1], flat % logp.shape[-1]
        keep_beams, keep_tokens, keep_scores = [], [], []
        for score, beam, token in zip(top.tolist(), beams.tolist(), tokens.tolist()):
            if eos_id is not None and token == eos_id:
                length = ids.shape[1] + 1 - prompt_ids.shape[1]
                finished.append((score / length ** length_penalty, torch.cat([ids[beam], ids.new_tensor([token])])))
            else:
                keep_beams.append(beam), keep_tokens.append(token), keep_scores.append(score)
            if len(keep_beams) == beam_size:
                break
        best_open = max(keep_scores) / (ids.shape[1] + 1 - prompt_ids.shape[1]) ** length_penalty
        if finished and max(f[0] for f in finished) >= best_open:
            break  # log-probabilities only fall: no open beam can overtake the best finished one
        index = torch.tensor(keep_beams, device=ids.device)
        cache.reorder(index)
        ids = torch.cat([ids[index], torch.tensor(keep_tokens, device=ids.device)[:, None]], dim=1)
        scores = torch.tensor(keep_scores, device=ids.device)
        if step + 1 < max_new_tokens:
            logits = model(ids[:, -1:], cond, cache=cache)[:, -1]
    if not finished:
        length = ids.shape[1] - prompt_ids.shape[1]
        finished = [(s / length ** length_penalty, row) for s, row in zip(scores.tolist(), ids)]
    return max(finished, key=lambda f: f[0])[1][None]


def whisper_step(model, input_features: torch.Tensor) -> Step:
    """A step function for a transformers WhisperForConditionalGeneration: encode the audio once,
    then run the decoder on the newest token with its key/value cache (past_key_values)."""
    encoder_outputs = model.get_encoder()(input_features)
    state = {"past": None, "seen": 0}

    def step(ids: torch.Tensor) -> torch.Tensor:
        new = ids[:, state["seen"]:]
        out = model(encoder_outputs=encoder_outputs, decoder_input_ids=new, past_key_values=state["past"], use_cache=True)
        state["past"], state["seen"] = out.past_key_values, ids.shape[1]
        return out.logits[:, -1]

    return step
