"""The one place that decides where tensors live and in which precision.

Everything else in mmcourse calls `get_device()` and `autocast()` instead of
writing "cuda" anywhere. On a laptop without a GPU the course runs on the CPU
in float32; with a GPU it uses CUDA (or Apple's MPS) and, where the hardware
supports it, bfloat16 autocast for the matrix multiplications.

Override the choice with the environment variable MMCOURSE_DEVICE
(for example `MMCOURSE_DEVICE=cpu jupyter lab`).
"""

from __future__ import annotations

import contextlib
import os
import random
import time

import numpy as np
import torch

DEVICE_ENV = "MMCOURSE_DEVICE"
_KNOWN_DEVICES = ("cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the device: `prefer`, else $MMCOURSE_DEVICE, else CUDA, then MPS, then CPU.

    An explicit request for a device that is not there is an error (not a silent
    fallback), so a typo in MMCOURSE_DEVICE does not quietly train on the CPU.
    """
    choice = prefer if prefer is not None else os.environ.get(DEVICE_ENV, "").strip()
    if choice:
        kind = choice.split(":")[0].lower()
        if kind not in _KNOWN_DEVICES:
            raise ValueError(
                f"unknown device {choice!r} (from {'the argument' if prefer else DEVICE_ENV}); "
                f"use one of {', '.join(_KNOWN_DEVICES)}, e.g. {DEVICE_ENV}=cpu"
            )
        if kind == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"device {choice!r} was requested but torch sees no CUDA GPU "
                f"(torch {torch.__version__}); unset {DEVICE_ENV} or set it to cpu"
            )
        if kind == "mps" and not _mps_available():
            raise RuntimeError(f"device {choice!r} was requested but MPS is not available; unset {DEVICE_ENV} or set it to cpu")
        return torch.device(choice.lower())
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(device: torch.device | str | None = None) -> torch.dtype | None:
    """The reduced precision worth using on `device`, or None for plain float32.

    bf16 on CUDA GPUs that support it (Ampere and newer); None on CPU and MPS,
    where autocast brings no speed-up for these small models and can only hurt.
    """
    device = torch.device(device) if device is not None else get_device()
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def autocast(device: torch.device | str | None = None, enabled: bool = True):
    """A context manager for mixed precision: bf16 autocast on capable CUDA GPUs, a no-op elsewhere.

        with autocast(device):
            logits = model(x)      # matmuls in bf16 on a GPU, fp32 on the CPU

    Losses and softmaxes stay in float32 under torch's autocast rules.
    """
    device = torch.device(device) if device is not None else get_device()
    dtype = autocast_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a torch.Generator seeded the same way."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def setup(seed: int = 0, threads: int = 2) -> torch.device:
    """The one set-up line of every notebook: `device = runtime.setup()`.

    Seeds Python, NumPy and torch; uses at most `threads` CPU threads (tiny models gain nothing from more, and
    several processes sharing 2 cores slow down badly with more); silences transformers' advisory warnings and
    progress bars (errors still show); returns the device get_device picks.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int ≥ 1, got {threads!r}")
    seed_everything(seed)
    torch.set_num_threads(min(threads, torch.get_num_threads()))
    try:
        import transformers
    except ImportError:  # the course runs without transformers' extras too
        pass
    else:
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    return get_device()


def run_times(fns: dict, repeats: int = 5) -> dict[str, list[float]]:
    """{name: function} → {name: [seconds of each of `repeats` runs]}, after one warm-up run of each.

    The functions take turns (a, b, a, b, …), so a busy machine slows them alike. Runs under torch.inference_mode."""
    if not isinstance(fns, dict) or not fns or not all(callable(f) for f in fns.values()):
        raise ValueError("fns must be a non-empty dict {name: function without arguments}")
    times = {name: [] for name in fns}
    with torch.inference_mode():
        for fn in fns.values():
            fn()
        for _ in range(repeats):
            for name, fn in fns.items():
                begin = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - begin)
    return times


def fastest_ms(fns: dict, repeats: int = 5) -> dict[str, float]:
    """{name: function} → {name: the fastest of `repeats` runs, in ms} (run_times): the fastest run is the one least
    disturbed by other programs, so a comparison holds on a busy machine too."""
    return {name: 1000 * min(t) for name, t in run_times(fns, repeats).items()}


def is_offline() -> bool:
    """True when the Hugging Face Hub must not be contacted.

    Set by HF_HUB_OFFLINE=1 / TRANSFORMERS_OFFLINE=1, or found by a quick
    (≤ 1.5 s) connection attempt to huggingface.co that fails.
    """
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return not hub_reachable()


_REACHABLE_CACHE: dict[str, tuple[float, bool]] = {}


def hub_reachable(timeout: float = 1.5, max_age: float = 60.0) -> bool:
    """Can we open a TCP connection to the Hub's HTTPS port within `timeout` seconds?

    The name lookup runs in a helper thread, so a hanging DNS server cannot stall us either.
    The answer is remembered for `max_age` seconds.
    """
    import time

    import socket
    import threading

    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    cached = _REACHABLE_CACHE.get(host)
    if cached and time.monotonic() - cached[0] < max_age:
        return cached[1]
    result = []

    def attempt():
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    reachable = bool(result and result[0])
    _REACHABLE_CACHE[host] = (time.monotonic(), reachable)
    return reachable


def describe() -> dict:
    """A small report of the runtime: torch version, device, autocast dtype, threads."""
    device = get_device()
    dtype = autocast_dtype(device)
    return {
        "torch": torch.__version__,
        "device": str(device),
        "autocast": str(dtype).replace("torch.", "") if dtype else "off (float32)",
        "cpu_threads": torch.get_num_threads(),
        "cuda_devices": torch.cuda.device_count(),
    }
