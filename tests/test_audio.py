import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor

from mmcourse import audio


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_matches_whisper_feature_extractor(n_mels):
    g = torch.Generator().manual_seed(0)
    waves = [(torch.rand(n, generator=g) - 0.5) * 0.6 for n in (16000, 40000, 5 * 16000)]
    ref = WhisperFeatureExtractor(feature_size=n_mels)([w.numpy() for w in waves], sampling_rate=16000,
                                                      return_tensors="pt").input_features
    ours = torch.stack([audio.log_mel_spectrogram(audio.pad_or_trim(w), n_mels=n_mels) for w in waves])
    assert ours.shape == ref.shape == (3, n_mels, 3000)
    assert (ours - ref).abs().max() < 1e-4
    batched = audio.log_mel_spectrogram(audio.pad_or_trim(torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)),
                                        n_mels=n_mels)
    assert (batched - ref).abs().max() < 1e-4, "the (max - 8) floor is per example, also in a batch"


def test_pad_or_trim():
    assert audio.pad_or_trim(torch.ones(10), 16).tolist() == [1.0] * 10 + [0.0] * 6
    assert audio.pad_or_trim(torch.ones(2, 20), 16).shape == (2, 16)
    assert audio.pad_or_trim(torch.ones(480000)).shape == (480000,)


def test_frame_arithmetic():
    assert audio.frames_to_states(3000) == 1500
    assert audio.log_mel_spectrogram(torch.zeros(480000)).shape == (80, 3000)
    mask = audio.state_padding_mask(torch.tensor([16000, 480000]), 1500)
    assert mask.sum(1).tolist() == [50, 1500]


def test_bad_audio_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="resample"):
        audio.log_mel_spectrogram(torch.zeros(1000), sample_rate=44100)
    with pytest.raises(TypeError, match="32768"):
        audio.log_mel_spectrogram(torch.zeros(1000, dtype=torch.int16))
    with pytest.raises(ValueError, match="empty"):
        audio.pad_or_trim(torch.zeros(0))
    with pytest.raises(TypeError, match="torch.Tensor"):
        audio.pad_or_trim(np.zeros(10))
