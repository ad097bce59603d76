"""`mmcourse doctor`: a readable report, exit 0 when the course can run, a reason and exit 1 when not."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmcourse import tiers
from mmcourse.classroom import cli


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

    monkeypatch.setattr(tiers, "load_image_encoder", broken)
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


def test_doctor_names_the_cjk_font(capsys):
    from tests.conftest import require_cjk_font

    fonts = require_cjk_font()
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "fonts" in out and fonts[0] in out and "no CJK font" not in out, out


def test_doctor_says_when_no_cjk_font_is_installed_and_how_to_install_one(monkeypatch, capsys):
    from mmcourse import viz

    monkeypatch.setattr(viz, "cjk_fonts", lambda: [])
    assert cli.main(["doctor"]) == 0, "a missing font is a warning: the course still runs"
    out = capsys.readouterr().out
    assert "CJK (中文)" in out and "none" in out
    assert "note: no CJK font is installed" in out
    for command in ("apt-get install fonts-noto-cjk", "dnf install google-noto-sans-cjk-fonts"):
        assert command in out, out


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


# ---------------------------------------------------------------- grade and validate (on a small demo assignment)


@pytest.fixture
def demo_course(tmp_path):
    from tests.test_autograde import NAME, demo_source, submission

    from mmcourse import classroom

    root = tmp_path / "class"
    path = classroom.notebook_path(root, "solutions", NAME)
    path.parent.mkdir(parents=True)
    (root / "nbgrader_config.py").write_text((classroom.repo_root() / "nbgrader_config.py").read_text())
    nbformat_write(demo_source(), path)
    assert classroom.open_course(root).generate_assignment(NAME)["success"]
    return root, NAME, submission


def nbformat_write(nb, path):
    import nbformat

    nbformat.write(nb, path)


def test_grade_exit_status_and_csv(demo_course, capsys):
    from mmcourse import classroom

    root, name, submission = demo_course
    classroom.submit(root, name, "alice", submission())
    classroom.submit(root, name, "bob", submission(square="return x + x"))
    csv_path = root / "out" / "grades.csv"
    assert cli.main(["grade", name, "--course", str(root), "--jobs", "2", "--csv", str(csv_path), "--memory-gb", "4"]) == 0
    out = capsys.readouterr().out
    assert "graded 2 submissions: 2 ok" in out
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("student,score,max_score,status,reason")
    assert lines[1].startswith("alice,4.0,4.0,ok") and lines[2].startswith("bob,2.0,4.0,ok")

    classroom.submit(root, name, "carol", submission(square="import os\nos._exit(0)"))
    assert cli.main(["grade", name, "--course", str(root), "--student", "carol", "--csv", str(csv_path),
                     "--memory-gb", "4"]) == 1
    captured = capsys.readouterr()
    assert "kernel_died" in captured.out and "not graded normally" in captured.err
    rows = csv_path.read_text().splitlines()[1:]
    assert [r.split(",")[:4] for r in rows] == [["alice", "4.0", "4.0", "ok"], ["bob", "2.0", "4.0", "ok"],
                                                ["carol", "0.0", "4.0", "kernel_died"]], \
        "grading one student rewrites the CSV from the gradebook: the others' rows stay"


def test_grade_unknown_assignment_is_a_usage_error(demo_course, capsys):
    root, _, _ = demo_course
    assert cli.main(["grade", "98_missing", "--course", str(root)]) == 2
    assert "generate_assignment" in capsys.readouterr().err


def test_validate_exit_status(demo_course, capsys):
    import nbformat

    from mmcourse import classroom

    root, name, submission = demo_course
    release = classroom.notebook_path(root, "release" if (root / "release").exists() else "course", name)
    assert cli.main(["validate", str(release)]) == 1, "the untouched release fails its tests"
    out = capsys.readouterr().out
    assert "FAILED" in out and "NotImplementedError" in out
    done = root / "done.ipynb"
    nbformat.write(submission(), done)
    assert cli.main(["validate", str(done)]) == 0
    assert "OK: every visible test" in capsys.readouterr().out
    wrong = root / "wrong.ipynb"
    nbformat.write(submission(square="return 3 * x"), wrong)
    assert cli.main(["validate", str(wrong)]) == 1
    out = capsys.readouterr().out
    assert "three squared is nine" in out
    # plain text when not on a terminal, and the failure named by its test cell, not by an execution count
    assert "\x1b[" not in out and "Cell In[" not in out, out
    assert "test cell nb99_square_test" in out and "nb99_cube_test" not in out, out
    assert cli.main(["validate", str(root / "nothing.ipynb")]) == 2


def test_quiz_is_wired_into_the_cli(capsys):
    from mmcourse.classroom import cli

    assert cli.main(["quiz", "--topics"]) == 0
    assert "vit" in capsys.readouterr().out


def test_exercise_names_come_from_the_heading_above(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    from tests.conftest import nbgrader_metadata

    nb = new_notebook(cells=[new_markdown_cell("### Exercise 4 — the top-p filter (3 points)\n\nWrite it."),
                             new_code_cell("def f(): pass", metadata=nbgrader_metadata(solution=True, grade_id="ex4")),
                             new_code_cell("assert f() is None", metadata=nbgrader_metadata(grade=True, points=3,
                                                                                            grade_id="ex4_test"))])
    nbformat.write(nb, tmp_path / "nb.ipynb")
    assert cli.exercise_names(tmp_path / "nb.ipynb") == {
        "assert f() is None": ("ex4_test", "Exercise 4 — the top-p filter (3 points)")}
