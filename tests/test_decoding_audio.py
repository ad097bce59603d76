"""mmcourse.decoding.audio: the mel decoder, Whisper-scale inversion, InverseMelScale + Griffin-Lim."""

import numpy as np
import pytest
import torch
import torchaudio

from mmcourse import data
from mmcourse.encoding import audio
from mmcourse.decoding.audio import (MelDecoder, MelDecoderConfig, frames_to_seconds, log_mel_to_power, masked_l1, mel_to_linear,
                                     mel_to_waveform, real_frame_mask, seconds_to_frames)
from mmcourse.tokens import Tokens
from tests.conftest import require_extra


def tokens(batch=2, length=5, width=12, seed=0, padding=((0, 0, 0, 1, 1), (0, 0, 0, 0, 0))):
    g = torch.Generator().manual_seed(seed)
    return Tokens(torch.randn(batch, length, width, generator=g), torch.tensor(padding, dtype=torch.bool))


@pytest.fixture(scope="module")
def decoder():
    torch.manual_seed(0)
    return MelDecoder(MelDecoderConfig(d_cond=12, n_frames=50, d_model=32, frames_per_step=4)).eval()


def padded_clip(text: str, backend: str) -> torch.Tensor:
    """A spoken text, zero-padded to a whole number of 10 ms hops."""
    wave = torch.from_numpy(data.speak(text, backend))
    return audio.pad_or_trim(wave, -(-wave.shape[0] // audio.HOP_LENGTH) * audio.HOP_LENGTH)


# ---------------------------------------------------------------- shapes


def test_output_alignment_and_duration_shapes(decoder):
    cond = tokens()
    with torch.no_grad():
        log_mel, alignment = decoder(cond, return_alignment=True)
        durations = decoder.durations(cond)
    assert log_mel.shape == (2, 80, 50)
    assert alignment.shape == (2, 13, 5), "50 frames in steps of 4 → 13 steps, one weight per token"
    assert torch.allclose(alignment.sum(-1), torch.ones(2, 13), atol=1e-5)
    assert durations.shape == (2, 5)
    assert (durations[0, 3:] == 0).all() and (durations[0, :3] > 0).all(), "padding lasts 0 frames, tokens > 0"
    assert (alignment[0, :, 3:] == 0).all(), "no step may listen to a padding token"


def test_padding_tokens_change_nothing(decoder):
    cond = tokens()
    short = Tokens(cond.states[:1, :3], cond.padding_mask[:1, :3])
    garbage = cond.states.clone()
    garbage[0, 3:] = 1e3  # what sits under the padding must not matter
    with torch.no_grad():
        full = decoder(Tokens(garbage, cond.padding_mask))[:1]
        alone = decoder(short)
    assert torch.allclose(full, alone, atol=1e-5)


def test_after_the_last_token_the_last_token_speaks():
    torch.manual_seed(0)
    decoder = MelDecoder(MelDecoderConfig(d_cond=12, n_frames=400, d_model=32, frames_per_step=4)).eval()  # 100 steps, 3 tokens × 9
    with torch.no_grad():
        _, alignment = decoder(tokens(), return_alignment=True)
    assert torch.allclose(alignment[0, -1], torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0]), atol=1e-4)
    assert torch.allclose(alignment[1, -1], torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0]), atol=1e-4)


def test_frames_and_seconds():
    assert seconds_to_frames(30) == 3000, "Whisper's window"
    assert seconds_to_frames(1.44) == 144
    assert seconds_to_frames(1, sample_rate=8000, hop_length=80) == 100
    assert frames_to_seconds(144) == pytest.approx(1.44)
    mask = real_frame_mask(torch.tensor([160, 161, 1600]), 12)
    assert mask.sum(1).tolist() == [1, 2, 10], "a partly filled frame is real: ⌈n / 160⌉"


def test_masked_l1_ignores_padding_frames():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 80, 10, generator=g), torch.randn(2, 80, 10, generator=g)
    mask = real_frame_mask(torch.tensor([480, 1600]), 10)  # 3 and 10 real frames
    expected = (pred - target).abs().transpose(1, 2)[mask].mean()  # (real frames, 80) → mean
    assert torch.allclose(masked_l1(pred, target, mask), expected)
    pred[0, :, 3:] += 100.0  # errors in padding frames
    assert torch.allclose(masked_l1(pred, target, mask), expected)


# ---------------------------------------------------------------- inversion, against torchaudio


def test_log_mel_to_power_undoes_whisper_scaling():
    """Against torchaudio's MelSpectrogram: what Whisper's scaling keeps comes back exactly."""
    wave = padded_clip("red circle", "tones")
    mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=80, norm="slaney",
                                               mel_scale="slaney")(wave)[..., :-1]  # (80, F) power
    floor = torch.maximum(mel.clamp(min=1e-10), mel.max().clamp(min=1e-10) * 1e-8)  # what the scaling keeps
    power = log_mel_to_power(audio.log_mel_spectrogram(wave))
    assert power.shape == mel.shape
    assert torch.allclose(power, floor, rtol=1e-4, atol=0)


@pytest.mark.parametrize("backend,tolerance", [("espeak", 0.005), ("tones", 0.1)])
def test_mel_to_linear_is_consistent_with_the_filterbank(backend, tolerance):
    """The least-squares spectrogram, seen through the mel filters again, gives back the mel.
    Measured relative error (ReLU clips the negative part of the least-squares solution): espeak 0.09 %,
    tones 3.7–6.8 % (a pure tone puts all its energy in one or two bands)."""
    if backend == "espeak":
        require_extra(data.speech_backend() == "espeak", "espeak-ng")
    power_mel = log_mel_to_power(audio.log_mel_spectrogram(padded_clip("where is the red shape", backend)))
    linear = mel_to_linear(power_mel)
    assert linear.shape == (201, power_mel.shape[-1]) and (linear >= 0).all()
    fb = audio._mel_transform(16000, 80).mel_scale.fb  # (201, 80), the analysis filters
    again = fb.T @ linear
    assert (again - power_mel).abs().sum() / power_mel.sum() < tolerance


@pytest.mark.parametrize("backend,tolerance", [("espeak", 0.05), ("tones", 0.13)])
def test_griffin_lim_round_trip(backend, tolerance):
    """True log-mel → waveform → log-mel again. Measured mean |Δ| at n_iter=32: espeak 0.035, tones 0.104
    (pure tones smear over a band); with the phase left at zero (n_iter=0): 0.38 and 0.33."""
    if backend == "espeak":
        require_extra(data.speech_backend() == "espeak", "espeak-ng")
    wave = padded_clip("red circle", backend)
    log_mel = audio.log_mel_spectrogram(wave)
    rebuilt = mel_to_waveform(log_mel, n_iter=32)
    assert rebuilt.shape == wave.shape, "F frames → F·160 samples"
    error = (audio.log_mel_spectrogram(rebuilt) - log_mel).abs().mean()
    zero_phase = (audio.log_mel_spectrogram(mel_to_waveform(log_mel, n_iter=0)) - log_mel).abs().mean()
    assert error < tolerance
    assert error < 0.4 * zero_phase, "Griffin-Lim must find a far better phase than none"


def test_mel_to_waveform_batches_and_is_deterministic():
    waves = torch.stack([audio.pad_or_trim(padded_clip(word, "tones"), 8000) for word in ("red", "blue")])
    log_mel = audio.log_mel_spectrogram(waves)  # (2, 80, 50)
    batch = mel_to_waveform(log_mel, n_iter=8)
    assert batch.shape == (2, 8000)
    assert torch.equal(batch, mel_to_waveform(log_mel, n_iter=8)), "no random initial phase"
    # one clip alone: the same up to float rounding, which Griffin-Lim's momentum amplifies (measured 4e-4, peak 0.7)
    assert (batch[1] - mel_to_waveform(log_mel[1], n_iter=8)).abs().max() < 2e-3


# ---------------------------------------------------------------- training and determinism


def test_a_short_training_run_lowers_the_loss():
    words = ["red", "blue", "green"]
    target = audio.log_mel_spectrogram(torch.stack([audio.pad_or_trim(torch.from_numpy(data.speak(w, "tones")), 8000)
                                                    for w in words]))  # (3, 80, 50)
    torch.manual_seed(0)
    cond = Tokens(torch.randn(3, 3, 12), torch.zeros(3, 3, dtype=torch.bool))
    decoder = MelDecoder(MelDecoderConfig(d_cond=12, n_frames=50, d_model=32, frames_per_step=4))
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = (decoder(cond) - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    assert decoder.duration.weight.grad.abs().sum() > 0, "the durations learn from the mel loss alone"


def test_same_seed_same_decoder():
    outputs = []
    for _ in range(2):
        torch.manual_seed(3)
        with torch.no_grad():
            outputs.append(MelDecoder(MelDecoderConfig(d_cond=12, n_frames=20, d_model=16, frames_per_step=2))(tokens()))
    assert torch.equal(*outputs)


# ---------------------------------------------------------------- bad input: errors that name the fix


def test_error_mismatched_conditioning_width(decoder):
    with pytest.raises(ValueError, match=r"width 768.*d_cond = 12.*nn.Linear\(768, 12\)"):
        decoder(tokens(width=768))


def test_error_cond_not_tokens(decoder):
    with pytest.raises(TypeError, match="Tokens"):
        decoder(torch.randn(2, 5, 12))


def test_error_row_of_padding_only(decoder):
    with pytest.raises(ValueError, match="all padding.*attention_mask == 0"):
        decoder(tokens(padding=((0, 0, 0, 1, 1), (1, 1, 1, 1, 1))))


@pytest.mark.parametrize("kwargs", [dict(d_cond=0, n_frames=10), dict(d_cond=12, n_frames=10.5),
                                    dict(d_cond=12, n_frames=10, frames_per_step=0)])
def test_error_bad_constructor_arguments(kwargs):
    with pytest.raises(ValueError, match="positive int"):
        MelDecoder(MelDecoderConfig(**kwargs))


def test_error_transposed_log_mel():
    with pytest.raises(ValueError, match="transposed.*mT"):
        mel_to_waveform(torch.zeros(1, 50, 80))


def test_error_wrong_number_of_mel_bins():
    with pytest.raises(ValueError, match="128 mel bins.*expected 80"):
        mel_to_waveform(torch.zeros(128, 50))


@pytest.mark.parametrize("bad,error,match", [
    (torch.zeros(50, dtype=torch.float32), ValueError, r"\(n_mels, F\)"),
    (torch.zeros(80, 50, dtype=torch.int64), TypeError, "float"),
    (torch.full((80, 50), 1e4), ValueError, "Whisper's scale"),  # a power spectrogram
    (torch.full((80, 50), -80.0), ValueError, "Whisper's scale"),  # decibels
    (torch.full((80, 50), float("nan")), ValueError, "NaN"),
    (torch.zeros(80, 1), ValueError, "at least 2 frames"),
])
def test_error_bad_log_mel(bad, error, match):
    with pytest.raises(error, match=match):
        mel_to_waveform(bad)


def test_error_power_spectrogram_into_log_mel_to_power():
    with pytest.raises(ValueError, match="Whisper's scale"):
        log_mel_to_power(torch.full((80, 5), 1e4))


def test_error_negative_iterations_and_negative_power():
    with pytest.raises(ValueError, match="n_iter"):
        mel_to_waveform(torch.zeros(80, 10), n_iter=-1)
    with pytest.raises(ValueError, match="log_mel_to_power"):
        mel_to_linear(torch.full((80, 10), -1.0))


def test_error_masked_l1_shapes():
    pred = torch.zeros(2, 80, 10)
    with pytest.raises(ValueError, match="real_frame_mask"):
        masked_l1(pred, pred, torch.ones(2, 80, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(B, n_mels, F\)"):
        masked_l1(pred, pred[:, :, :9], torch.ones(2, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="no frame"):
        masked_l1(pred, pred, torch.zeros(2, 10, dtype=torch.bool))


def test_error_bad_seconds_and_sample_counts():
    with pytest.raises(ValueError, match="positive"):
        seconds_to_frames(0)
    with pytest.raises(ValueError, match="whole sample counts"):
        real_frame_mask(torch.tensor([1.5, 2.0]), 10)
    assert np.isclose(frames_to_seconds(seconds_to_frames(2.5)), 2.5)


def test_error_sizes_passed_without_a_config():
    with pytest.raises(TypeError, match=r"takes a MelDecoderConfig.*MelDecoder\(MelDecoderConfig\(d_cond=64"):
        MelDecoder(64)
