"""Audio: reading, resampling and Whisper's front end, written with torchaudio.

Whisper never sees a waveform. It sees a log-mel spectrogram:
    16 kHz mono waveform, padded or trimmed to 30 s = 480 000 samples
    → STFT (25 ms window = 400 samples, 10 ms hop = 160 samples) → 3000 frames
    → power → 80 mel bins (Slaney scale and norm, 0–8 kHz)
    → log10, floor at (max − 8), then (x + 4) / 4           → (80, 3000)
and its encoder's two convolutions (the second with stride 2) turn 3000 frames into 1500 states.

    wave = load_audio("speech.flac")                  # (T,) float32 in [-1, 1], mono, 16 kHz
    encoder = AudioEncoder.from_tier("tiny")
    tokens = encoder([wave])                          # Tokens(states (1, 1500, D), padding_mask (1, 1500))

What happens to awkward input:
    a file in int PCM, stereo, 44.1 kHz   load_audio converts: scaled to [-1, 1], channels averaged, resampled
    an int16 tensor                       TypeError: scale it (int16 / 32768, or to_float_mono)
    floats far outside [-1, 1]            ValueError: probably int PCM cast with .float() but not scaled
    empty, NaN or inf                     ValueError
    sample_rate other than 16 000         ValueError naming resample(w, orig_sr, 16000)
    a stereo clip given to AudioEncoder   ValueError naming to_float_mono (a (2, T) tensor would pass for a batch)
    longer than the window                pad_or_trim cuts (that is its job); AudioEncoder cuts with a warning
"""

from __future__ import annotations

import functools
import math
import warnings

import torch

from mmcourse import tiers
from mmcourse.tokens import Tokens

SAMPLE_RATE = 16_000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_SECONDS = 30
N_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE  # 480 000
MAX_AMPLITUDE = 1.5  # float audio lies in [-1, 1]; resampling may overshoot a little, unscaled int PCM a lot


# ---------------------------------------------------------------- reading and converting


def to_float_mono(samples: torch.Tensor) -> torch.Tensor:
    """Integer or float PCM, mono (T,) or multichannel (C, T) → mono float32 (T,) in [-1, 1].

    Integers are scaled by the largest value of their type: int16 / 32768, int32 / 2³¹,
    uint8 (x − 128) / 128 (8-bit WAV is unsigned). Channels are mixed by averaging them,
    so a sound in both channels keeps its loudness.
    """
    if not isinstance(samples, torch.Tensor):
        raise TypeError(f"samples must be a torch.Tensor, got {type(samples).__name__} "
                        f"(from numpy: torch.from_numpy(x))")
    if samples.dim() not in (1, 2):
        raise ValueError(f"samples must be (T,) or (channels, T), got shape {tuple(samples.shape)}")
    if samples.dtype == torch.uint8:
        samples = (samples.float() - 128.0) / 128.0
    elif not samples.is_floating_point():
        samples = samples.double() / 2.0 ** (torch.iinfo(samples.dtype).bits - 1)  # int16: / 32768
    if samples.dim() == 2:
        if samples.shape[0] > samples.shape[1]:
            raise ValueError(f"samples has shape {tuple(samples.shape)}: more channels than samples; pass "
                             f"(channels, T) — for soundfile's (T, channels) layout use samples.T")
        samples = samples.mean(dim=0)  # (C, T) → (T,)
    return samples.to(torch.float32)


def resample(waveform: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """(..., T) at orig_sr Hz → (..., ⌈T · new_sr / orig_sr⌉) at new_sr Hz (torchaudio's windowed-sinc filter).

    The filter removes everything above the lower Nyquist frequency (min(orig_sr, new_sr) / 2)
    before the rate changes; dropping samples without it folds high frequencies down (aliasing).
    """
    import torchaudio

    _check_waveform(waveform)
    for name, rate in (("orig_sr", orig_sr), ("new_sr", new_sr)):
        if not isinstance(rate, int) or rate <= 0:
            raise ValueError(f"{name} must be a positive int in Hz (e.g. 16000), got {rate!r}")
    if orig_sr == new_sr:
        return waveform
    return torchaudio.functional.resample(waveform, orig_sr, new_sr)


def load_audio(path, target_sr: int = SAMPLE_RATE) -> torch.Tensor:
    """Read a WAV/FLAC/OGG file (a path or an open binary file) with soundfile → mono float32 (T,)
    in [-1, 1] at `target_sr` Hz.

    Integer PCM is scaled by soundfile to [-1, 1) (int16 / 32768, 24-bit / 2²³, …);
    stereo (or more channels) is mixed to mono by averaging the channels; the result is
    resampled to `target_sr` with `resample`. (torchaudio.load needs torchcodec and FFmpeg.)
    """
    import soundfile

    data, sr = soundfile.read(path, dtype="float32", always_2d=True)  # (T, C)
    if data.shape[0] == 0:
        raise ValueError(f"{getattr(path, 'name', path)} holds no samples (0 frames); record or export the audio again")
    wave = to_float_mono(torch.from_numpy(data).T)  # (C, T) → (T,)
    return resample(wave, int(sr), target_sr)


# ---------------------------------------------------------------- Whisper's features


def pad_or_trim(waveform: torch.Tensor, n_samples: int = N_SAMPLES) -> torch.Tensor:
    """Zero-pad or cut the last dimension to exactly `n_samples` (Whisper's 30 s window by default).

    (..., T) → (..., n_samples). Cutting is this function's job, so it does not warn;
    AudioEncoder warns when a clip is longer than its window.
    """
    _check_waveform(waveform)
    length = waveform.shape[-1]
    if length >= n_samples:
        return waveform[..., :n_samples]
    return torch.nn.functional.pad(waveform, (0, n_samples - length))


def mel_filters(sample_rate: int, n_mels: int) -> torch.Tensor:
    """Slaney mel filters (n_fft // 2 + 1, n_mels) = (201, n_mels), computed in float64.

    torchaudio builds them in the default dtype (float32); Whisper's reference builds them in float64
    and rounds once. The float32 ones differ by ~1e-7, which the log turns into up to ~1.5e-4 in
    quiet bins; the float64 ones, rounded to float32, are identical to Whisper's.
    """
    import torchaudio

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # melscale_fbanks has no dtype argument: it follows the default
    try:
        return torchaudio.functional.melscale_fbanks(N_FFT // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate,
                                                     norm="slaney", mel_scale="slaney")
    finally:
        torch.set_default_dtype(previous)


@functools.lru_cache(maxsize=8)
def _mel_transform(sample_rate: int, n_mels: int):
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=n_mels,
        f_min=0.0, f_max=sample_rate / 2, power=2.0, center=True, pad_mode="reflect",
        norm="slaney", mel_scale="slaney",
    )
    mel.mel_scale.fb.copy_(mel_filters(sample_rate, n_mels))  # see mel_filters
    return mel


def log_mel_spectrogram(waveform: torch.Tensor, sample_rate: int = SAMPLE_RATE, n_mels: int = 80) -> torch.Tensor:
    """Whisper's log-mel features of an (already padded) waveform.

    waveform (..., T) float in [-1, 1] at 16 kHz → (..., n_mels, T // 160).
    For Whisper, pad first: log_mel_spectrogram(pad_or_trim(w)) → (80, 3000).
    Equal to transformers' WhisperFeatureExtractor on the same padded input.
    """
    _check_waveform(waveform)
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"Whisper features are defined at {SAMPLE_RATE} Hz, got sample_rate={sample_rate}; "
                         f"resample first: mmcourse.encoding.audio.resample(waveform, {sample_rate}, {SAMPLE_RATE})")
    mel = _mel_transform(sample_rate, n_mels).to(waveform.device)
    spec = mel(waveform.float())[..., :-1]  # Whisper drops the last STFT frame: 480 000 samples → 3000 frames
    log_spec = spec.clamp(min=1e-10).log10()
    peak = log_spec.amax(dim=(-2, -1), keepdim=True)  # per example
    log_spec = torch.maximum(log_spec, peak - 8.0)
    return (log_spec + 4.0) / 4.0


def frames_to_states(n_frames: int | torch.Tensor):
    """Encoder states produced from `n_frames` mel frames by Whisper's stride-2 convolution: (n − 1) // 2 + 1."""
    return (n_frames - 1) // 2 + 1


def real_state_mask(num_samples: torch.Tensor, n_states: int, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """Which encoder states hold real audio: (B,) sample counts → (B, n_states) bool, True = real.

    A clip of n samples fills n // hop_length frames, i.e. frames_to_states(frames) states;
    the rest of Whisper's window is padding that attention should ignore.
    Tokens.padding_mask (True = padding) is its negation: `~real_state_mask(...)`.
    """
    num_samples = torch.as_tensor(num_samples)
    real = frames_to_states((num_samples // hop_length).clamp(min=1))
    return torch.arange(n_states, device=num_samples.device)[None, :] < real[:, None]


# ---------------------------------------------------------------- the encoder


class AudioEncoder(torch.nn.Module):
    """Whisper's encoder behind one call: waveforms → Tokens(states (B, 50·seconds, D), padding_mask).

        encoder = AudioEncoder.from_tier("tiny", seconds=3)
        tokens = encoder([wave_1s, wave_2s])   # states (2, 150, 64); padding_mask True after 50 and 100 states

    Each clip (16 kHz mono float) is padded or trimmed to the window (`seconds`), turned into
    log-mel features, and encoded. The encoder itself attends over the whole window (Whisper
    ignores masks), so `padding_mask` is what keeps pooling and fusion away from the padding.
    """

    def __init__(self, model: torch.nn.Module, seconds: int = CHUNK_SECONDS, n_mels: int = 80):
        super().__init__()
        self.model = model  # a transformers WhisperEncoder: (B, n_mels, 100·seconds) → (B, 50·seconds, D)
        self.seconds, self.n_mels = seconds, n_mels
        self.n_samples = seconds * SAMPLE_RATE
        self.n_states = frames_to_states(self.n_samples // HOP_LENGTH)
        config = model.config
        if config.max_source_positions != self.n_states:
            raise ValueError(f"this encoder was built for a {config.max_source_positions // 50} s window "
                             f"({config.max_source_positions} states), not seconds={seconds}; real Whisper "
                             f"checkpoints (packaged, hub) take only 30 s, the tiny tier any window from 1 to 30 s")
        if config.num_mel_bins != n_mels:
            raise ValueError(f"the encoder expects {config.num_mel_bins} mel bins, got n_mels={n_mels}; "
                             f"pass n_mels={config.num_mel_bins}")

    @classmethod
    def from_tier(cls, tier: str = "tiny", name: str | None = None, **kwargs) -> "AudioEncoder":
        """Wrap `mmcourse.tiers.load_audio_encoder(tier, name, **kwargs)` (tiny: seconds=1..30; others 30 s)."""
        model, _ = tiers.load_audio_encoder(tier, name, **kwargs)
        return cls(model, seconds=kwargs.get("seconds", CHUNK_SECONDS), n_mels=model.config.num_mel_bins)

    @property
    def width(self) -> int:
        """D, the size of each state vector."""
        return self.model.config.d_model

    def _batch(self, waveforms, num_samples) -> tuple[torch.Tensor, torch.Tensor]:
        """A list of (T_i,) or a (B, T) tensor → (B, n_samples) padded/trimmed and (B,) real lengths."""
        if isinstance(waveforms, (list, tuple)):
            if num_samples is not None:
                raise ValueError("num_samples is only for a (B, T) tensor; a list's clips already have their lengths")
            if len(waveforms) == 0:
                raise ValueError("waveforms is an empty list; pass at least one clip")
            for i, w in enumerate(waveforms):
                _check_waveform(w, f"waveforms[{i}]")
                if w.dim() != 1:
                    raise ValueError(f"waveforms[{i}] has shape {tuple(w.shape)}; each clip must be mono (T,). "
                                     f"Mix stereo (C, T) with mmcourse.encoding.audio.to_float_mono(w)")
            lengths = torch.tensor([w.shape[0] for w in waveforms])
            return torch.stack([pad_or_trim(w, self.n_samples) for w in waveforms]), lengths
        _check_waveform(waveforms, "waveforms")
        if waveforms.dim() == 1:
            raise ValueError(f"waveforms is one clip of shape {tuple(waveforms.shape)}; "
                             f"pass a batch: [waveform] or waveform[None]")
        if waveforms.dim() != 2:
            raise ValueError(f"waveforms must be a list of (T,) clips or a (B, T) tensor, got shape "
                             f"{tuple(waveforms.shape)}; mix channels first with mmcourse.encoding.audio.to_float_mono")
        batch, length = waveforms.shape
        if num_samples is None:
            num_samples = torch.full((batch,), length)
        num_samples = torch.as_tensor(num_samples).cpu()
        if num_samples.shape != (batch,):
            raise ValueError(f"num_samples has shape {tuple(num_samples.shape)} but the batch has {batch} waveforms; "
                             f"pass one sample count per waveform, shape ({batch},)")
        if num_samples.is_floating_point() or not bool(((num_samples >= 1) & (num_samples <= length)).all()):
            raise ValueError(f"num_samples must be whole numbers between 1 and T = {length}, "
                             f"got {num_samples.tolist()}")
        return pad_or_trim(waveforms, self.n_samples), num_samples

    def forward(self, waveforms, num_samples: torch.Tensor | None = None, sample_rate: int = SAMPLE_RATE) -> Tokens:
        """waveforms: a list of B mono clips (T_i,) or a (B, T) tensor with real lengths num_samples (B,),
        16 kHz float in [-1, 1] → Tokens(states (B, 50·seconds, D), padding_mask (B, 50·seconds), True = padding).

        A clip longer than the window is cut to it, with a warning.
        """
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"the encoder expects {SAMPLE_RATE} Hz audio, got {sample_rate} Hz; resample first "
                             f"with mmcourse.encoding.audio.resample(w, {sample_rate}, {SAMPLE_RATE})")
        batch, num_samples = self._batch(waveforms, num_samples)  # (B, n_samples), (B,)
        if bool((num_samples > self.n_samples).any()):
            longest = float(num_samples.max()) / SAMPLE_RATE
            warnings.warn(f"a clip of {longest:.1f} s is longer than the {self.seconds} s window: only its first "
                          f"{self.seconds} s are encoded; split long audio into {self.seconds} s chunks")
        parameter = next(self.model.parameters())
        features = log_mel_spectrogram(batch.to(parameter.device), n_mels=self.n_mels)  # (B, n_mels, 100·seconds)
        states = self.model(features.to(parameter.dtype)).last_hidden_state  # (B, 50·seconds, D)
        real = real_state_mask(num_samples.clamp(max=self.n_samples), states.shape[1])  # (B, L) True = real
        return Tokens(states, ~real.to(states.device))


# ---------------------------------------------------------------- checks (below the code they guard)


def _check_waveform(waveform: torch.Tensor, name: str = "waveform") -> None:
    """A float tensor (..., T) with at least one sample, finite, in about [-1, 1]; else an error naming the fix."""
    if not isinstance(waveform, torch.Tensor):
        hint = " (from numpy: torch.from_numpy(x))" if type(waveform).__module__ == "numpy" else ""
        raise TypeError(f"{name} must be a torch.Tensor of samples, got {type(waveform).__name__}{hint}")
    if not waveform.is_floating_point():
        raise TypeError(f"{name} has dtype {waveform.dtype}; convert integer PCM to float in [-1, 1] "
                        f"first (int16: waveform.float() / 32768, or mmcourse.encoding.audio.to_float_mono)")
    if waveform.dim() == 0 or waveform.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(waveform.shape)}); pass at least one sample")
    peak = float(waveform.abs().amax())
    if not math.isfinite(peak):
        raise ValueError(f"{name} contains NaN or inf samples; find where they came from (often a division by "
                         f"zero when normalising silence), or replace them: torch.nan_to_num(w, 0.0, 0.0, 0.0)")
    if peak > MAX_AMPLITUDE:
        raise ValueError(f"{name} reaches {peak:g}, but float audio lies in [-1, 1]; integer PCM cast with .float() "
                         f"must also be scaled (int16: / 32768, see mmcourse.encoding.audio.to_float_mono)")
