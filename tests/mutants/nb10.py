"""Notebook 10 · decoding to audio: wrong and right answers to its four exercises."""

from tests.mutants.base import Exercise, right, subtle, wrong

MUTANTS = {
    "nb10_undo_whisper_scaling": Exercise(
        wrong=[
            wrong("the ×4 not undone", "def undo_whisper_scaling(log_mel):\n    return 10 ** (log_mel - 4)",
                  names=r"p = 10 \*\* \(4y − 4\)"),
            wrong("natural exponential instead of 10 **", "def undo_whisper_scaling(log_mel):\n"
                  "    return torch.exp(4 * log_mel - 4)", names=r"p = 10 \*\* \(4y − 4\)"),
            wrong("stops at log10 p", "def undo_whisper_scaling(log_mel):\n    return 4 * log_mel - 4",
                  names=r"log10 p = 4y − 4"),
            wrong("the +4 undone the wrong way", "def undo_whisper_scaling(log_mel):\n"
                  "    return 10 ** (4 * log_mel + 4)", names=r"p = 10 \*\* \(4y − 4\)"),
            subtle("clamped at a floor of its own", "def undo_whisper_scaling(log_mel):\n"
                   "    return (10 ** (4 * log_mel - 4)).clamp(min=1e-8)"),
        ],
        right=[
            right("exp of a natural log", "def undo_whisper_scaling(log_mel):\n"
                  "    return torch.exp((4 * log_mel - 4) * math.log(10))"),
            right("float64, then back", "def undo_whisper_scaling(log_mel):\n"
                  "    return torch.float_power(10, log_mel.double() * 4 - 4).to(log_mel.dtype)"),
            right("10 ** y, to the fourth, over 10 000", "def undo_whisper_scaling(log_mel):\n"
                  "    return (10 ** log_mel) ** 4 / 1e4"),
        ]),
    "nb10_griffin_lim": Exercise(
        wrong=[
            wrong("no final inverse STFT: the last round's waveform returned",
                  "def griffin_lim(magnitude, n_iter, n_fft=400, hop_length=160):\n"
                  "    window = torch.hann_window(n_fft)\n    phase = torch.ones_like(magnitude, dtype=torch.complex64)\n"
                  "    wave = torch.istft(magnitude * phase, n_fft, hop_length, window=window)\n"
                  "    for _ in range(n_iter - 1):\n"
                  "        spec = torch.stft(wave, n_fft, hop_length, window=window, return_complex=True)\n"
                  "        phase = spec / (spec.abs() + 1e-16)\n"
                  "        wave = torch.istft(magnitude * phase, n_fft, hop_length, window=window)\n    return wave",
                  names=r"one more istft"),
            wrong("random starting phase", "def griffin_lim(magnitude, n_iter, n_fft=400, hop_length=160):\n"
                  "    window = torch.hann_window(n_fft)\n"
                  "    phase = torch.polar(torch.ones_like(magnitude), torch.rand_like(magnitude) * 2 * math.pi)\n"
                  "    for _ in range(n_iter):\n"
                  "        wave = torch.istft(magnitude * phase, n_fft, hop_length, window=window)\n"
                  "        spec = torch.stft(wave, n_fft, hop_length, window=window, return_complex=True)\n"
                  "        phase = spec / (spec.abs() + 1e-16)\n"
                  "    return torch.istft(magnitude * phase, n_fft, hop_length, window=window)",
                  names=r"start with phase = 1"),
            wrong("the spectrogram kept, not only its phase", "def griffin_lim(magnitude, n_iter, n_fft=400, hop_length=160):\n"
                  "    window = torch.hann_window(n_fft)\n    phase = torch.ones_like(magnitude, dtype=torch.complex64)\n"
                  "    for _ in range(n_iter):\n"
                  "        wave = torch.istft(magnitude * phase, n_fft, hop_length, window=window)\n"
                  "        phase = torch.stft(wave, n_fft, hop_length, window=window, return_complex=True)\n"
                  "    return torch.istft(magnitude * phase, n_fft, hop_length, window=window)",
                  names=r"spec / \(spec\.abs\(\) \+ 1e-16\)"),
            wrong("the complex spectrogram returned, not a waveform",
                  "def griffin_lim(magnitude, n_iter, n_fft=400, hop_length=160):\n"
                  "    window = torch.hann_window(n_fft)\n    phase = torch.ones_like(magnitude, dtype=torch.complex64)\n"
                  "    for _ in range(n_iter):\n"
                  "        wave = torch.istft(magnitude * phase, n_fft, hop_length, window=window)\n"
                  "        spec = torch.stft(wave, n_fft, hop_length, window=window, return_complex=True)\n"
                  "        phase = spec / (spec.abs() + 1e-16)\n    return magnitude * phase",
                  names=r"inverse STFT itself"),
            wrong("no window (a rectangular one)", "def griffin_lim(magnitude, n_iter, n_fft=400, hop_length=160):\n"
                  "    window = torch.ones(n_fft)\n    phase = torch.ones_like(magnitude, dtype=torch.complex64)\n"
                  "    for _ in range(n_iter):\n"
                  "        wave = torch.istft(magnitude * phase, n_fft, hop_length, window=window)\n"
                  "        spec = torch.stft(wave, n_fft, hop_length, window=window, return_complex=True)\n"
                  "        phase = spec / (spec.abs() + 1e-16)\n"
                  "    return torch.istft(magnitude * phase, n_fft, hop_length, window=window)",
                  names=r"Hann window"),
            subtle("n_fft and hop_length hard-coded", "def griffin_lim(magnitude, n_iter, n_fft=400, hop_length=160):\n"
                   "    window = torch.hann_window(400)\n    phase = torch.ones_like(magnitude, dtype=torch.complex64)\n"
                   "    for _ in range(n_iter):\n"
                   "        wave = torch.istft(magnitude * phase, 400, 160, window=window)\n"
                   "        spec = torch.stft(wave, 400, 160, window=window, return_complex=True)\n"
                   "        phase = spec / (spec.abs() + 1e-16)\n"
                   "    return torch.istft(magnitude * phase, 400, 160, window=window)"),
            subtle("one round too many", "def griffin_lim(magnitude, n_iter, n_fft=400, hop_length=160):\n"
                   "    window = torch.hann_window(n_fft)\n    phase = torch.ones_like(magnitude, dtype=torch.complex64)\n"
                   "    for _ in range(n_iter + 1):\n"
                   "        wave = torch.istft(magnitude * phase, n_fft, hop_length, window=window)\n"
                   "        spec = torch.stft(wave, n_fft, hop_length, window=window, return_complex=True)\n"
                   "        phase = spec / (spec.abs() + 1e-16)\n"
                   "    return torch.istft(magnitude * phase, n_fft, hop_length, window=window)"),
        ],
        right=[
            right("angles and torch.polar", "def griffin_lim(magnitude, n_iter, n_fft=400, hop_length=160):\n"
                  "    w = torch.hann_window(n_fft)\n    angle = torch.zeros_like(magnitude)\n"
                  "    for _ in range(n_iter):\n"
                  "        wave = torch.istft(torch.polar(magnitude, angle), n_fft, hop_length=hop_length, window=w)\n"
                  "        angle = torch.stft(wave, n_fft, hop_length=hop_length, window=w, return_complex=True).angle()\n"
                  "    return torch.istft(torch.polar(magnitude, angle), n_fft, hop_length=hop_length, window=w)"),
            right("torchaudio's griffinlim, momentum off", "def griffin_lim(magnitude, n_iter, n_fft=400, hop_length=160):\n"
                  "    return torchaudio.functional.griffinlim(magnitude, torch.hann_window(n_fft), n_fft, hop_length, n_fft,\n"
                  "                                            1.0, n_iter, 0.0, None, False)"),
            right("a while loop over a complex spectrogram", "def griffin_lim(magnitude, n_iter, n_fft=400, hop_length=160):\n"
                  "    window, spec = torch.hann_window(n_fft), magnitude.to(torch.complex64)\n"
                  "    while n_iter > 0:\n"
                  "        again = torch.stft(torch.istft(spec, n_fft, hop_length, window=window), n_fft, hop_length,\n"
                  "                           window=window, return_complex=True)\n"
                  "        spec = magnitude * again / (again.abs() + 1e-16)\n        n_iter -= 1\n"
                  "    return torch.istft(spec, n_fft, hop_length, window=window)"),
        ]),
    "nb10_mel_window": Exercise(
        wrong=[
            wrong("floats returned", "def mel_window(seconds, sample_rate=16000, hop_length=160):\n"
                  "    n_frames = seconds * sample_rate / hop_length\n    return n_frames, n_frames * hop_length",
                  names=r"Python ints"),
            wrong("the frames and samples swapped", "def mel_window(seconds, sample_rate=16000, hop_length=160):\n"
                  "    n_frames = int(seconds * sample_rate) // hop_length\n    return n_frames * hop_length, n_frames",
                  names=r"3000 frames"),
            wrong("off by one: the STFT's extra centred frame", "def mel_window(seconds, sample_rate=16000, hop_length=160):\n"
                  "    n_frames = int(seconds * sample_rate) // hop_length + 1\n    return n_frames, n_frames * hop_length",
                  names=r"3000 frames"),
            subtle("rounded up", "def mel_window(seconds, sample_rate=16000, hop_length=160):\n"
                   "    n_frames = math.ceil(round(seconds * sample_rate) / hop_length)\n    return n_frames, n_frames * hop_length"),
            subtle("samples not a whole number of hops", "def mel_window(seconds, sample_rate=16000, hop_length=160):\n"
                   "    return int(seconds * sample_rate) // hop_length, int(seconds * sample_rate)"),
            subtle("sample rate and hop hard-coded", "def mel_window(seconds, sample_rate=16000, hop_length=160):\n"
                   "    n_frames = int(seconds * 16000) // 160\n    return n_frames, n_frames * 160"),
        ],
        right=[
            right("samples minus the partial hop", "def mel_window(seconds, sample_rate=16000, hop_length=160):\n"
                  "    samples = math.floor(seconds * sample_rate)\n"
                  "    return samples // hop_length, samples - samples % hop_length"),
            right("divmod", "def mel_window(seconds, sample_rate=16000, hop_length=160):\n"
                  "    frames, _ = divmod(int(seconds * sample_rate), hop_length)\n    return (frames, hop_length * frames)"),
        ]),
    "nb10_masked_l1": Exercise(
        wrong=[
            wrong("no mask: padding frames counted", "def masked_l1(pred, target, mask):\n"
                  "    return (pred - target).abs().mean()", names=r"padding frame"),
            wrong("masked, but divided by every value", "def masked_l1(pred, target, mask):\n"
                  "    return ((pred - target).abs() * mask[:, None, :]).mean()", names=r"number of real values"),
            wrong("divided by the real frames, not the real values", "def masked_l1(pred, target, mask):\n"
                  "    return ((pred - target).abs() * mask[:, None, :]).sum() / mask.sum()", names=r"number of real values"),
            wrong("the other mask convention (True = padding)", "def masked_l1(pred, target, mask):\n"
                  "    keep = (~mask)[:, None, :].float()\n"
                  "    return ((pred - target).abs() * keep).sum() / (keep.sum() * pred.shape[1])", names=r"padding frame"),
            wrong("one value per clip", "def masked_l1(pred, target, mask):\n"
                  "    keep = mask[:, None, :].float()\n"
                  "    return ((pred - target).abs() * keep).sum(dim=(1, 2)) / (keep.sum(dim=(1, 2)) * pred.shape[1])",
                  names=r"scalar"),
            subtle("mean of the per-clip means", "def masked_l1(pred, target, mask):\n"
                   "    keep = mask[:, None, :].float()\n"
                   "    per_clip = ((pred - target).abs() * keep).sum(dim=(1, 2)) / (keep.sum(dim=(1, 2)) * pred.shape[1])\n"
                   "    return per_clip.mean()"),
        ],
        right=[
            right("boolean indexing of the frames", "def masked_l1(pred, target, mask):\n"
                  "    return (pred - target).abs().transpose(1, 2)[mask].mean()"),
            right("torch.where and a count", "def masked_l1(pred, target, mask):\n"
                  "    diff = torch.where(mask.unsqueeze(1), (pred - target).abs(), torch.zeros((), dtype=pred.dtype))\n"
                  "    return diff.sum() / mask.expand(pred.shape[1], *mask.shape).sum()"),
            right("float64 einsum", "def masked_l1(pred, target, mask):\n"
                  "    m = mask.double()\n"
                  "    return (torch.einsum('bmf,bf->', (pred - target).abs().double(), m) / (m.sum() * pred.shape[1])).float()"),
        ]),
}
