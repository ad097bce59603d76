"""Audio: Whisper's front end, written with torchaudio.

Whisper never sees a waveform. It sees a log-mel spectrogram:
    16 kHz mono waveform, padded or trimmed to 30 s = 480 000 samples
    → STFT (25 ms window = 400 samples, 10 ms hop = 160 samples) → 3000 frames
    → power → 80 mel bins (Slaney scale and norm, 0–8 kHz)
    → log10, floor at (max − 8), then (x + 4) / 4           → (80, 3000)
and its encoder's two convolutions (the second with stride 2) turn 3000 frames into 1500 states.
"""

from __future__ import annotations

import functools

import torch

SAMPLE_RATE = 16_000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_SECONDS = 30
N_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE  # 480 000


def _check_waveform(waveform: torch.Tensor, name: str = "waveform") -> None:
    if not isinstance(waveform, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of samples, got {type(waveform).__name__}")
    if not waveform.is_floating_point():
        raise TypeError(f"{name} has dtype {waveform.dtype}; convert integer PCM to float in [-1, 1] "
                        f"first (int16: waveform.float() / 32768)")
    if waveform.shape[-1] == 0:
        raise ValueError(f"{name} is empty (0 samples); pass at least one sample")


def pad_or_trim(waveform: torch.Tensor, n_samples: int = N_SAMPLES) -> torch.Tensor:
    """Zero-pad or cut the last dimension to exactly `n_samples` (Whisper's 30 s window by default)."""
    _check_waveform(waveform)
    length = waveform.shape[-1]
    if length >= n_samples:
        return waveform[..., :n_samples]
    return torch.nn.functional.pad(waveform, (0, n_samples - length))


@functools.lru_cache(maxsize=8)
def _mel_transform(sample_rate: int, n_mels: int):
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=n_mels,
        f_min=0.0, f_max=sample_rate / 2, power=2.0, center=True, pad_mode="reflect",
        norm="slaney", mel_scale="slaney",
    )


def log_mel_spectrogram(waveform: torch.Tensor, sample_rate: int = SAMPLE_RATE, n_mels: int = 80) -> torch.Tensor:
    """Whisper's log-mel features of an (already padded) waveform.

    waveform (..., T) float in [-1, 1] at 16 kHz → (..., n_mels, T // 160).
    For Whisper, pad first: log_mel_spectrogram(pad_or_trim(w)) → (80, 3000).
    Equal to transformers' WhisperFeatureExtractor on the same padded input.
    """
    _check_waveform(waveform)
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"Whisper features are defined at {SAMPLE_RATE} Hz, got sample_rate={sample_rate}; "
                         f"resample first: torchaudio.functional.resample(waveform, {sample_rate}, {SAMPLE_RATE})")
    mel = _mel_transform(sample_rate, n_mels).to(waveform.device)
    spec = mel(waveform.float())[..., :-1]  # Whisper drops the last STFT frame: 480 000 samples → 3000 frames
    log_spec = spec.clamp(min=1e-10).log10()
    peak = log_spec.amax(dim=(-2, -1), keepdim=True)  # per example
    log_spec = torch.maximum(log_spec, peak - 8.0)
    return (log_spec + 4.0) / 4.0


def frames_to_states(n_frames: int | torch.Tensor):
    """Encoder states produced from `n_frames` mel frames by Whisper's stride-2 convolution: (n − 1) // 2 + 1."""
    return (n_frames - 1) // 2 + 1


def state_padding_mask(num_samples: torch.Tensor, n_states: int, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """Which encoder states hold real audio: (B,) sample counts → (B, n_states) bool, True = real.

    A clip of n samples fills n // hop_length frames, i.e. frames_to_states(frames) states;
    the rest of Whisper's window is padding that attention should ignore.
    """
    num_samples = torch.as_tensor(num_samples)
    real = frames_to_states((num_samples // hop_length).clamp(min=1))
    return torch.arange(n_states, device=num_samples.device)[None, :] < real[:, None]
