"""Tests for mmcourse.packaged.espeak: espeak-ng through ctypes.

Tests that need the `packaged` extra (espeakng-loader) skip when it is missing,
unless MMCOURSE_REQUIRE_EXTRAS=1, in which case they fail.
"""

import importlib
import os
import sys
import time

import pytest
import torch

from mmcourse.packaged import espeak


@pytest.fixture(scope="module")
def needs_espeak():
    try:
        importlib.import_module("espeakng_loader")
    except ImportError:
        reason = f"`espeakng-loader` is not installed ({espeak.INSTALL_HINT})"
        if os.environ.get("MMCOURSE_REQUIRE_EXTRAS") == "1":
            pytest.fail(f"{reason}, and MMCOURSE_REQUIRE_EXTRAS=1 requires it")
        pytest.skip(reason)
    assert espeak.espeak_available()


def test_output_is_mono_float_in_range(needs_espeak):
    wave = espeak.synthesize("the cat sat on the mat")
    assert wave.dtype == torch.float32 and wave.dim() == 1
    assert 0.8 < len(wave) / 16000 < 3.0  # about 1.3 s of speech
    assert wave.abs().max() <= 1.0
    assert wave.pow(2).mean().sqrt() > 0.02  # not silence


def test_trim_silence():
    wave = torch.tensor([0.0, 0.0005, 0.2, -0.3, 0.0, 0.1, 0.0002, 0.0])
    assert torch.equal(espeak.trim_silence(wave), torch.tensor([0.2, -0.3, 0.0, 0.1]))
    assert len(espeak.trim_silence(torch.zeros(5))) == 0


def test_deterministic_even_after_other_sentences(needs_espeak):
    first = espeak.synthesize("please close the door")
    espeak.synthesize("something else in between, to move espeak's internal state")
    again = espeak.synthesize("please close the door")
    assert torch.equal(first, again)


def test_sample_rate(needs_espeak):
    assert espeak.native_sample_rate() == 22050
    native = espeak.synthesize("hello there", sample_rate=22050)
    low = espeak.synthesize("hello there", sample_rate=8000)
    default = espeak.synthesize("hello there")
    assert abs(len(default) / len(native) - 16000 / 22050) < 1e-3
    assert abs(len(low) / len(native) - 8000 / 22050) < 1e-3


def test_rate_changes_duration(needs_espeak):
    slow = espeak.synthesize("we are going to the park this afternoon", rate=120)
    fast = espeak.synthesize("we are going to the park this afternoon", rate=300)
    assert len(slow) > 1.5 * len(fast)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_rejected(text):
    with pytest.raises(ValueError, match="non-empty string"):
        espeak.synthesize(text)


@pytest.mark.parametrize(
    "kwargs, match", [({"rate": 10}, "80..450"), ({"pitch": 200}, "0..100"), ({"sample_rate": 0}, "16000")]
)
def test_bad_settings_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        espeak.synthesize("hello", **kwargs)


def test_unknown_voice(needs_espeak):
    with pytest.raises(ValueError, match="en-us"):
        espeak.synthesize("hello", voice="no-such-voice")


def test_missing_espeak_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # makes `import espeakng_loader` fail
    assert espeak.espeak_available() is False
    with pytest.raises(RuntimeError) as info:
        espeak.synthesize("hello")
    assert isinstance(info.value, espeak.EspeakUnavailable)
    assert 'pip install "mmcourse[packaged]"' in str(info.value)
    assert "espeakng-loader" in str(info.value)


def test_hundred_phrases_are_quick(needs_espeak):
    start = time.perf_counter()
    waves = [espeak.synthesize(f"this is short phrase {i}") for i in range(100)]
    elapsed = time.perf_counter() - start
    assert all(len(w) > 0 for w in waves)
    assert elapsed < 10.0, f"100 phrases took {elapsed:.1f} s"
