"""mmcourse.decoding.text and .generate: masks, teacher forcing, the KV cache, greedy/sampling/beam decoding."""

import pytest
import torch

from mmcourse.decoding import (IGNORE_INDEX, DecoderConfig, KVCache, TextDecoder, beam_search, decoder_step,
                                    filter_logits, greedy_decode, make_labels, sample_decode, suppress,
                                    teacher_forcing_loss)
from mmcourse.tokens import Tokens


def make(mode, dtype=torch.float32):
    torch.manual_seed(0)
    model = TextDecoder(DecoderConfig(vocab_size=30, d_model=32, n_layers=2, n_heads=4, max_len=24, d_cond=12,
                                      mode=mode)).to(dtype).eval()
    padding = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    cond = Tokens(torch.randn(2, 5, 12, dtype=dtype), padding)
    return model, cond


@pytest.mark.parametrize("mode", ["prefix", "cross"])
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_kv_cache_gives_the_same_logits(mode, dtype, atol):
    model, cond = make(mode, dtype)
    ids = torch.randint(0, 30, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids, cond)
        cache = model.new_cache()
        pieces = [model(ids[:, :3], cond, cache=cache)]
        pieces += [model(ids[:, t:t + 1], cond, cache=cache) for t in range(3, 9)]
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("mode", ["prefix", "cross"])
def test_causal_no_peeking_and_padding_invariance(mode):
    model, cond = make(mode)
    ids = torch.randint(0, 30, (2, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = model(ids, cond)
        changed = ids.clone()
        changed[:, 5:] = (changed[:, 5:] + 1) % 30
        assert torch.allclose(model(changed, cond)[:, :5], base[:, :5], atol=1e-6), "position t must not see t+1…"
        # sample 0's padded conditioning tokens do not matter
        alone = model(ids[:1], Tokens(cond.states[:1, :3], cond.padding_mask[:1, :3]))
    assert torch.allclose(alone, base[:1], atol=1e-5)


def test_labels_and_teacher_forcing():
    ids = torch.tensor([[5, 6, 7, 8, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    labels = make_labels(ids, mask, n_prompt=1)
    assert labels.tolist() == [[IGNORE_INDEX, 6, 7, 8, IGNORE_INDEX, IGNORE_INDEX]]
    logits = torch.full((1, 6, 10), -10.0)
    for t, nxt in enumerate([6, 7, 8]):
        logits[0, t, nxt] = 10.0  # position t predicts the token at t + 1
    assert teacher_forcing_loss(logits, labels) < 1e-6
    assert teacher_forcing_loss(logits.roll(1, dims=1), labels) > 5, "without the shift the loss is large"
    with pytest.raises(ValueError, match="nothing to predict"):
        teacher_forcing_loss(logits, make_labels(ids, mask, n_prompt=6))
    with pytest.raises(ValueError, match="n_prompt"):
        make_labels(ids, mask, n_prompt=-1)
    with pytest.raises(ValueError, match="must match input_ids"):
        make_labels(ids, mask[:, :4])


def test_greedy_with_and_without_cache_and_eos():
    model, cond = make("cross")
    prompt = torch.zeros(2, 1, dtype=torch.long)
    a = greedy_decode(decoder_step(model, cond, use_cache=True), prompt, 10)
    b = greedy_decode(decoder_step(model, cond, use_cache=False), prompt, 10)
    assert torch.equal(a, b) and a.shape == (2, 11)
    eos = int(a[0, 3])
    c = greedy_decode(decoder_step(model, cond), prompt, 10, eos_id=eos)
    assert (c[0, 3:] == eos).all()


def test_sampling_is_seeded_and_filters():
    model, cond = make("prefix")
    prompt = torch.zeros(2, 1, dtype=torch.long)
    run = lambda: sample_decode(decoder_step(model, cond), prompt, 6, temperature=0.8, top_k=5, top_p=0.9,  # noqa: E731
                                generator=torch.Generator().manual_seed(3))
    assert torch.equal(run(), run())
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    probs = logits.softmax(-1)[0]  # ≈ 0.64, 0.24, 0.09, 0.03
    assert torch.isinf(filter_logits(logits, top_p=0.8)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=float(probs[0]) - 0.01)).tolist() == [[False, True, True, True]]


def test_beam_search_width_one_is_greedy_and_wider_is_at_least_as_likely():
    model, cond = make("cross")
    one = Tokens(cond.states[:1], cond.padding_mask[:1])
    prompt = torch.zeros(1, 1, dtype=torch.long)
    greedy = greedy_decode(decoder_step(model, one), prompt, 8)
    assert torch.equal(beam_search(model, one, prompt, 8, beam_size=1), greedy)

    def logprob(seq):
        with torch.no_grad():
            logp = model(seq[:, :-1], one).log_softmax(-1)
        return logp.gather(-1, seq[:, 1:, None]).sum().item()

    wide = beam_search(model, one, prompt, 8, beam_size=4)
    assert logprob(wide) >= logprob(greedy) - 1e-5


def test_the_cache_computes_the_conditioning_once():
    """After the first step, neither the projector nor the cross-attention keys/values run again."""
    for mode in ("prefix", "cross"):
        model, cond = make(mode)
        calls = []
        model.projector.register_forward_hook(lambda *args: calls.append("project"))
        if mode == "cross":
            model.blocks[0].cross_attn.k_proj.register_forward_hook(lambda *args: calls.append("k_proj"))
        greedy_decode(decoder_step(model, cond), torch.zeros(2, 1, dtype=torch.long), 6)
        assert calls == (["project"] if mode == "prefix" else ["project", "k_proj"]), (mode, calls)
        calls.clear()
        greedy_decode(decoder_step(model, cond, use_cache=False), torch.zeros(2, 1, dtype=torch.long), 6)
        assert calls.count("project") == 6, "without a cache every step recomputes everything"


class TrigramLM(torch.nn.Module):
    """A stand-in decoder for beam search: the next token's logits are a fixed random table of the last two
    tokens, and it reads its history from the KV cache — so a cache that does not follow the beams gives
    wrong scores."""

    def __init__(self, vocab=6, seed=0):
        super().__init__()
        self.table = torch.randn(vocab, vocab, vocab, generator=torch.Generator().manual_seed(seed)) * 2
        self.cfg = DecoderConfig(vocab_size=vocab, max_len=16)

    def new_cache(self):
        return KVCache(1)

    def forward(self, ids, cond, cache=None):
        history = ids if cache is None else cache.layers[0].attn.update(ids[:, None, :, None], ids[:, None, :, None])[0][:, 0, :, 0]
        return self.table[history[:, -2], history[:, -1]][:, None]  # (B, 1, V): only the last position is used

    def logprob(self, seqs, n_prompt):  # (S, T) → (S,) without a cache
        logp = self.table.log_softmax(-1)
        return sum(logp[seqs[:, t - 2], seqs[:, t - 1], seqs[:, t]] for t in range(n_prompt, seqs.shape[1]))


def test_beam_search_wide_enough_is_exhaustive():
    """With beam_size ≥ V² three steps keep every two-token prefix, so beam search must find the most probable
    of all V³ continuations — which it can only do if the cache follows the beams it keeps."""
    for seed in range(5):
        lm = TrigramLM(seed=seed)
        cond = Tokens(torch.zeros(1, 1, 64), torch.zeros(1, 1, dtype=torch.bool))
        prompt = torch.tensor([[0, 1]])
        every = torch.cat([prompt.expand(216, -1), torch.cartesian_prod(*[torch.arange(6)] * 3)], dim=1)  # (216, 5)
        best_of_all = every[lm.logprob(every, 2).argmax()]
        assert beam_search(lm, cond, prompt, 3, beam_size=36, length_penalty=0.0)[0].tolist() == best_of_all.tolist()
        greedy = greedy_decode(lambda ids: lm(ids, cond)[:, -1], prompt, 3)
        assert torch.equal(beam_search(lm, cond, prompt, 3, beam_size=1), greedy)


def test_filtering_matches_transformers_warpers():
    from transformers.generation.logits_process import (SuppressTokensAtBeginLogitsProcessor,
                                                        SuppressTokensLogitsProcessor, TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)

    g = torch.Generator().manual_seed(4)
    logits = torch.randn(6, 50, generator=g) * 3
    ids = torch.zeros(6, 3, dtype=torch.long)
    settings = [(None, 0.9, 1.0), (10, None, 0.7), (5, 0.5, 1.3), (None, 0.2, 0.5), (50, 1.0, 2.0)]
    for top_k, top_p, temperature in settings:
        theirs = TemperatureLogitsWarper(temperature)(ids, logits.clone())
        if top_k is not None:
            theirs = TopKLogitsWarper(top_k)(ids, theirs)
        if top_p is not None:
            theirs = TopPLogitsWarper(top_p)(ids, theirs)
        ours = filter_logits(logits / temperature, top_k=top_k, top_p=top_p)
        assert torch.equal(torch.isinf(ours), torch.isinf(theirs)), (top_k, top_p, temperature)
        assert torch.allclose(ours[~torch.isinf(ours)], theirs[~torch.isinf(theirs)])
    tokens = [1, 7, 49]
    assert torch.equal(suppress(logits, tokens), SuppressTokensLogitsProcessor(tokens)(ids, logits.clone()))
    at_begin = SuppressTokensAtBeginLogitsProcessor([2, 3], begin_index=3)(ids, logits.clone())
    assert torch.equal(suppress(logits, [2, 3]), at_begin)


def test_suppressed_tokens_are_never_generated():
    model, cond = make("prefix")
    prompt = torch.zeros(2, 1, dtype=torch.long)
    free = greedy_decode(decoder_step(model, cond), prompt, 8)
    banned = sorted(set(free[:, 1:].flatten().tolist()))[:3]
    first = int(free[0, 1])
    out = greedy_decode(decoder_step(model, cond), prompt, 8, suppress_tokens=banned)
    assert not set(out[:, 1:].flatten().tolist()) & set(banned)
    out = greedy_decode(decoder_step(model, cond), prompt, 8, begin_suppress_tokens=[first])
    assert int(out[0, 1]) != first
    sampled = sample_decode(decoder_step(model, cond), prompt, 8, suppress_tokens=banned,
                            generator=torch.Generator().manual_seed(0))
    assert not set(sampled[:, 1:].flatten().tolist()) & set(banned)
    with pytest.raises(ValueError, match="vocabulary"):
        greedy_decode(decoder_step(model, cond), prompt, 3, suppress_tokens=[30])


# ---------------------------------------------------------------- bad input: one test per case


@pytest.fixture(scope="module")
def prefix_model():
    return make("prefix")


def test_prompt_longer_than_the_context(prefix_model):
    model, cond = prefix_model  # max_len = 24
    with pytest.raises(ValueError, match="context of 24"):
        model(torch.zeros(2, 30, dtype=torch.long), cond)
    with pytest.raises(ValueError, match="max_new_tokens ≤ 14"):  # refused before any work is done
        greedy_decode(decoder_step(model, cond), torch.zeros(2, 10, dtype=torch.long), 20)
    with pytest.raises(ValueError, match="context of 24"):
        beam_search(model, Tokens(cond.states[:1], cond.padding_mask[:1]), torch.zeros(1, 20, dtype=torch.long), 5)
    assert greedy_decode(decoder_step(model, cond), torch.zeros(2, 10, dtype=torch.long), 14).shape == (2, 24)


def test_empty_prompt(prefix_model):
    model, cond = prefix_model
    with pytest.raises(ValueError, match="at least a BOS"):
        greedy_decode(decoder_step(model, cond), torch.zeros(2, 0, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="at least a BOS"):
        model(torch.zeros(2, 0, dtype=torch.long), cond)


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_max_new_tokens_must_be_positive(prefix_model, n):
    model, cond = prefix_model
    with pytest.raises(ValueError, match="max_new_tokens must be a positive int"):
        greedy_decode(decoder_step(model, cond), torch.zeros(2, 1, dtype=torch.long), n)
    with pytest.raises(ValueError, match="max_new_tokens must be a positive int"):
        sample_decode(decoder_step(model, cond), torch.zeros(2, 1, dtype=torch.long), n)


@pytest.mark.parametrize("kwargs,match", [({"temperature": 0}, "temperature must be a number > 0"),
                                          ({"temperature": -1.0}, "greedy_decode"),
                                          ({"temperature": float("nan")}, "temperature"),
                                          ({"top_p": 1.5}, "top_p must be a probability"),
                                          ({"top_p": 0.0}, "top_p must be a probability"),
                                          ({"top_k": 0}, "top_k must be an int"),
                                          ({"top_k": 2.5}, "top_k must be an int")])
def test_invalid_sampling_settings(prefix_model, kwargs, match):
    model, cond = prefix_model
    with pytest.raises(ValueError, match=match):
        sample_decode(decoder_step(model, cond), torch.zeros(2, 1, dtype=torch.long), 3, **kwargs)


def test_mismatched_conditioning(prefix_model):
    model, cond = prefix_model
    prompt = torch.zeros(2, 1, dtype=torch.long)
    with pytest.raises(ValueError, match=r"width 7.*d_cond = 12.*DecoderConfig\(d_cond=7\)"):
        model(prompt, Tokens(torch.randn(2, 5, 7), cond.padding_mask))
    with pytest.raises(ValueError, match="samples"):
        model(prompt[:1], cond)
    with pytest.raises(TypeError, match="Tokens"):
        model(prompt, cond.states)


def test_other_bad_input(prefix_model):
    model, cond = prefix_model
    prompt = torch.zeros(2, 1, dtype=torch.long)
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.randn(2, 3), cond)  # bug 28 of the blog post: floats as input_ids
    with pytest.raises(ValueError, match="one example at a time"):
        beam_search(model, cond, prompt, 3)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model, Tokens(cond.states[:1], cond.padding_mask[:1]), prompt[:1], 3, beam_size=0)
    with pytest.raises(ValueError, match="divisible"):
        DecoderConfig(vocab_size=10, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="'prefix'"):
        DecoderConfig(vocab_size=10, mode="encoder")
