"""A causal text decoder conditioned on other modalities, and the ways to generate with it.

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

The generation loops (greedy_decode, sample_decode) take a *step function*, ids so far (B, T) →
next-token logits (B, V), so the same loop drives this decoder (decoder_step) and a real Whisper
(whisper_step). Shapes: input_ids (B, T); cond Tokens (B, N, d_cond); logits (B, T, vocab).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcourse.fusion.attention import scaled_dot_product_attention
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
    """Per layer, the keys and values of every position seen so far: (B, H, T, d) each,
    plus the key-padding mask (B, T) (True = padding) of those positions.

    In cross mode it also keeps each layer's cross-attention keys and values (B, H, N, d): they
    depend only on the conditioning, so they are computed at the first step and reused (as
    Whisper's EncoderDecoderCache does)."""

    def __init__(self, n_layers: int):
        self.keys: list[torch.Tensor | None] = [None] * n_layers
        self.values: list[torch.Tensor | None] = [None] * n_layers
        self.padding: torch.Tensor | None = None
        self.prefix = 0  # how many of the cached positions are conditioning tokens (prefix mode)
        self.cross_keys: list[torch.Tensor | None] = [None] * n_layers
        self.cross_values: list[torch.Tensor | None] = [None] * n_layers

    def __len__(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the new positions' k, v (B, H, t, d) after the cached ones; return all (B, H, T_past + t, d)."""
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows `index` (B',) of the batch: beam search follows its surviving beams."""
        self.keys = [None if k is None else k[index] for k in self.keys]
        self.values = [None if v is None else v[index] for v in self.values]
        self.cross_keys = [None if k is None else k[index] for k in self.cross_keys]
        self.cross_values = [None if v is None else v[index] for v in self.cross_values]
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


class CrossAttention(nn.Module):
    """Text queries (B, t, d) attend to the projected conditioning tokens (B, N, d), multi-head.

    With a cache, the conditioning's keys and values are projected once and then reused."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, d) → (B, H, L, d / H)
        b, length, d = x.shape
        return x.view(b, length, self.n_heads, d // self.n_heads).transpose(1, 2)

    def forward(self, x, cond: Tokens, cache: KVCache | None, layer: int):
        if cache is not None and cache.cross_keys[layer] is not None:
            k, v = cache.cross_keys[layer], cache.cross_values[layer]  # (B, H, N, dh)
        else:
            k, v = self.heads(self.k_proj(cond.states)), self.heads(self.v_proj(cond.states))
            if cache is not None:
                cache.cross_keys[layer], cache.cross_values[layer] = k, v
        y = scaled_dot_product_attention(self.heads(self.q_proj(x)), k, v, key_padding_mask=cond.padding_mask)
        return self.out_proj(y.transpose(1, 2).reshape(x.shape))  # (B, t, d)


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, [cross-attention to cond], feed-forward."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.ln_self = nn.LayerNorm(cfg.d_model)
        self.self_attn = CausalSelfAttention(cfg.d_model, cfg.n_heads)
        self.cross = cfg.mode == "cross"
        if self.cross:
            self.ln_cross = nn.LayerNorm(cfg.d_model)
            self.cross_attn = CrossAttention(cfg.d_model, cfg.n_heads)
        self.ln_ffn = nn.LayerNorm(cfg.d_model)
        self.ffn = nn.Sequential(nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(),
                                 nn.Linear(4 * cfg.d_model, cfg.d_model))

    def forward(self, x, padding, cond: Tokens | None, cache, layer):
        x = x + self.self_attn(self.ln_self(x), padding, cache, layer)
        if self.cross:
            x = x + self.cross_attn(self.ln_cross(x), cond, cache, layer)
        return x + self.ffn(self.ln_ffn(x))


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
        self.project = nn.Linear(cfg.d_cond, cfg.d_model)  # the projector: conditioning width → model width
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
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
            cond = Tokens(self.project(cond.states), cond.padding_mask)  # (B, N, d_model)
            if self.cfg.mode == "prefix":
                x = torch.cat([cond.states, x], dim=1)  # [visual tokens][text tokens]: (B, N + t, d)
                padding = torch.cat([cond.padding_mask, padding], dim=1)
                n_prefix = cond.states.shape[1]
        if cache is not None:  # keys of all positions so far need their padding flags
            if first:
                cache.prefix = n_prefix
            cache.padding = padding if cache.padding is None else torch.cat([cache.padding, padding], dim=1)
            padding = cache.padding
        for i, block in enumerate(self.blocks):
            x = block(x, padding, cond, cache, i)
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


# ---------------------------------------------------------------- generation

Step = Callable[[torch.Tensor], torch.Tensor]  # ids so far (B, T) → next-token logits (B, V)


def decoder_step(model: TextDecoder, cond: Tokens, use_cache: bool = True) -> Step:
    """A step function for `model`: ids so far (B, T) → logits of the next token (B, V).

    With a cache it feeds the whole prompt at the first call and then only the newest token.
    `step.context` is the model's context (text positions), checked by the generation loops."""
    cache = model.new_cache() if use_cache else None

    def step(ids: torch.Tensor) -> torch.Tensor:
        if cache is None:
            return model(ids, cond)[:, -1]
        new = ids if len(cache) == 0 else ids[:, -1:]
        return model(new, cond, cache=cache)[:, -1]

    step.context = model.cfg.max_len
    return step


def _check_generation(prompt_ids: torch.Tensor, max_new_tokens: int, context: int | None) -> None:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}; "
                         f"to generate nothing, do not call the decoder")
    if not isinstance(prompt_ids, torch.Tensor) or prompt_ids.dim() != 2 or prompt_ids.shape[1] == 0:
        raise ValueError(f"prompt_ids must be (B, T) with T ≥ 1 (at least a BOS token), got "
                         f"{tuple(getattr(prompt_ids, 'shape', ()))}; start from torch.full((B, 1), bos_id)")
    if prompt_ids.is_floating_point() or prompt_ids.dtype == torch.bool:
        raise ValueError(f"prompt_ids must be integer token ids, got {prompt_ids.dtype}")
    if context is not None and prompt_ids.shape[1] + max_new_tokens > context:
        raise ValueError(f"a prompt of {prompt_ids.shape[1]} tokens + max_new_tokens={max_new_tokens} is "
                         f"{prompt_ids.shape[1] + max_new_tokens} positions, more than the decoder's context of "
                         f"{context}; shorten the prompt or set "
                         f"max_new_tokens ≤ {max(context - prompt_ids.shape[1], 0)}")


def suppress(logits: torch.Tensor, tokens: Sequence[int] | None) -> torch.Tensor:
    """Set the logits (B, V) of `tokens` to -inf, so that they are never chosen (Whisper suppresses
    timestamps, speaker marks and such; transformers' SuppressTokensLogitsProcessor). None = none."""
    if tokens is None or len(tokens) == 0:
        return logits
    tokens = torch.as_tensor(list(tokens), dtype=torch.long, device=logits.device)
    if int(tokens.min()) < 0 or int(tokens.max()) >= logits.shape[-1]:
        raise ValueError(f"suppressed token ids must lie in 0..{logits.shape[-1] - 1} (the vocabulary), "
                         f"got {int(tokens.min())}..{int(tokens.max())}")
    return logits.index_fill(-1, tokens, float("-inf"))


def _finish(ids: torch.Tensor, next_id: torch.Tensor, done: torch.Tensor, eos_id: int | None):
    """Append next_id (B,) to ids (B, T); rows already done get eos_id again. → ids (B, T + 1), done (B,)."""
    if eos_id is not None:
        next_id = torch.where(done, torch.full_like(next_id, eos_id), next_id)
        done = done | (next_id == eos_id)
    return torch.cat([ids, next_id[:, None]], dim=1), done


@torch.inference_mode()
def greedy_decode(step: Step, prompt_ids: torch.Tensor, max_new_tokens: int, eos_id: int | None = None,
                  suppress_tokens: Sequence[int] | None = (),
                  begin_suppress_tokens: Sequence[int] | None = ()) -> torch.Tensor:
    """Append the most likely token, `max_new_tokens` times or until every row has produced eos_id.

    prompt_ids (B, T) → (B, T + n_generated), prompt included. Rows that finished keep receiving
    eos_id. suppress_tokens are never generated; begin_suppress_tokens not as the first new token
    (Whisper's generation_config lists both: its greedy search applies them, and so must ours)."""
    _check_generation(prompt_ids, max_new_tokens, getattr(step, "context", None))
    ids, done = prompt_ids, torch.zeros(prompt_ids.shape[0], dtype=torch.bool, device=prompt_ids.device)
    for n in range(max_new_tokens):
        logits = suppress(step(ids), suppress_tokens)  # (B, V)
        if n == 0:
            logits = suppress(logits, begin_suppress_tokens)
        ids, done = _finish(ids, logits.argmax(dim=-1), done, eos_id)
        if eos_id is not None and bool(done.all()):
            break
    return ids


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set to -inf every logit (B, V) outside the top-k, and outside the smallest set of most likely
    tokens whose probability reaches top_p (nucleus sampling). The most likely token always stays.
    Same as transformers' TopKLogitsWarper then TopPLogitsWarper."""
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be an int ≥ 1 (1 = greedy), got {top_k!r}; use None for no top-k filter")
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
            raise ValueError(f"top_p must be a probability in (0, 1], got {top_p!r}; 1 keeps every token, "
                             f"0.9 the most likely tokens that make up 90 % of the probability")
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # probability mass of the tokens ranked above
        sorted_logits = sorted_logits.masked_fill(before >= top_p, float("-inf"))  # the top token always stays
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


@torch.inference_mode()
def sample_decode(step: Step, prompt_ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None, eos_id: int | None = None,
                  generator: torch.Generator | None = None, suppress_tokens: Sequence[int] | None = (),
                  begin_suppress_tokens: Sequence[int] | None = ()) -> torch.Tensor:
    """Sample each next token from softmax(logits / temperature), optionally top-k / top-p filtered.

    prompt_ids (B, T) → (B, T + n_generated). Pass a seeded `generator` for repeatable samples.
    Temperature < 1 sharpens the distribution (towards greedy), > 1 flattens it."""
    _check_generation(prompt_ids, max_new_tokens, getattr(step, "context", None))
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < math.inf:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}; "
                         f"for temperature 0 (always the most likely token) use greedy_decode")
    ids, done = prompt_ids, torch.zeros(prompt_ids.shape[0], dtype=torch.bool, device=prompt_ids.device)
    for n in range(max_new_tokens):
        logits = suppress(step(ids), suppress_tokens)  # (B, V)
        if n == 0:
            logits = suppress(logits, begin_suppress_tokens)
        logits = filter_logits(logits / temperature, top_k, top_p)
        next_id = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)  # (B,)
        ids, done = _finish(ids, next_id, done, eos_id)
        if eos_id is not None and bool(done.all()):
            break
    return ids


@torch.inference_mode()
def beam_search(model: TextDecoder, cond: Tokens, prompt_ids: torch.Tensor, max_new_tokens: int,
                beam_size: int = 4, eos_id: int | None = None, length_penalty: float = 1.0) -> torch.Tensor:
    """Keep the `beam_size` most probable continuations at every step (sum of log-probabilities,
    divided by length**length_penalty when ranking finished ones). One prompt at a time: B = 1.

    Returns the best sequence (1, T + n)."""
    _check_generation(prompt_ids, max_new_tokens, model.cfg.max_len)
    if prompt_ids.shape[0] != 1 or cond.states.shape[0] != 1:
        raise ValueError(f"beam_search decodes one example at a time; got a batch of {prompt_ids.shape[0]} prompts "
                         f"and {cond.states.shape[0]} conditionings "
                         f"(loop over the batch, or use greedy_decode for batches)")
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size must be an int ≥ 1 (1 = greedy), got {beam_size!r}")
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
            break  # the best finished beam beats every open one now (transformers' default stopping heuristic)
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
    """A step function for a transformers WhisperForConditionalGeneration: input_features (B, 80, 3000)
    are encoded once; each call runs the decoder on the tokens it has not seen yet, with its key/value
    cache (an EncoderDecoderCache: self-attention keys/values grow, cross-attention ones are computed once).

        prompt = torch.tensor([[50257, 50362]] * B)    # <|startoftranscript|> <|notimestamps|> (tiny.en)
        ids = greedy_decode(whisper_step(model, features), prompt, 100, eos_id=50256,
                            suppress_tokens=model.generation_config.suppress_tokens,
                            begin_suppress_tokens=model.generation_config.begin_suppress_tokens)
    """
    from transformers import DynamicCache, EncoderDecoderCache

    if not isinstance(input_features, torch.Tensor) or input_features.dim() != 3:
        raise ValueError(f"input_features must be log-mel features (B, 80, 3000), got "
                         f"{tuple(getattr(input_features, 'shape', ()))}; make them with "
                         f"mmcourse.audio.log_mel_spectrogram(mmcourse.audio.pad_or_trim(waveform))")
    with torch.no_grad():
        encoder_outputs = model.get_encoder()(input_features)  # last_hidden_state (B, 1500, d)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())  # filled in place by the model
    # transformers 5.x renamed the argument past_key_values to cache
    cache_argument = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    seen = 0  # how many tokens the cache holds

    @torch.no_grad()
    def step(ids: torch.Tensor) -> torch.Tensor:
        nonlocal seen
        out = model(encoder_outputs=encoder_outputs, decoder_input_ids=ids[:, seen:], use_cache=True,
                    **{cache_argument: cache})
        seen = ids.shape[1]
        return out.logits[:, -1]  # (B, V)

    step.context = model.config.max_target_positions  # 448 decoder positions
    return step
