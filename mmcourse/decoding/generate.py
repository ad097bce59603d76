"""Generation loops that work for any model: greedy, sampling (temperature, top-k, top-p), beam search.

A loop only needs a *step function*, ids so far (B, T) → next-token logits (B, V). decoder_step makes one for
mmcourse's TextDecoder (with its KV cache), whisper_step one for a real transformers Whisper; the same loop then
drives both.

    ids = greedy_decode(decoder_step(model, cond), bos_ids, max_new_tokens=12, eos_id=sep_id)
    ids = sample_decode(step, prompt_ids, 20, temperature=0.8, top_p=0.9, generator=g)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import torch

from mmcourse.decoding.text import TextDecoder
from mmcourse.tokens import Tokens

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
                         f"mmcourse.encoding.audio.log_mel_spectrogram(mmcourse.encoding.audio.pad_or_trim(waveform))")
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


# ---------------------------------------------------------------- checks (below the code they guard)


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
