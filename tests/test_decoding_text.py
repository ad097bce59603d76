"""mmcourse.decoding.text: masks, teacher forcing, the KV cache, greedy/sampling/beam decoding."""

import pytest
import torch

from mmcourse.decoding.text import (IGNORE_INDEX, DecoderConfig, TextDecoder, beam_search, decoder_step,
                                    filter_logits, greedy_decode, make_labels, sample_decode, teacher_forcing_loss)
from mmcourse.tokens import Tokens


def make(mode, dtype=torch.float32):
    torch.manual_seed(0)
    model = TextDecoder(DecoderConfig(vocab_size=30, d_model=32, n_layers=2, n_heads=4, max_len=24, d_cond=12,
                                      mode=mode)).to(dtype).eval()
    cond = Tokens(torch.randn(2, 5, 12, dtype=dtype), torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool))
    return model, cond


@pytest.mark.parametrize("mode", ["prefix", "cross"])
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_kv_cache_gives_the_same_logits(mode, dtype, atol):
    model, cond = make(mode, dtype)
    ids = torch.randint(0, 30, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids, cond)
        cache = model.new_cache()
        pieces = [model(ids[:, :3], cond, cache=cache)] + [model(ids[:, t:t + 1], cond, cache=cache) for t in range(3, 9)]
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


def test_bad_input_errors():
    model, cond = make("prefix")
    prompt = torch.zeros(2, 1, dtype=torch.long)
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_decode(decoder_step(model, cond), prompt, 0)
    with pytest.raises(ValueError, match="at least a BOS"):
        greedy_decode(decoder_step(model, cond), prompt[:, :0], 3)
    with pytest.raises(ValueError, match="temperature"):
        sample_decode(decoder_step(model, cond), prompt, 3, temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        sample_decode(decoder_step(model, cond), prompt, 3, top_p=1.5)
    with pytest.raises(ValueError, match="context"):
        model(torch.zeros(2, 30, dtype=torch.long), cond)
    with pytest.raises(ValueError, match="d_cond = 12"):
        model(prompt, Tokens(torch.randn(2, 5, 7), cond.padding_mask))
    with pytest.raises(ValueError, match="samples"):
        model(prompt[:1], cond)
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.randn(2, 3), cond)
    with pytest.raises(ValueError, match="one example at a time"):
        beam_search(model, cond, prompt, 3)
