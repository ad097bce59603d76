"""Notebook 04 · audio encoding: wrong and right answers to its five exercises."""

from tests.mutants.base import Exercise, right, subtle, wrong

MUTANTS = {
    "nb04_to_float_mono": Exercise(
        wrong=[
            wrong("divided by 32767", "def to_float_mono(pcm):\n    wave = pcm.to(torch.float32) / 32767.0\n"
                  "    return wave.mean(dim=0) if wave.dim() == 2 else wave", names=r"not 32767"),
            wrong("channels summed, not averaged", "def to_float_mono(pcm):\n    wave = pcm.to(torch.float32) / 32768.0\n"
                  "    return wave.sum(dim=0) if wave.dim() == 2 else wave", names=r"not sum them"),
            wrong("averaged over time, not channels", "def to_float_mono(pcm):\n    wave = pcm.to(torch.float32) / 32768.0\n"
                  "    return wave.mean(dim=-1) if wave.dim() == 2 else wave", names=r"channel dimension \(dim=0\)"),
            wrong("float64, not float32", "def to_float_mono(pcm):\n    wave = pcm.to(torch.float64) / 32768.0\n"
                  "    return wave.mean(dim=0) if wave.dim() == 2 else wave", names=r"float32"),
            wrong("a mono clip averaged too", "def to_float_mono(pcm):\n    return (pcm.to(torch.float32) / 32768.0).mean(dim=0)",
                  names=r"already mono"),
            subtle("channels added in int16: overflow", "def to_float_mono(pcm):\n    if pcm.dim() == 1:\n"
                   "        return pcm.to(torch.float32) / 32768.0\n    total = pcm[0]\n    for channel in pcm[1:]:\n"
                   "        total = total + channel\n    return total.to(torch.float32) / (32768.0 * pcm.shape[0])"),
            subtle("the left channel only", "def to_float_mono(pcm):\n"
                   "    return (pcm[0] if pcm.dim() == 2 else pcm).to(torch.float32) / 32768.0"),
        ],
        right=[
            right("atleast_2d, mean, then scale", "def to_float_mono(pcm):\n"
                  "    return torch.atleast_2d(pcm).float().mean(dim=0) / 32768"),
            right("float64 mean, back to float32", "def to_float_mono(pcm):\n"
                  "    x = pcm.reshape(-1, pcm.shape[-1]).to(torch.float64)\n"
                  "    return (x.sum(dim=0) / (x.shape[0] * 32768)).to(torch.float32)"),
        ]),
    "nb04_resampled_length": Exercise(
        wrong=[
            wrong("rounded down", "def resampled_length(n_samples, orig_sr, new_sr):\n"
                  "    return n_samples * new_sr // orig_sr", names=r"round UP"),
            wrong("a float returned", "def resampled_length(n_samples, orig_sr, new_sr):\n"
                  "    return -(-n_samples * new_sr / orig_sr // 1)", names=r"Python int"),
            wrong("floats: duration × new rate, then ceil", "def resampled_length(n_samples, orig_sr, new_sr):\n"
                  "    return math.ceil(n_samples / orig_sr * new_sr)", names=r"integers"),
            wrong("the rates swapped", "def resampled_length(n_samples, orig_sr, new_sr):\n"
                  "    return -(-n_samples * orig_sr // new_sr)", names=r"2 s × 16 000 Hz"),
            subtle("rounded to the nearest", "def resampled_length(n_samples, orig_sr, new_sr):\n"
                   "    return round(n_samples * new_sr / orig_sr)"),
        ],
        right=[
            right("divmod", "def resampled_length(n_samples, orig_sr, new_sr):\n"
                  "    whole, rest = divmod(n_samples * new_sr, orig_sr)\n    return whole + (1 if rest else 0)"),
            right("add orig_sr - 1, then floor", "def resampled_length(n_samples, orig_sr, new_sr):\n"
                  "    return (n_samples * new_sr + orig_sr - 1) // orig_sr"),
            right("exact fractions", "def resampled_length(n_samples, orig_sr, new_sr):\n"
                  "    from fractions import Fraction\n    return math.ceil(Fraction(n_samples * new_sr, orig_sr))"),
        ]),
    "nb04_pad_or_trim": Exercise(
        wrong=[
            wrong("zeros put in front", "def pad_or_trim(waveform, n_samples=480000):\n    length = waveform.shape[-1]\n"
                  "    if length >= n_samples:\n        return waveform[..., :n_samples]\n"
                  "    return torch.nn.functional.pad(waveform, (n_samples - length, 0))", names=r"at the END"),
            wrong("the end kept when trimming", "def pad_or_trim(waveform, n_samples=480000):\n    length = waveform.shape[-1]\n"
                  "    if length >= n_samples:\n        return waveform[..., length - n_samples:]\n"
                  "    return torch.nn.functional.pad(waveform, (0, n_samples - length))", names=r"keep the beginning"),
            wrong("the first dimension cut", "def pad_or_trim(waveform, n_samples=480000):\n    length = waveform.shape[-1]\n"
                  "    if length >= n_samples:\n        return waveform[:n_samples]\n"
                  "    return torch.nn.functional.pad(waveform, (0, n_samples - length))", names=r"LAST dimension"),
            subtle("the length read from len(): the batch size", "def pad_or_trim(waveform, n_samples=480000):\n"
                   "    length = len(waveform)\n    if length >= n_samples:\n        return waveform[..., :n_samples]\n"
                   "    return torch.nn.functional.pad(waveform, (0, n_samples - length))"),
            subtle("1-D zeros concatenated", "def pad_or_trim(waveform, n_samples=480000):\n"
                   "    if waveform.shape[-1] >= n_samples:\n        return waveform[..., :n_samples]\n"
                   "    return torch.cat([waveform, torch.zeros(n_samples - waveform.shape[-1])], dim=-1)"),
        ],
        right=[
            right("F.pad with a negative pad trims too", "def pad_or_trim(waveform, n_samples=480000):\n"
                  "    return torch.nn.functional.pad(waveform, (0, n_samples - waveform.shape[-1]))"),
            right("a zero tensor, copied into", "def pad_or_trim(waveform, n_samples=480000):\n"
                  "    out = waveform.new_zeros(*waveform.shape[:-1], n_samples)\n"
                  "    keep = min(n_samples, waveform.shape[-1])\n    out[..., :keep] = waveform[..., :keep]\n    return out"),
            right("cat with zeros of the batch's shape", "def pad_or_trim(waveform, n_samples=480000):\n"
                  "    waveform = waveform[..., :n_samples]\n    missing = n_samples - waveform.shape[-1]\n"
                  "    zeros = torch.zeros(*waveform.shape[:-1], missing, dtype=waveform.dtype)\n"
                  "    return torch.cat([waveform, zeros], dim=-1)"),
        ]),
    "nb04_log_mel_from_power": Exercise(
        wrong=[
            wrong("the max of the whole batch", "def log_mel_from_power(mel_power):\n"
                  "    log_spec = mel_power.clamp(min=1e-10).log10()\n"
                  "    return (torch.maximum(log_spec, log_spec.max() - 8.0) + 4.0) / 4.0", names=r"per example"),
            wrong("no clamp: silence is -inf", "def log_mel_from_power(mel_power):\n"
                  "    log_spec = mel_power.log10()\n    peak = log_spec.amax(dim=(-2, -1), keepdim=True)\n"
                  "    return (torch.maximum(log_spec, peak - 8.0) + 4.0) / 4.0", names=r"clamp to 1e-10"),
            wrong("no floor at max - 8", "def log_mel_from_power(mel_power):\n"
                  "    return (mel_power.clamp(min=1e-10).log10() + 4.0) / 4.0", names=r"max − 8"),
            wrong("natural log", "def log_mel_from_power(mel_power):\n"
                  "    log_spec = mel_power.clamp(min=1e-10).log()\n    peak = log_spec.amax(dim=(-2, -1), keepdim=True)\n"
                  "    return (torch.maximum(log_spec, peak - 8.0) + 4.0) / 4.0", names=r"log10"),
            wrong("max per frame, over one dimension only", "def log_mel_from_power(mel_power):\n"
                  "    log_spec = mel_power.clamp(min=1e-10).log10()\n    peak = log_spec.amax(dim=-2, keepdim=True)\n"
                  "    return (torch.maximum(log_spec, peak - 8.0) + 4.0) / 4.0", names=r"last two dimensions"),
            subtle("computed in place in the caller's power", "def log_mel_from_power(mel_power):\n"
                   "    log_spec = mel_power.clamp_(min=1e-10).log10_()\n"
                   "    peak = log_spec.amax(dim=(-2, -1), keepdim=True)\n"
                   "    return (torch.maximum(log_spec, peak - 8.0) + 4.0) / 4.0"),
            subtle("x / 4 + 4, not (x + 4) / 4", "def log_mel_from_power(mel_power):\n"
                   "    log_spec = mel_power.clamp(min=1e-10).log10()\n"
                   "    peak = log_spec.amax(dim=(-2, -1), keepdim=True)\n"
                   "    return torch.maximum(log_spec, peak - 8.0) / 4.0 + 4.0"),
        ],
        right=[
            right("clamp with a per-example minimum tensor", "def log_mel_from_power(mel_power):\n"
                  "    x = torch.log10(torch.clamp(mel_power, min=1e-10))\n"
                  "    floor = x.flatten(-2).max(dim=-1).values[..., None, None] - 8\n"
                  "    return (torch.clamp(x, min=floor) + 4) / 4"),
            right("where, and divided by ln 10", "def log_mel_from_power(mel_power):\n"
                  "    x = torch.where(mel_power > 1e-10, mel_power, torch.full_like(mel_power, 1e-10)).log() / math.log(10)\n"
                  "    peak = x.amax(dim=-1, keepdim=True).amax(dim=-2, keepdim=True)\n"
                  "    return (x.maximum(peak - 8) + 4) * 0.25"),
        ]),
    "nb04_audio_padding_mask": Exercise(
        wrong=[
            wrong("the other convention: True = real", "def audio_padding_mask(num_samples, n_states, hop_length=160):\n"
                  "    frames = (num_samples // hop_length).clamp(min=1)\n    real = (frames - 1) // 2 + 1\n"
                  "    return torch.arange(n_states)[None, :] < real[:, None]", names=r"True means PADDING"),
            wrong("frames counted as states: no stride 2", "def audio_padding_mask(num_samples, n_states, hop_length=160):\n"
                  "    real = (num_samples // hop_length).clamp(min=1)\n"
                  "    return torch.arange(n_states)[None, :] >= real[:, None]", names=r"\(100 − 1\) // 2 \+ 1 = 50"),
            wrong("no minimum of one frame", "def audio_padding_mask(num_samples, n_states, hop_length=160):\n"
                  "    frames = num_samples // hop_length\n    real = (frames - 1) // 2 + 1\n"
                  "    return torch.arange(n_states)[None, :] >= real[:, None]", names=r"at least one"),
            wrong("a long mask, not bool", "def audio_padding_mask(num_samples, n_states, hop_length=160):\n"
                  "    frames = (num_samples // hop_length).clamp(min=1)\n    real = (frames - 1) // 2 + 1\n"
                  "    return (torch.arange(n_states)[None, :] >= real[:, None]).long()", names=r"bool"),
            subtle("states = frames // 2: wrong for odd frame counts",
                   "def audio_padding_mask(num_samples, n_states, hop_length=160):\n"
                   "    frames = (num_samples // hop_length).clamp(min=1)\n    real = (frames // 2).clamp(min=1)\n"
                   "    return torch.arange(n_states)[None, :] >= real[:, None]"),
            subtle("the 160-sample hop hard-coded", "def audio_padding_mask(num_samples, n_states, hop_length=160):\n"
                   "    frames = (num_samples // 160).clamp(min=1)\n    real = (frames - 1) // 2 + 1\n"
                   "    return torch.arange(n_states)[None, :] >= real[:, None]"),
        ],
        right=[
            right("frames_to_states and torch.maximum", "def audio_padding_mask(num_samples, n_states, hop_length=160):\n"
                  "    frames = torch.maximum(torch.div(num_samples, hop_length, rounding_mode='floor'),\n"
                  "                           torch.ones_like(num_samples))\n"
                  "    real = audio.frames_to_states(frames)\n"
                  "    return ~(torch.arange(n_states, device=num_samples.device).unsqueeze(0) < real.unsqueeze(1))"),
            right("row by row in Python", "def audio_padding_mask(num_samples, n_states, hop_length=160):\n"
                  "    mask = torch.ones(len(num_samples), n_states, dtype=torch.bool)\n"
                  "    for i, n in enumerate(num_samples.tolist()):\n        frames = max(n // hop_length, 1)\n"
                  "        mask[i, :-(-frames // 2)] = False\n    return mask"),
        ]),
}
