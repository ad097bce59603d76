"""Decoding to audio: a mel decoder, then Griffin-Lim — the two halves of a small text-to-speech system.

    "red circle" ─ TextEncoder ─▶ Tokens (B, L, D) ─ MelDecoder ─▶ log-mel (B, 80, F)
                 ─ mel_to_waveform ─▶ waveform (B, F·160)

Nobody generates 16 000 samples per second directly at this scale (the blog post's `Linear(768, 16000)`):
a sample's value depends on the phase of every frequency in it, which no small model can guess. A TTS
model predicts a **mel spectrogram** instead (100 frames per second, 80 numbers each, no phase), and a
**vocoder** turns it into samples. Here the vocoder is Griffin-Lim (no training at all):

    log-mel (Whisper's scale)  ── (x · 4 − 4) → 10^x ──▶ power mel (80, F)          log_mel_to_power
    power mel ── InverseMelScale (least squares) ──▶ power spectrogram (201, F)      mel_to_linear
    power spectrogram ── GriffinLim (find a phase) ──▶ waveform (F · 160,)           mel_to_waveform

Each step loses something, so the result is an approximation even for a *true* mel: Whisper's floor
(max − 8) drops everything 80 dB below the peak; 80 mel bins cannot hold 201 frequency bins (least
squares spreads the energy evenly inside each band); and the phase was never kept, so Griffin-Lim
iterates STFT ↔ inverse STFT to find a phase whose spectrogram matches the magnitudes. It sounds
right but a little metallic, and the samples differ from the original's.

MelDecoder is non-autoregressive and duration-based (FastSpeech's length regulator, made soft as in
Non-Attentive Tacotron and EATS, so no duration labels are needed): each conditioning token predicts
how many frames it lasts, the tokens are laid end to end along the time axis, and convolutions over
time turn that into mel frames. Every token gets its own stretch of time, in speaking order, whatever
the phrase around it; in notebook 10 this lets the decoder say word pairs it never heard together.

Shapes: cond Tokens (B, L, d_cond) → log-mel (B, n_mels, n_frames), in Whisper's scale (the scale of
mmcourse.encoding.audio.log_mel_spectrogram), frame t covering samples [t·160, t·160 + 400) at 16 kHz.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcourse.encoding.audio import HOP_LENGTH, N_FFT, SAMPLE_RATE, mel_filters
from mmcourse.fusion.projector import Projector
from mmcourse.tokens import Tokens, check_conditioning

N_MELS = 80
INITIAL_FRAMES = 36.0  # every token starts out lasting 0.36 s, about a short word; training adjusts it
WHISPER_RANGE = (-1.5, 1.6)  # (log10(1e-10) + 4) / 4 = −1.5 is Whisper's floor; a full-scale sine peaks near 1.6


# ---------------------------------------------------------------- frames and seconds


def seconds_to_frames(seconds: float, sample_rate: int = SAMPLE_RATE, hop_length: int = HOP_LENGTH) -> int:
    """How many log-mel frames `seconds` of audio become: ⌊seconds · sample_rate⌋ // hop_length (30 s → 3000)."""
    if not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    return int(seconds * sample_rate) // hop_length


def frames_to_seconds(n_frames: int, sample_rate: int = SAMPLE_RATE, hop_length: int = HOP_LENGTH) -> float:
    """The duration that `n_frames` log-mel frames cover: n_frames · hop_length / sample_rate (100 frames → 1 s)."""
    return n_frames * hop_length / sample_rate


def real_frame_mask(num_samples: torch.Tensor, n_frames: int, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """Which frames of a padded batch hold the clip: (B,) sample counts → (B, n_frames) bool, True = real.

    A clip of n samples fills ⌈n / hop_length⌉ frames (the last one partly); the rest is padding.
    """
    num_samples = torch.as_tensor(num_samples)
    if num_samples.dim() != 1 or num_samples.is_floating_point():
        raise ValueError(f"num_samples must be a (B,) tensor of whole sample counts, got {tuple(num_samples.shape)} "
                         f"{num_samples.dtype}")
    real = (num_samples + hop_length - 1) // hop_length  # (B,)
    return torch.arange(n_frames, device=num_samples.device)[None, :] < real[:, None]


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |pred − target| over the real frames only: pred, target (B, n_mels, F), mask (B, F) True = real.

    Padding frames are silence, which is easy to predict; counting them would flatter the score.
    """
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"pred and target must both be (B, n_mels, F), got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    if mask.shape != (pred.shape[0], pred.shape[2]) or mask.dtype != torch.bool:
        raise ValueError(f"mask must be (B, F) = {(pred.shape[0], pred.shape[2])} bool (True = real frame), got "
                         f"{tuple(mask.shape)} {mask.dtype}; make one with real_frame_mask(num_samples, F)")
    weights = mask[:, None, :].to(pred.dtype)  # (B, 1, F)
    frames = weights.sum() * pred.shape[1]
    if frames == 0:
        raise ValueError("mask selects no frame; every clip needs at least one real frame")
    return ((pred - target).abs() * weights).sum() / frames


# ---------------------------------------------------------------- the decoder


@dataclass
class MelDecoderConfig:
    """The sizes of a MelDecoder: conditioning width, frames to produce (100 per second), mel bins, model width,
    frames per coarse time step (Tacotron's reduction factor r) and the dilations of its convolutions."""
    d_cond: int
    n_frames: int
    n_mels: int = N_MELS
    d_model: int = 96
    frames_per_step: int = 8
    dilations: tuple[int, ...] = (1, 2, 4, 8)

    def __post_init__(self):
        for name in ("d_cond", "n_frames", "n_mels", "d_model", "frames_per_step"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.dilations = tuple(self.dilations)
        if not self.dilations or not all(isinstance(d, int) and d >= 1 for d in self.dilations):
            raise ValueError(f"dilations must be positive ints, one per convolution, got {self.dilations!r}")


class MelDecoder(nn.Module):
    """Conditioning tokens (B, L, d_cond) → a log-mel spectrogram (B, n_mels, n_frames) in Whisper's scale.

        decoder = MelDecoder(MelDecoderConfig(d_cond=64, n_frames=144))   # 1.44 s of audio
        log_mel = decoder(text_tokens)                          # (B, 80, 144)
        log_mel, alignment = decoder(text_tokens, return_alignment=True)   # alignment (B, 18, L): 18 steps of 8 frames

    The decoder works on coarse time steps of `frames_per_step` frames (Tacotron's reduction factor r):
      1. h = W_in · token                                          (B, L, d_model)
      2. duration_j = softplus(w · h_j) steps; padding lasts 0     (B, L)
      3. token j covers [start_j, end_j) with end = cumsum(duration); step s belongs to the token whose
         interval holds it: alignment = soft box (sigmoid edges, so durations get gradients)   (B, S, L)
      4. x_s = Σ_j alignment_sj · h_j + an encoding of how long the current token has been going
      5. residual dilated 1-D convolutions over the steps (receptive field 31 steps)
      6. a linear layer gives frames_per_step frames of n_mels per step → (B, n_mels, S · r)[..., :n_frames]
    Tokens should come in speaking order (text does); each one takes a slot of its own.
    """

    def __init__(self, cfg: MelDecoderConfig):
        super().__init__()
        if not isinstance(cfg, MelDecoderConfig):
            raise TypeError(f"MelDecoder takes a MelDecoderConfig, got {type(cfg).__name__}; "
                            f"e.g. MelDecoder(MelDecoderConfig(d_cond=64, n_frames=144))")
        self.cfg = cfg
        d_cond, n_frames, n_mels, d_model, frames_per_step = (cfg.d_cond, cfg.n_frames, cfg.n_mels, cfg.d_model,
                                                              cfg.frames_per_step)
        self.d_cond, self.n_frames, self.n_mels, self.frames_per_step = d_cond, n_frames, n_mels, frames_per_step
        self.n_steps = math.ceil(n_frames / frames_per_step)
        self.projector = Projector(d_cond, d_model)  # conditioning width → model width
        self.duration = nn.Linear(d_model, 1)
        nn.init.zeros_(self.duration.weight)  # start with every token lasting INITIAL_FRAMES
        nn.init.constant_(self.duration.bias, math.log(math.expm1(INITIAL_FRAMES / frames_per_step)))
        self.register_buffer("frequencies", torch.exp(torch.linspace(0.0, math.log(1 / 32), 8)), persistent=False)
        self.elapsed = nn.Linear(16, d_model)  # sin/cos of the time since the current token began
        self.convs = nn.ModuleList(nn.Conv1d(d_model, d_model, 3, padding=d, dilation=d) for d in cfg.dilations)
        self.ln_final = nn.LayerNorm(d_model)
        self.to_frames = nn.Linear(d_model, n_mels * frames_per_step)

    def durations(self, cond: Tokens) -> torch.Tensor:
        """How many frames each token lasts: (B, L), 0 for padding."""
        check_conditioning(cond, self.d_cond, "MelDecoder")
        return self._steps(self.projector(cond.states), cond.padding_mask) * self.frames_per_step

    def _steps(self, h: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.duration(h)).squeeze(-1).masked_fill(padding_mask, 0.0)  # (B, L) in steps

    @staticmethod
    def _last_token(padding_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) float, 1 at each row's last real token ([SEP] for text: the silence after the words)."""
        positions = torch.arange(padding_mask.shape[1], device=padding_mask.device)
        last = positions.masked_fill(padding_mask, -1).argmax(dim=1)  # (B,)
        return F.one_hot(last, padding_mask.shape[1]).float()

    def forward(self, cond: Tokens, return_alignment: bool = False):
        """cond Tokens (B, L, d_cond) → log-mel (B, n_mels, n_frames) [and alignment (B, n_steps, L)]."""
        check_conditioning(cond, self.d_cond, "MelDecoder")
        h = self.projector(cond.states)  # (B, L, d)
        steps = self._steps(h, cond.padding_mask)  # (B, L)
        end = steps.cumsum(dim=1)
        start = end - steps
        s = torch.arange(self.n_steps, device=h.device, dtype=h.dtype)[None, :, None] + 0.5  # (1, S, 1) step centres
        inside = torch.sigmoid(2 * (s - start[:, None, :])) * torch.sigmoid(2 * (end[:, None, :] - s))  # (B, S, L)
        inside = inside + 1e-6 * self._last_token(cond.padding_mask)[:, None, :]  # after the end: the last token
        inside = inside.masked_fill(cond.padding_mask[:, None, :], 0.0)
        alignment = inside / inside.sum(dim=-1, keepdim=True)  # (B, S, L), each step's weights sum to 1
        since = (alignment * (s - start[:, None, :])).sum(dim=-1, keepdim=True)  # (B, S, 1) steps into its token
        angles = since * self.frequencies  # (B, S, 8)
        x = alignment @ h + self.elapsed(torch.cat([angles.sin(), angles.cos()], dim=-1))  # (B, S, d)
        x = x.transpose(1, 2)  # (B, d, S): convolve over time
        for conv in self.convs:
            x = x + F.gelu(conv(x))
        frames = self.to_frames(self.ln_final(x.transpose(1, 2)))  # (B, S, n_mels · r)
        b = frames.shape[0]
        frames = frames.view(b, self.n_steps * self.frames_per_step, self.n_mels)  # (B, S·r, n_mels)
        log_mel = frames.transpose(1, 2)[..., : self.n_frames]  # (B, n_mels, n_frames)
        return (log_mel, alignment) if return_alignment else log_mel


# ---------------------------------------------------------------- back to a waveform


def log_mel_to_power(log_mel: torch.Tensor) -> torch.Tensor:
    """Undo Whisper's scaling: y = (log10(power) + 4) / 4  ⇒  power = 10^(4y − 4). Any shape, kept.

    The floor Whisper applied (max − 8, i.e. 80 dB below the peak) cannot be undone: quieter detail is gone.
    """
    _check_values(log_mel)
    return torch.pow(10.0, log_mel * 4.0 - 4.0)


@functools.lru_cache(maxsize=4)
def _inverse_mel(n_mels: int):
    import torchaudio

    inverse = torchaudio.transforms.InverseMelScale(
        n_stft=N_FFT // 2 + 1, n_mels=n_mels, sample_rate=SAMPLE_RATE, f_min=0.0, f_max=SAMPLE_RATE / 2,
        norm="slaney", mel_scale="slaney", driver="gelsd",  # gelsd: minimum-norm least squares, robust to rank loss
    )
    inverse.fb.copy_(mel_filters(SAMPLE_RATE, n_mels))  # the filters mmcourse.encoding.audio analyses with
    return inverse


def mel_to_linear(power_mel: torch.Tensor) -> torch.Tensor:
    """Power mel (…, n_mels, F) → power spectrogram (…, 201, F) by least squares (torchaudio InverseMelScale).

    Many spectra have the same mel (80 equations, 201 unknowns); least squares picks the smallest,
    which spreads each band's energy over its frequencies: fine detail (harmonics) is smeared.
    Negative parts of the solution are set to 0 (power is ≥ 0). Solved on the CPU (the least-squares
    drivers differ between devices); the result is on power_mel's device.
    """
    if not isinstance(power_mel, torch.Tensor) or power_mel.dim() not in (2, 3):
        raise ValueError(f"power_mel must be a tensor (n_mels, F) or (B, n_mels, F), got "
                         f"{tuple(getattr(power_mel, 'shape', ()))}")
    if bool((power_mel < 0).any()):
        raise ValueError("power_mel has negative values, but power is ≥ 0; did you pass a log-mel? "
                         "convert it first with log_mel_to_power")
    return _inverse_mel(power_mel.shape[-2])(power_mel.detach().float().cpu()).to(power_mel.device)


def mel_to_waveform(log_mel: torch.Tensor, n_iter: int = 32, n_mels: int = N_MELS) -> torch.Tensor:
    """A Whisper-scaled log-mel (n_mels, F) or (B, n_mels, F) → waveform (F·160,) or (B, F·160) at 16 kHz.

    log_mel_to_power → mel_to_linear → torchaudio GriffinLim (n_fft 400, hop 160, Hann window, as the
    analysis). n_iter = 0 keeps the starting phase (angle 0 everywhere): hear what a missing phase sounds like.
    Deterministic (no random initial phase). log_mel_spectrogram(result) has F frames again.
    Runs on the CPU (a few short clips are cheap there); the waveform is returned on log_mel's device.
    """
    import torchaudio

    _check_log_mel(log_mel, n_mels)
    if not isinstance(n_iter, int) or n_iter < 0:
        raise ValueError(f"n_iter must be an int ≥ 0 (32 is plenty for speech), got {n_iter!r}")
    n_frames = log_mel.shape[-1]
    griffin_lim = torchaudio.transforms.GriffinLim(
        n_fft=N_FFT, hop_length=HOP_LENGTH, power=2.0, n_iter=n_iter, momentum=0.99, rand_init=False,
        length=n_frames * HOP_LENGTH,
    )
    spectrogram = mel_to_linear(log_mel_to_power(log_mel.detach().float().cpu()))  # (…, 201, F)
    # Whisper drops the last STFT frame; the inverse STFT needs it (F + 1 frames ↔ F · 160 samples):
    # repeat the last frame so the waveform covers all F frames.
    spectrogram = torch.cat([spectrogram, spectrogram[..., -1:]], dim=-1)  # (…, 201, F + 1)
    return griffin_lim(spectrogram).clamp(-1.0, 1.0).to(log_mel.device)


# ---------------------------------------------------------------- checks (below the code they guard)


def _check_values(log_mel) -> None:
    """A float tensor of finite values in about Whisper's range."""
    if not isinstance(log_mel, torch.Tensor) or not log_mel.is_floating_point():
        raise TypeError(f"log_mel must be a float tensor (n_mels, F) or (B, n_mels, F), got "
                        f"{getattr(log_mel, 'dtype', type(log_mel).__name__)}")
    if log_mel.numel() and not bool(torch.isfinite(log_mel).all()):
        raise ValueError("log_mel contains NaN or inf values")
    if log_mel.numel() and (float(log_mel.min()) < -4.0 or float(log_mel.max()) > 4.0):
        raise ValueError(f"log_mel values span [{float(log_mel.min()):.3g}, {float(log_mel.max()):.3g}], far outside "
                         f"Whisper's scale (about [{WHISPER_RANGE[0]}, {WHISPER_RANGE[1]}]); pass the output of "
                         f"mmcourse.encoding.audio.log_mel_spectrogram or of MelDecoder, not a power or dB spectrogram")


def _check_log_mel(log_mel, n_mels: int) -> None:
    """_check_values, and the shape (n_mels, F) or (B, n_mels, F) with F ≥ 2."""
    _check_values(log_mel)
    if log_mel.dim() not in (2, 3):
        raise ValueError(f"log_mel must be (n_mels, F) or (B, n_mels, F), got shape {tuple(log_mel.shape)}")
    if log_mel.shape[-2] != n_mels:
        hint = " — it looks transposed: pass log_mel.mT" if log_mel.shape[-1] == n_mels else ""
        raise ValueError(f"log_mel has {log_mel.shape[-2]} mel bins on dim -2, expected {n_mels}{hint}")
    if log_mel.shape[-1] < 2:
        raise ValueError(f"log_mel needs at least 2 frames for an inverse STFT, got {log_mel.shape[-1]}")
