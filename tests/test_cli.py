"""`mmcourse doctor`: a readable report, exit 0 when the course can run, a reason and exit 1 when not."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmcourse import cli, models


@pytest.fixture(autouse=True)
def fewer_samples(monkeypatch):
    """Time 100 dataset samples instead of 1000: the report is the same, the test is quicker."""
    monkeypatch.setattr(cli, "DOCTOR_SAMPLES", 100)


def test_doctor_reports_and_exits_zero(capsys):
    assert cli.main(["doctor"]) == 0
    out, err = capsys.readouterr()
    for expected in ("torch", "torchaudio", "transformers", "nbgrader", "device", "autocast",
                     "model tiers", "tiny", "speech:", "caption", "question", "answer",
                     "(3, 64, 64) uint8", "1000 samples", "text encoder", "image encoder", "audio encoder",
                     "(1, 65, 64)", "(1, 1500, 64)", "OK: the course can run here"):
        assert expected in out, f"{expected!r} missing from the doctor report:\n{out}"
    assert "problem" not in err


def test_doctor_json(capsys):
    assert cli.main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["problems"] == []
    assert report["tiers"]["tiny"] == "available"
    assert report["speech"] in ("espeak", "tones")
    assert report["dataset"]["image_shape"] == [3, 64, 64]
    assert report["tiny_models"]["image encoder"]["output_shape"] == [1, 65, 64]
    assert report["tiny_models"]["audio encoder"]["output_shape"] == [1, 1500, 64]


def test_a_broken_tiny_model_fails_with_a_reason(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated: ViT weights could not be built")

    monkeypatch.setattr(models, "load_image_encoder", broken)
    assert cli.main(["doctor"]) == 1
    out, err = capsys.readouterr()
    assert "NOT OK" in out
    assert "the tiny image encoder failed" in err and "simulated" in err


def test_a_broken_torchaudio_fails_with_a_reason(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torchaudio", None)  # `import torchaudio` now raises ImportError
    assert cli.main(["doctor", "--json"]) == 1
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["ok"] is False
    assert report["versions"]["torchaudio"].startswith("import failed:")
    assert "torchaudio cannot be imported" in err and "reinstall" in err


def test_a_bad_device_setting_fails_with_a_reason(monkeypatch, capsys):
    monkeypatch.setenv("MMCOURSE_DEVICE", "tpu")
    assert cli.main(["doctor"]) == 1
    assert "MMCOURSE_DEVICE" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "doctor" in capsys.readouterr().err


def test_console_script_doctor_json(tmp_path):
    script = Path(sys.executable).parent / "mmcourse"
    if not script.exists():
        pytest.skip(f"the console script is not installed next to {sys.executable} (pip install -e .)")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run([str(script), "doctor", "--json"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert report["dataset"]["seconds_per_1000"] > 0
