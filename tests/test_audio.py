import io
import math
import warnings

import numpy as np
import pytest
import soundfile
import torch
import torchaudio
from transformers import WhisperFeatureExtractor

from mmcourse import data
from mmcourse.encoding import audio
from mmcourse.encoding.audio import AudioEncoder
from mmcourse.tokens import Tokens


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


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_matches_whisper_on_tones_too(n_mels):
    """Pure tones leave many mel bins almost empty, where float32-built mel filters would differ by 1.4e-4."""
    clips = [torch.from_numpy(data.speak(text, "tones")) for text in ("where is the red shape", "a small blue circle")]
    clips.append(0.1 * clips[0])
    ref = WhisperFeatureExtractor(feature_size=n_mels)([c.numpy() for c in clips], sampling_rate=16000,
                                                      return_tensors="pt").input_features
    ours = audio.log_mel_spectrogram(audio.pad_or_trim(torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)),
                                     n_mels=n_mels)
    assert (ours - ref).abs().max() < 1e-5
    assert torch.get_default_dtype() == torch.float32, "building the filters must not change the default dtype"


def test_pad_or_trim():
    assert audio.pad_or_trim(torch.ones(10), 16).tolist() == [1.0] * 10 + [0.0] * 6
    assert audio.pad_or_trim(torch.ones(2, 20), 16).shape == (2, 16)
    assert audio.pad_or_trim(torch.ones(480000)).shape == (480000,)
    ramp = torch.linspace(-1, 1, 100)
    assert torch.equal(audio.pad_or_trim(ramp, 40), ramp[:40]), "trimming keeps the beginning"


def test_frame_arithmetic():
    assert audio.frames_to_states(3000) == 1500
    assert audio.log_mel_spectrogram(torch.zeros(480000)).shape == (80, 3000)
    mask = audio.real_state_mask(torch.tensor([16000, 480000]), 1500)
    assert mask.sum(1).tolist() == [50, 1500]


# ---------------------------------------------------------------- converting, resampling, reading


def test_to_float_mono_scales_and_mixes():
    pcm = torch.tensor([[-32768, 0, 16384, 32767], [-32768, 32767, -16384, 32767]], dtype=torch.int16)  # (C, T)
    mono = audio.to_float_mono(pcm)
    assert mono.dtype == torch.float32 and mono.shape == (4,)
    expected = pcm.double().mean(0) / 32768
    assert torch.allclose(mono.double(), expected, atol=1e-7)
    assert mono[0] == -1.0 and mono[2] == 0.0
    assert audio.to_float_mono(torch.tensor([0, 128, 255], dtype=torch.uint8)).tolist() == [-1.0, 0.0, 127 / 128]
    assert audio.to_float_mono(torch.tensor([-(2**31), 2**30], dtype=torch.int32)).tolist() == [-1.0, 0.5]
    wave = torch.rand(2, 50, dtype=torch.float64)
    assert torch.allclose(audio.to_float_mono(wave), wave.mean(0).float())
    with pytest.raises(ValueError, match=r"samples\.T"):
        audio.to_float_mono(torch.zeros(50, 2, dtype=torch.int16))  # soundfile's (T, C) layout


def test_resample_matches_torchaudio_and_keeps_tones():
    sr = 44100
    t = torch.arange(2 * sr) / sr
    tone = 0.5 * torch.sin(2 * math.pi * 1000 * t)  # 1 kHz: survives
    whistle = 0.5 * torch.sin(2 * math.pi * 10000 * t)  # 10 kHz: above 16 kHz's Nyquist (8 kHz), must go
    out = audio.resample(tone + whistle, sr, 16000)
    assert out.shape == (32000,)  # 2 s × 16 000
    assert torch.equal(out, torchaudio.functional.resample(tone + whistle, sr, 16000))
    spectrum = torch.fft.rfft(out[4000:-4000]).abs()  # away from the edges; bin spacing 16000 / 24000 Hz
    hz = torch.fft.rfftfreq(24000, 1 / 16000)
    assert abs(float(hz[spectrum.argmax()]) - 1000) < 2
    assert spectrum[hz > 5000].max() < 0.01 * spectrum.max(), "no 10 kHz alias may fold down to 6 kHz"
    assert audio.resample(tone, sr, sr) is tone
    with pytest.raises(ValueError, match="positive int"):
        audio.resample(tone, 44100.0, 16000)


def test_load_audio_int16_stereo_wav_and_flac(tmp_path):
    g = torch.Generator().manual_seed(1)
    pcm = (torch.rand(22050, 2, generator=g) * 20000 - 10000).to(torch.int16)  # 0.5 s, (T, C) as in a file
    for name in ("clip.wav", "clip.flac"):
        path = tmp_path / name
        soundfile.write(path, pcm.numpy(), 44100, subtype="PCM_16")
        wave = audio.load_audio(path)
        assert wave.dtype == torch.float32 and wave.dim() == 1
        assert wave.shape == (8000,), "0.5 s at 16 kHz"
        expected = torchaudio.functional.resample(pcm.double().mean(1).float() / 32768, 44100, 16000)
        assert torch.allclose(wave, expected, atol=1e-6), name
        native = audio.load_audio(path, target_sr=44100)
        assert torch.allclose(native, pcm.float().mean(1) / 32768, atol=1e-6)
    in_memory = io.BytesIO()
    soundfile.write(in_memory, pcm.numpy(), 44100, format="WAV", subtype="PCM_16")
    in_memory.seek(0)
    assert torch.equal(audio.load_audio(in_memory), audio.load_audio(tmp_path / "clip.wav"))
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros((0, 1), dtype=np.int16), 16000)
    with pytest.raises(ValueError, match="no samples"):
        audio.load_audio(empty)


# ---------------------------------------------------------------- bad input: an error that names the fix


def test_wrong_sample_rate_is_refused():
    with pytest.raises(ValueError, match="resample"):
        audio.log_mel_spectrogram(torch.zeros(1000), sample_rate=44100)
    with pytest.raises(ValueError, match=r"resample\(w, 44100, 16000\)"):
        tiny_encoder()([torch.zeros(1000)], sample_rate=44100)


def test_int16_pcm_is_refused_with_the_scale():
    with pytest.raises(TypeError, match="32768"):
        audio.log_mel_spectrogram(torch.zeros(1000, dtype=torch.int16))
    with pytest.raises(TypeError, match="32768"):
        tiny_encoder()([torch.zeros(1000, dtype=torch.int16)])
    unscaled = torch.full((1000,), 12000.0)  # int16 samples cast with .float() but never divided
    with pytest.raises(ValueError, match="32768"):
        audio.log_mel_spectrogram(unscaled)


def test_stereo_is_refused_with_the_mix():
    encoder = tiny_encoder()
    with pytest.raises(ValueError, match="to_float_mono"):
        encoder([torch.zeros(2, 16000)])
    with pytest.raises(ValueError, match="to_float_mono"):
        encoder(torch.zeros(2, 2, 16000))  # (B, C, T)
    with pytest.raises(ValueError, match=r"waveform\[None\]"):
        encoder(torch.zeros(16000))  # one clip without a batch


def test_empty_and_nan_audio_are_refused():
    with pytest.raises(ValueError, match="empty"):
        audio.pad_or_trim(torch.zeros(0))
    with pytest.raises(TypeError, match="torch.Tensor"):
        audio.pad_or_trim(np.zeros(10))
    encoder = tiny_encoder()
    with pytest.raises(ValueError, match=r"waveforms\[1\] is empty"):
        encoder([torch.zeros(100), torch.zeros(0)])
    with pytest.raises(ValueError, match="empty list"):
        encoder([])
    bad = torch.zeros(1000)
    bad[10] = float("nan")
    with pytest.raises(ValueError, match="nan_to_num"):
        audio.log_mel_spectrogram(bad)
    with pytest.raises(ValueError, match=r"waveforms\[0\] contains NaN"):
        encoder([bad])


def test_mismatched_batch_sizes_are_refused():
    encoder = tiny_encoder()
    with pytest.raises(ValueError, match=r"one sample count per waveform, shape \(2,\)"):
        encoder(torch.zeros(2, 16000), num_samples=torch.tensor([16000, 8000, 4000]))
    with pytest.raises(ValueError, match="between 1 and T"):
        encoder(torch.zeros(2, 16000), num_samples=torch.tensor([16000, 20000]))
    with pytest.raises(ValueError, match="only for a"):
        encoder([torch.zeros(100)], num_samples=torch.tensor([100]))


def test_clip_longer_than_the_window_is_trimmed_with_a_warning():
    encoder = tiny_encoder()  # 3 s window
    g = torch.Generator().manual_seed(2)
    long = (torch.rand(5 * 16000, generator=g) - 0.5) * 0.4
    with pytest.warns(UserWarning, match=r"5\.0 s is longer than the 3 s window"):
        tokens = encoder([long])
    with torch.no_grad():
        cut = encoder([long[: 3 * 16000]])
    assert torch.allclose(tokens.states, cut.states)
    assert not tokens.padding_mask.any(), "a trimmed clip fills the whole window"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder([long[: 3 * 16000]])  # exactly the window: no warning


# ---------------------------------------------------------------- the encoder wrapper


@pytest.fixture(scope="module")
def clips():
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(n, generator=g) - 0.5) * 0.5 for n in (16000, 2 * 16000 + 80)]


_ENCODER = {}


def tiny_encoder(**kwargs) -> AudioEncoder:
    """The tiny encoder with a 3 s window (built once per setting)."""
    key = tuple(sorted(kwargs.items()))
    if key not in _ENCODER:
        _ENCODER[key] = AudioEncoder.from_tier("tiny", seconds=3, **kwargs)
    return _ENCODER[key]


def test_encoder_returns_states_and_padding_mask(clips):
    encoder = tiny_encoder()
    assert encoder.width == 64 and encoder.n_states == 150
    with torch.no_grad():
        tokens = encoder(clips)
        direct = encoder.model(audio.log_mel_spectrogram(audio.pad_or_trim(torch.stack(
            [audio.pad_or_trim(c, 48000) for c in clips]), 48000))).last_hidden_state
    assert isinstance(tokens, Tokens)
    assert tokens.states.shape == (2, 150, 64) and tokens.padding_mask.shape == (2, 150)
    # 16 000 samples → 100 frames → 50 states; 32 080 → 200 frames → 100 states
    assert (~tokens.padding_mask).sum(1).tolist() == [50, 100]
    assert not tokens.padding_mask[0, :50].any() and tokens.padding_mask[0, 50:].all()
    assert torch.allclose(tokens.states, direct, atol=1e-6)


def test_encoder_tensor_input_equals_list_input(clips):
    encoder = tiny_encoder()
    padded = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)  # (2, 32080)
    with torch.no_grad():
        from_list = encoder(clips)
        from_tensor = encoder(padded, num_samples=torch.tensor([len(c) for c in clips]))
        everything_real = encoder(padded)
    assert torch.allclose(from_list.states, from_tensor.states, atol=1e-6)
    assert torch.equal(from_list.padding_mask, from_tensor.padding_mask)
    assert (~everything_real.padding_mask).sum(1).tolist() == [100, 100]


def test_encoder_output_does_not_depend_on_the_rest_of_the_batch(clips):
    encoder = tiny_encoder()
    loud = clips[1] * 1.9  # a louder neighbour must not move the first clip's (max - 8) floor
    with torch.no_grad():
        alone = encoder(clips[:1]).states
        together = encoder([clips[0], loud]).states[:1]
    assert torch.allclose(alone, together, atol=1e-5)


def test_encoder_window_and_mel_bins_must_match_the_model():
    model = tiny_encoder().model  # built for 3 s = 150 states
    with pytest.raises(ValueError, match="3 s window"):
        AudioEncoder(model, seconds=30)
    with pytest.raises(ValueError, match="n_mels=80"):
        AudioEncoder(model, seconds=3, n_mels=128)
    wide = tiny_encoder(num_mel_bins=128)
    with torch.no_grad():
        assert wide([torch.zeros(100)]).states.shape == (1, 150, 64)
