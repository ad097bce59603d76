"""The package's own greedy loop drives a real Whisper tiny.en exactly as transformers' generate() does.

Features come from mmcourse.encoding.audio (our log-mel), the step function from mmcourse.decoding.generate.whisper_step,
the loop from greedy_decode with Whisper's suppress_tokens and begin_suppress_tokens. For the ten spoken
sentences of tests/test_audio_real.py the token ids must be identical to model.generate(features).
Needs the `packaged` extra (skipped without it, unless MMCOURSE_REQUIRE_EXTRAS=1).
"""

import math

import pytest
import torch

from mmcourse.encoding import audio
from mmcourse.decoding import greedy_decode, whisper_step
from tests.conftest import require_extra
from tests.test_packaged import SENTENCES


@pytest.fixture(scope="module")
def features():
    from mmcourse.packaged import espeak

    require_extra(espeak.espeak_available(), "espeak-ng (espeakng-loader)")
    return torch.stack([audio.log_mel_spectrogram(audio.pad_or_trim(espeak.synthesize(s))) for s in SENTENCES])


def until_eos(row: list[int], eos: int) -> list[int]:
    return row[:row.index(eos)] if eos in row else row


def test_prompt_comes_from_the_generation_config(packaged_whisper):
    model, processor = packaged_whisper
    config = model.generation_config
    assert (config.decoder_start_token_id, config.no_timestamps_token_id, config.eos_token_id) == (50257, 50362, 50256)
    assert processor.tokenizer.convert_ids_to_tokens([50257, 50362]) == ["<|startoftranscript|>", "<|notimestamps|>"]
    assert not config.return_timestamps and not config.is_multilingual  # tiny.en: no language or task tokens


def test_our_greedy_loop_gives_generates_tokens(packaged_whisper, features):
    model, processor = packaged_whisper
    config = model.generation_config
    assert features.shape == (len(SENTENCES), 80, 3000)
    with torch.inference_mode():
        expected = model.generate(features)  # (B, L): the new tokens only, padded with eos
    prompt = torch.tensor([[config.decoder_start_token_id, config.no_timestamps_token_id]] * len(SENTENCES))
    ours = greedy_decode(whisper_step(model, features), prompt, max_new_tokens=config.max_length - prompt.shape[1],
                         eos_id=config.eos_token_id, suppress_tokens=config.suppress_tokens,
                         begin_suppress_tokens=config.begin_suppress_tokens)
    assert torch.equal(ours[:, :2], prompt)
    for i, sentence in enumerate(SENTENCES):
        theirs = until_eos(expected[i].tolist(), config.eos_token_id)
        mine = until_eos(ours[i, 2:].tolist(), config.eos_token_id)
        assert mine == theirs, (sentence, processor.decode(mine), processor.decode(theirs))
        assert len(mine) >= 5, f"{sentence!r} came back as {processor.decode(mine)!r}: nothing was transcribed"
    heard = processor.batch_decode(ours, skip_special_tokens=True)
    assert heard[0].strip() == "Please close the door when you leave."


def test_suppression_is_what_makes_non_speech_agree(packaged_whisper):
    """On sounds that are not speech Whisper wants to write '(water splashing)', '(phone ringing)': the ' ('
    token (357) is in suppress_tokens. generate() suppresses it, so our loop must too — and does."""
    model, processor = packaged_whisper
    config = model.generation_config
    t = torch.arange(32000) / 16000
    sounds = [0.1 * torch.randn(32000, generator=torch.Generator().manual_seed(0)),  # 2 s of white noise
              0.3 * torch.sin(2 * math.pi * 440 * t)]  # 2 s of a 440 Hz tone
    features = torch.stack([audio.log_mel_spectrogram(audio.pad_or_trim(w)) for w in sounds])
    prompt = torch.tensor([[config.decoder_start_token_id, config.no_timestamps_token_id]] * len(sounds))
    with torch.inference_mode():
        expected = model.generate(features)
    ours = greedy_decode(whisper_step(model, features), prompt, 30, eos_id=config.eos_token_id,
                         suppress_tokens=config.suppress_tokens, begin_suppress_tokens=config.begin_suppress_tokens)
    bare = greedy_decode(whisper_step(model, features), prompt, 30, eos_id=config.eos_token_id)
    for i in range(len(sounds)):
        theirs = until_eos(expected[i].tolist(), config.eos_token_id)
        assert until_eos(ours[i, 2:].tolist(), config.eos_token_id) == theirs, processor.decode(ours[i])
        unsuppressed = until_eos(bare[i, 2:].tolist(), config.eos_token_id)
        assert set(unsuppressed) & set(config.suppress_tokens), (
            f"without suppression Whisper should write a suppressed token here, got {processor.decode(unsuppressed)!r}")


def test_the_cache_changes_nothing(packaged_whisper, features):
    """Each step with the cache equals running the decoder on the whole sequence again."""
    model, _ = packaged_whisper
    ids = torch.tensor([[50257, 50362, 4222, 1969, 262, 3420]])
    step = whisper_step(model, features[:1])
    cached = torch.stack([step(ids[:, :t]) for t in range(2, ids.shape[1] + 1)], dim=1)  # (1, 5, V)
    with torch.inference_mode():
        full = model(input_features=features[:1], decoder_input_ids=ids).logits[:, 1:]
    assert (cached - full).abs().max() < 1e-3


def test_too_long_prompts_and_bad_features_are_refused(packaged_whisper, features):
    model, _ = packaged_whisper
    with pytest.raises(ValueError, match="context of 448"):
        greedy_decode(whisper_step(model, features[:1]), torch.full((1, 2), 50257), max_new_tokens=447)
    with pytest.raises(ValueError, match="log_mel_spectrogram"):
        whisper_step(model, torch.randn(1, 16000))  # bug 6 of the blog post: a raw waveform
