"""Text to speech with espeak-ng, called through ctypes.

The course needs spoken sentences to feed speech models, offline and without a
system package. The pip package `espeakng-loader` ships the espeak-ng shared
library and its voice data; this module loads that library with ctypes and
asks it for samples:

    dlopen + espeak_Initialize(SYNCHRONOUS) -> native sample rate (22050 Hz)
    espeak_Synth(text)                      -> our callback receives int16 chunks
    int16 / 32768 -> float32, trim silence, resample to the rate you asked for

espeak-ng is a formant synthesizer: robotic, but clear and, as used here, fully
deterministic (each sentence gets a freshly loaded library, see _load_espeak),
so a test can expect the same samples every time.

    >>> wave = synthesize("the cat sat on the mat")   # (T,) float32, 16 kHz
"""

import _ctypes
import ctypes
import functools
import threading

import numpy as np
import torch
import torchaudio

from mmcourse.packaged.pins import INSTALL_HINT

# Constants from espeak-ng's speak_lib.h.
AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_Synth returns after the callback saw every sample
espeakINITIALIZE_DONT_EXIT = 0x8000  # report errors instead of calling exit()
espeakCHARS_UTF8 = 1
POS_CHARACTER = 1
espeakRATE = 1  # words per minute, 80..450
espeakPITCH = 3  # 0..100
EE_OK = 0

# The callback espeak calls with each chunk of audio: (short *wav, int n, espeak_EVENT *events).
# It returns 0 to continue synthesis. wav is NULL at the end.
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakUnavailable(RuntimeError):
    """espeak-ng (from the `espeakng-loader` pip package) cannot be loaded."""


_lock = threading.Lock()  # espeak has global state: one sentence at a time
_chunks = []  # int16 chunks (bytes) of the sentence being synthesised


@_SYNTH_CALLBACK
def _collect(wav, num_samples, events):
    """espeak -> Python: copy one chunk of int16 samples."""
    if wav and num_samples > 0:
        _chunks.append(ctypes.string_at(wav, num_samples * 2))
    return 0


def _paths():
    """(library file, voice data folder) from the `espeakng-loader` pip package."""
    try:
        import espeakng_loader
    except ImportError as e:
        raise EspeakUnavailable(
            "Text to speech needs the `espeakng-loader` pip package (the espeak-ng library and voices). "
            f"Install it with: {INSTALL_HINT}"
        ) from e
    try:
        return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    except RuntimeError as e:  # its voice data folder is missing
        raise EspeakUnavailable(f"{e}. Reinstall with: {INSTALL_HINT}") from e


def _load_espeak():
    """dlopen libespeak-ng and initialise it. Returns (lib, native_rate in Hz).

    Why load it afresh for every sentence? espeak-ng keeps a hidden counter
    between sentences (the phase of its pitch "flutter", a static variable in
    wavegen.c that espeak_Terminate does not reset), so the second time you
    speak a sentence the samples differ slightly from the first. A freshly
    loaded library starts from the same state every time; loading, initialising
    and unloading costs about 4 ms.
    """
    library_path, data_path = _paths()
    try:
        lib = ctypes.CDLL(library_path)
    except OSError as e:
        raise EspeakUnavailable(
            f"Could not load {library_path} ({e}). Reinstall with: pip install --force-reinstall "
            f"espeakng-loader, or {INSTALL_HINT}"
        ) from e

    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Terminate.restype = ctypes.c_int

    # buffer length 0 = default; the path may be the espeak-ng-data folder itself.
    native_rate = lib.espeak_Initialize(
        AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), espeakINITIALIZE_DONT_EXIT
    )
    if native_rate <= 0:
        _unload_espeak(lib)
        raise EspeakUnavailable(
            f"espeak_Initialize failed (returned {native_rate}) with voice data at {data_path}. "
            f"Reinstall with: pip install --force-reinstall espeakng-loader, or {INSTALL_HINT}"
        )
    lib.espeak_SetSynthCallback(_collect)
    return lib, native_rate


def _unload_espeak(lib):
    """espeak_Terminate, then dlclose so that the next dlopen starts from fresh static state."""
    lib.espeak_Terminate()
    if hasattr(_ctypes, "dlclose"):  # POSIX; elsewhere the library simply stays loaded
        _ctypes.dlclose(lib._handle)


def espeak_available() -> bool:
    """True when espeak-ng can be loaded and initialised. Never raises."""
    try:
        with _lock:
            _unload_espeak(_load_espeak()[0])
        return True
    except Exception:
        return False


def native_sample_rate() -> int:
    """espeak-ng's own output rate in Hz (22050 for its standard voices)."""
    with _lock:
        lib, native_rate = _load_espeak()
        _unload_espeak(lib)
    return native_rate


def _speak_int16(text: str, voice: str, rate: int, pitch: int):
    """Run espeak-ng on one text. Returns (int16 numpy array (T_native,), native_rate)."""
    encoded = text.encode("utf-8") + b"\0"
    with _lock:
        lib, native_rate = _load_espeak()
        try:
            if lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
                raise ValueError(f"espeak-ng has no voice {voice!r}; use e.g. voice='en-us' or voice='en'.")
            lib.espeak_SetParameter(espeakRATE, rate, 0)
            lib.espeak_SetParameter(espeakPITCH, pitch, 0)
            _chunks.clear()
            status = lib.espeak_Synth(encoded, len(encoded), 0, POS_CHARACTER, 0, espeakCHARS_UTF8, None, None)
            samples = np.frombuffer(b"".join(_chunks), dtype=np.int16).copy()
            _chunks.clear()
        finally:
            _unload_espeak(lib)
    if status != EE_OK:
        raise RuntimeError(f"espeak_Synth failed with status {status} for text {text!r}.")
    return samples, native_rate


@functools.lru_cache(maxsize=8)
def _resampler(orig_rate: int, new_rate: int):
    """torchaudio's sinc resampler; the module builds its filter kernel once (4x faster on short clips)."""
    return torchaudio.transforms.Resample(orig_rate, new_rate)


def trim_silence(wave: torch.Tensor, threshold: float = 1e-3) -> torch.Tensor:
    """Drop leading and trailing samples with |x| < threshold. wave: (T,) -> (T',)."""
    loud = (wave.abs() >= threshold).nonzero()
    if len(loud) == 0:
        return wave[:0]
    return wave[loud[0, 0] : loud[-1, 0] + 1]


def synthesize(
    text: str,
    sample_rate: int = 16000,
    voice: str = "en-us",
    rate: int = 175,
    pitch: int = 50,
) -> torch.Tensor:
    """Speak `text` with espeak-ng. Returns a mono waveform (T,), float32 in [-1, 1].

    sample_rate: output rate in Hz (16000 is what Whisper expects); espeak's native
        22050 Hz output is resampled with torchaudio.transforms.Resample
        (the same windowed-sinc filter as torchaudio.functional.resample).
    voice: an espeak-ng voice name ("en-us", "en", "en-gb-x-rp", ...).
    rate: speaking rate in words per minute (80..450).
    pitch: base pitch, 0..100.

    Silence: leading and trailing samples quieter than 1e-3 are trimmed, so the
    waveform starts and ends with speech (espeak adds a short pause at the end).
    Deterministic: the same arguments give identical samples.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"synthesize() needs some words to speak, got {text!r}; pass a non-empty string.")
    if not 80 <= rate <= 450:
        raise ValueError(f"rate={rate} words per minute is outside espeak's range; use 80..450 (175 is normal).")
    if not 0 <= pitch <= 100:
        raise ValueError(f"pitch={pitch} is outside 0..100; 50 is normal.")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}; Whisper uses 16000.")

    samples, native_rate = _speak_int16(text, voice, rate, pitch)
    wave = torch.from_numpy(samples.astype(np.float32) / 32768.0)  # (T_native,)
    wave = trim_silence(wave)
    if sample_rate != native_rate:
        wave = _resampler(native_rate, sample_rate)(wave)
    return wave.clamp(-1.0, 1.0).contiguous()
