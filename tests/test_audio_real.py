"""Real weights prove the plumbing: Whisper tiny.en (packaged tier) fed by mmcourse.encoding.audio.

If log_mel_spectrogram were wrong in any way Whisper cares about (scale, floor, frame count,
mel layout), a real packaged_whisper would stop transcribing espeak-ng speech. Needs the `packaged`
extra (skipped without it, unless MMCOURSE_REQUIRE_EXTRAS=1).
"""

import re

import pytest
import torch

from mmcourse.encoding import audio
from tests.conftest import require_extra
from tests.test_packaged import SENTENCES


def words(text):
    """Lower-case, drop punctuation, split: ' Please close the door.' -> ['please', 'close', ...]."""
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


@pytest.fixture(scope="module")
def speech_clips():
    from mmcourse.packaged import espeak

    require_extra(espeak.espeak_available(), "espeak-ng (espeakng-loader)")
    return [espeak.synthesize(s) for s in SENTENCES]  # (T,) at 16 kHz, 1.4–2.1 s each


def test_whisper_transcribes_through_our_log_mel(packaged_whisper, speech_clips):
    model, processor = packaged_whisper
    features = audio.log_mel_spectrogram(audio.pad_or_trim(torch.nn.utils.rnn.pad_sequence(
        speech_clips, batch_first=True)))  # (10, 80, 3000)
    assert features.shape == (10, 80, 3000)
    with torch.inference_mode():
        ids = model.generate(features)
    heard = processor.batch_decode(ids, skip_special_tokens=True)
    wrong = [(said, h) for said, h in zip(SENTENCES, heard) if words(h) != said.split()]
    assert len(wrong) <= 1, f"misheard (said, heard): {wrong}"


def test_packaged_audio_encoder_matches_the_feature_extractor_path(packaged_whisper, speech_clips):
    model, processor = packaged_whisper
    encoder = audio.AudioEncoder.from_tier("packaged")
    assert encoder.width == 384 and encoder.n_states == 1500
    clips = speech_clips[:2]
    reference = processor.feature_extractor([c.numpy() for c in clips], sampling_rate=16000,
                                            return_tensors="pt").input_features
    with torch.inference_mode():
        tokens = encoder(clips)
        expected = model.get_encoder()(reference).last_hidden_state
    assert tokens.states.shape == (2, 1500, 384)
    assert (tokens.states - expected).abs().max() < 1e-3
    real = (~tokens.padding_mask).sum(1).tolist()
    assert real == [audio.frames_to_states(len(c) // 160) for c in clips]
    assert all(80 <= n <= 110 for n in real), real  # 1.6–2.2 s of speech ≈ 50 states per second
    with pytest.raises(ValueError, match="take only 30 s"):
        audio.AudioEncoder.from_tier("packaged", seconds=3)
