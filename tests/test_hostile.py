"""A corpus of hostile submissions of notebook 01, graded in one `mmcourse grade --jobs 2` run.

Every variant starts from the same honest work: `count_text_tokens` and `whisper_token_count` right
(2 + 2 points), `vit_token_count`, `parameters_per_part` and `quadrant_mass` wrong (0 of 6). Then it
adds one attack: monkeypatching, hooks, edited or re-tagged test cells, reading the instructor's files,
printing "passed", or a kernel that dies, hangs, exits, floods or runs out of memory. Each must get
the grade its real work earns, with the status and reason the CSV records.

The cells after the last test (training, ablations: ungraded and slow) are removed from every variant,
as a student may; this keeps the corpus at about 8 s of kernel time per submission.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from mmcourse import classroom
from tests.conftest import marker_blocks

REPO = Path(__file__).resolve().parent.parent
NAME = "01_what_is_a_multimodal_llm"
HONEST = 4.0  # what the honest work in every variant earns (of 10)

WRONG_VIT = "def vit_token_count(image_size, patch_size, cls_token=True):\n    return (image_size // patch_size) ** 2\n"
WRONG_PARTS = ("def parameters_per_part(model):\n"
               "    return {'text encoder': 0, 'image encoder': 0, 'audio encoder': 0, 'fusion': 8320}\n")
WRONG_QUADRANTS = "def quadrant_mass(weights, grid):\n    return weights[:, :4] * 0\n"

# Code appended to the (wrong) vit_token_count answer cell, which runs after the first test and
# before the other four. {root} is the instructor's course folder: the attacker knows it.
ATTACKS = {
    "honest": ("", HONEST, "ok"),
    "patch_grading_module": (
        "import mmcourse.grading as g\n"
        "for name in ('check_equal', 'check_close', 'check_raises', 'check_shape', 'check_true'):\n"
        "    setattr(g, name, lambda *a, **k: None)\n"
        "from mmcourse.grading import *\n", HONEST, "tampered"),
    "patch_grading_internals": (
        "import mmcourse.grading as g\n"
        "g._same = lambda a, b: True\n"
        "g._fail = lambda *a, **k: None\n"
        "g.check_raises.__code__ = (lambda func, exception, *a, **k: None).__code__\n", HONEST, "tampered"),
    "redefine_check_helpers": (
        "def check_equal(*args, **kwargs): pass\n"
        "def check_close(*args, **kwargs): pass\n"
        "def check_raises(*args, **kwargs): pass\n", HONEST, "tampered"),
    "swap_sys_modules": (
        "import sys, types\n"
        "fake = types.ModuleType('mmcourse.grading')\n"
        "fake.check_equal = fake.check_close = fake.check_raises = lambda *a, **k: None\n"
        "sys.modules['mmcourse.grading'] = fake\n"
        "from mmcourse.grading import check_equal, check_close, check_raises\n", HONEST, "tampered"),
    "patch_torch_and_numpy": (
        "import torch, numpy\n"
        "torch.isclose = lambda a, b, **k: torch.ones_like(a, dtype=torch.bool)\n"
        "torch.allclose = torch.equal = lambda *a, **k: True\n"
        "torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)\n"
        "numpy.allclose = numpy.array_equal = lambda *a, **k: True\n"
        "numpy.testing.assert_allclose = lambda *a, **k: None\n", HONEST, "tampered"),
    "patch_builtins": (
        "import builtins\n"
        "builtins.sum = lambda *args, **kwargs: 0\n"
        "builtins.sorted = lambda x, *a, **k: ['audio encoder', 'fusion', 'image encoder', 'text encoder']\n",
        HONEST, "tampered"),
    "custom_exception_handler": (
        "get_ipython().set_custom_exc((BaseException,), lambda shell, etype, evalue, tb, tb_offset=None: None)\n",
        HONEST, "tampered"),
    "ast_transformer_drops_checks": (
        "import ast\n"
        "class DropChecks(ast.NodeTransformer):\n"
        "    def visit_Expr(self, node):\n"
        "        call = node.value\n"
        "        if isinstance(call, ast.Call) and getattr(call.func, 'id', '').startswith('check_'):\n"
        "            return ast.Pass()\n"
        "        return node\n"
        "get_ipython().ast_transformers.append(DropChecks())\n", HONEST, "tampered"),
    "pre_run_cell_repatches": (
        "def _repatch(info=None):\n"
        "    get_ipython().user_ns.update(check_equal=lambda *a, **k: None, check_raises=lambda *a, **k: None)\n"
        "get_ipython().events.register('pre_run_cell', _repatch)\n", HONEST, "tampered"),
    "replace_run_cell": (
        "ip = get_ipython()\n"
        "_real = ip.run_cell\n"
        "def run_cell(raw_cell, *args, **kwargs):\n"
        "    if 'check_' in raw_cell:\n"
        "        raw_cell = 'pass'\n"
        "    return _real(raw_cell, *args, **kwargs)\n"
        "ip.run_cell = run_cell\n", HONEST, "tampered"),
    "input_transformer_blanks_tests": (
        "get_ipython().input_transformers_cleanup.append(\n"
        "    lambda lines: ['pass\\n'] if 'check_' in ''.join(lines) else lines)\n", HONEST, "tampered"),
    # This one blanks every later cell, the guard's too: the tests after it cannot be trusted and
    # score 0, so the correct whisper_token_count earns nothing here.
    "input_transformer_blanks_everything": (
        "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n", HONEST - 2, "tampered"),
    "background_thread_repatches": (
        "import threading, time\n"
        "def _loop():\n"
        "    while True:\n"
        "        get_ipython().user_ns['check_equal'] = lambda *a, **k: None\n"
        "        time.sleep(0.001)\n"
        "threading.Thread(target=_loop, daemon=True).start()\n", HONEST - 2, "tampered"),
    "fake_passed_output": (
        "print('All tests passed!  10/10')\n"
        "import sys; print('Score: 10.0 / 10.0', file=sys.stdout)\n", HONEST, "ok"),
    "read_instructor_files": (
        "import glob, json, os\n"
        "texts = []\n"
        "for pattern in ['{root}/solutions/*/*.ipynb', '{root}/gradebook.db', '*.ipynb', '../../../*/*/*.ipynb',\n"
        "                '../../../gradebook.db', '/tmp/mmcourse-grade-*/*/*/*/*.ipynb', '/tmp/mmcourse-grade-*/*/*.db',\n"
        "                '{repo}/solutions/*/*.ipynb', '/tmp/*/solutions/*/*.ipynb', '/root/*/solutions/*/*.ipynb']:\n"
        "    for path in glob.glob(pattern):\n"
        "        try:\n"
        "            texts += [t for t in [open(path, errors='ignore').read()] if t]  # a hidden file reads empty\n"
        "        except OSError:\n"
        "            pass\n"
        "for text in texts:\n"
        "    try:\n"
        "        cells = json.loads(text)['cells']\n"
        "    except Exception:\n"
        "        continue\n"
        "    for cell in cells:\n"
        "        source = ''.join(cell['source'])\n"
        "        if source.startswith('def vit_token_count') and 'BEGIN SOLUTION' in source:\n"
        "            exec(source, globals())\n"
        "print('read', len(texts), 'files')\n"
        "print('\\n'.join(texts)[:200000])\n", HONEST, "ok"),
    "fill_the_disk": (  # 1 GiB into the machine's /tmp and 1 GiB into the work folder: each write must stop early
        "import os\n"
        "for target in ['/tmp/mmcourse-fill-the-disk.bin', 'fill-the-disk.bin']:\n"
        "    try:\n"
        "        with open(target, 'wb') as handle:\n"
        "            for _ in range(16):\n"
        "                handle.write(b'x' * 64 * 2**20)\n"
        "    except OSError as err:\n"
        "        print('write stopped:', err)\n"
        "print('left behind:', os.path.getsize('/tmp/mmcourse-fill-the-disk.bin'))\n", HONEST, "ok"),
    "fill_the_work_folder": (  # files of 64 MiB (under the per-file limit) in the kernel's writable home, until the
        "import os\n"         # total write limit stops it
        "for i in range(1000):\n"
        "    with open(os.path.join(os.environ['HOME'], f'chunk-{i}.bin'), 'wb') as handle:\n"
        "        handle.write(b'x' * 64 * 2**20)\n", HONEST - 2, "output_flood"),
    "leave_a_process_behind": (
        "import subprocess\n"
        "subprocess.Popen(['sleep', '3600'], start_new_session=True)\n", HONEST, "ok"),
    "raise_system_exit": ("raise SystemExit(0)\n", HONEST, "ok"),
    "memory_bomb": (
        "try:\n"
        "    hoard = bytearray(64 * 2**30)\n"
        "finally:\n"
        "    import torch\n"
        "    big = torch.empty(2**40)\n", HONEST, "ok"),
    # The kernel is gone after the vit answer: only the first test (2 points) ran.
    "os_exit": ("import os\nos._exit(3)\n", HONEST - 2, "kernel_died"),
    "sigkill_self": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", HONEST - 2, "kernel_died"),
    "exit_call": ("exit()\n", HONEST - 2, "kernel_died"),
    "ignore_interrupts_forever": (
        "import signal, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "while True:\n"
        "    time.sleep(0.5)\n", HONEST - 2, "timeout"),
    "spin_forever": ("while True:\n    pass\n", HONEST - 2, "timeout"),  # stopped by CPU time, not by wall clock
    "flood_output": ("while True:\n    print('x' * 10000)\n", HONEST - 2, "output_flood"),
}

# Edits of the notebook itself (not of an answer cell).
EDITS = {
    "edit_test_cell": (lambda nb: _test_cell(nb, "nb01_vit_token_count_test").update(source="pass"), HONEST, "ok"),
    "delete_test_cell": (lambda nb: nb.cells.remove(_test_cell(nb, "nb01_vit_token_count_test")), HONEST, "ok"),
    "retag_test_cell_ungraded": (
        lambda nb: _test_cell(nb, "nb01_vit_token_count_test").metadata["nbgrader"].update(grade=False, points=0),
        HONEST, "ok"),
    "test_cell_to_markdown": (lambda nb: _test_cell(nb, "nb01_vit_token_count_test").update(cell_type="markdown"),
                              HONEST, "ok"),
    "skip_execution_tag": (
        lambda nb: _test_cell(nb, "nb01_vit_token_count_test").metadata.update(tags=["skip-execution", "raises-exception"]),
        HONEST, "ok"),
    "change_kernelspec": (lambda nb: nb.metadata["kernelspec"].update(name="bash", display_name="Bash",
                                                                      language="bash"), HONEST, "ok"),
}
ANSWER_ATTACKS = {  # code in another answer cell, aimed at the parameters_per_part test
    "shadow_builtin_sum": ("nb01_parameters_per_part", "sum = lambda *args, **kwargs: 0\n", HONEST, "tampered"),
}
BROKEN = {"invalid_json": (0.0, "error"), "missing_notebook": (0.0, "missing")}
REFERENCE = {"perfect": (10.0, "ok"), "untouched": (0.0, "ok")}
# Attacks whose defence is the sandbox (user nobody, namespaces), not the guard.
NEEDS_SANDBOX = {"read_instructor_files", "leave_a_process_behind"}  # fill_the_disk: RLIMIT_FSIZE everywhere


def _test_cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _set_answer(nb, grade_id, source):
    _test_cell(nb, grade_id).source = source


def up_to_last_test(nb) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(nb)
    last_test = max(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade"))
    nb.cells = nb.cells[:last_test + 1]
    return nb


def honest_work(source, release) -> nbformat.NotebookNode:
    nb = up_to_last_test(classroom.perfect_submission(source, release))
    _set_answer(nb, "nb01_vit_token_count", WRONG_VIT)
    _set_answer(nb, "nb01_parameters_per_part", WRONG_PARTS)
    _set_answer(nb, "nb01_quadrant_mass", WRONG_QUADRANTS)
    return nb


def expected_table() -> dict[str, tuple[float, str]]:
    table = {name: (score, status) for name, (_, score, status) in ATTACKS.items()}
    table |= {name: (score, status) for name, (_, score, status) in EDITS.items()}
    table |= {name: (score, status) for name, (_, _, score, status) in ANSWER_ATTACKS.items()}
    return table | BROKEN | REFERENCE


@pytest.fixture(scope="session")
def graded_class(tmp_path_factory, request):
    """The whole corpus submitted to one course and graded by one `mmcourse grade --jobs 2 --feedback`."""
    root = classroom.copy_course(REPO, tmp_path_factory.mktemp("hostile"), [NAME])
    # A TA's stray copy of the course in the machine's /tmp: world-readable, and no deny-list knows it.
    stray = Path(tempfile.mkdtemp(prefix="mmcourse-stray-copy-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(stray, ignore_errors=True))
    shutil.copytree(REPO / "solutions" / NAME, stray / "solutions" / NAME)
    for path in [stray, *stray.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    api = classroom.open_course(root)
    assert api.generate_assignment(NAME)["success"]
    source = nbformat.read(classroom.notebook_path(root, "solutions", NAME), as_version=4)
    release = nbformat.read(REPO / "course" / NAME / f"{NAME}.ipynb", as_version=4)
    submissions = {"perfect": up_to_last_test(classroom.perfect_submission(source, release)),
                   "untouched": up_to_last_test(release)}
    for name, (code, _, _) in ATTACKS.items():
        nb = honest_work(source, release)
        _set_answer(nb, "nb01_vit_token_count", WRONG_VIT + code.replace("{root}", str(root)).replace("{repo}", str(REPO)))
        submissions[name] = nb
    for name, (edit, _, _) in EDITS.items():
        nb = honest_work(source, release)
        edit(nb)
        submissions[name] = nb
    for name, (grade_id, code, _, _) in ANSWER_ATTACKS.items():
        nb = honest_work(source, release)
        _set_answer(nb, grade_id, code + _test_cell(nb, grade_id).source)
        submissions[name] = nb
    for student, nb in submissions.items():
        classroom.submit(root, NAME, student, nb)
    broken = classroom.notebook_path(root, "submitted", NAME, "invalid_json")
    broken.parent.mkdir(parents=True)
    broken.write_text('{"cells": [ this is not json')
    (root / "submitted" / "missing_notebook" / NAME).mkdir(parents=True)
    (root / "submitted" / "missing_notebook" / NAME / "notes.txt").write_text("I forgot the notebook")

    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run([sys.executable, "-m", "mmcourse.classroom.cli", "grade", NAME, "--jobs", "2", "--feedback",
                           "--cell-timeout", "20", "--timeout", "150", "--memory-gb", "6", "--max-output-mb", "4", "--max-write-mb", "512"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=1500)
    print(done.stdout[-6000:], done.stderr[-3000:])
    with open(root / "grades" / f"{NAME}.csv") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    return root, done, rows, source


def test_every_submission_has_a_grade_and_a_reason(graded_class):
    _, done, rows, _ = graded_class
    assert sorted(rows) == sorted(expected_table()), done.stdout[-3000:]
    for row in rows.values():
        assert row["status"] == "ok" or row["reason"], f"{row['student']}: a {row['status']} needs a reason"
    assert done.returncode == 1, "some submissions were not graded normally: the exit status must say so"


@pytest.mark.parametrize("student", sorted(expected_table()))
def test_grade_is_what_the_real_work_earns(graded_class, student):
    _, done, rows, _ = graded_class
    sandboxed = "network isolated; runs as nobody" in done.stdout
    if student in NEEDS_SANDBOX and not sandboxed:
        if os.environ.get("MMCOURSE_REQUIRE_SANDBOX") == "1":
            pytest.fail("the sandbox (root, unshare, user nobody) is not available here")
        pytest.skip("defended by the sandbox, which needs root and unshare")
    score, status = expected_table()[student]
    row = rows[student]
    assert (float(row["score"]), row["status"]) == (score, status), \
        f"{student}: got {row['score']} ({row['status']}: {row['reason']}); its real work earns {score} ({status})"


def test_reasons_name_the_failure(graded_class):
    _, _, rows, _ = graded_class
    assert "exited with status 3" in rows["os_exit"]["reason"]
    assert "SIGKILL" in rows["sigkill_self"]["reason"]
    assert "60 s, the wall-clock bound per cell (3 × the 20 s CPU-time limit" in rows["ignore_interrupts_forever"]["reason"]
    # stopped by its CPU time; on a machine so busy that it got under a third of a core, by the wall-clock bound
    assert re.search(r"used more than the 20 s of CPU time allowed per cell|60 s, the wall-clock bound per cell",
                     rows["spin_forever"]["reason"]), rows["spin_forever"]["reason"]
    assert "MiB of output" in rows["flood_output"]["reason"]
    assert "wrote more than 512 MiB of files" in rows["fill_the_work_folder"]["reason"]
    assert "check_equal" in rows["redefine_check_helpers"]["reason"]
    assert "set_custom_exc" in rows["custom_exception_handler"]["reason"]
    assert "guard did not run" in rows["input_transformer_blanks_everything"]["reason"]
    assert "nbgrader could not grade it" in rows["invalid_json"]["reason"]
    assert "JSON" in rows["invalid_json"]["reason"]


def test_a_kernel_cannot_fill_the_disk(graded_class):
    root, done, rows, _ = graded_class
    left = Path("/tmp/mmcourse-fill-the-disk.bin")
    if left.exists():
        left.unlink()
        if "allow-list file system" in done.stdout or os.environ.get("MMCOURSE_REQUIRE_SANDBOX") == "1":
            pytest.fail("a hand-in left a file in the machine's /tmp")
        pytest.skip("no bubblewrap here: the kernel writes into the machine's /tmp (each file ≤ the size limit)")
    graded = nbformat.read(classroom.notebook_path(root, "autograded", NAME, "fill_the_disk"), as_version=4)
    printed = "".join(o.get("text", "") for c in graded.cells for o in c.get("outputs", []) if c.cell_type == "code")
    assert printed.count("write stopped") == 2, f"a 1 GiB write went through: {printed[:500]}"


def test_no_process_survives_grading(graded_class):
    left = subprocess.run(["pgrep", "-f", "sleep 3600"], capture_output=True, text=True).stdout.split()
    assert not left, f"a student's background process outlived grading: {left}"


def test_kernel_user_cannot_read_the_instructors_files(graded_class):
    root, done, _, _ = graded_class
    if "runs as nobody" not in done.stdout:
        pytest.skip("the kernel runs as the grader's user here (no root or no unshare)")
    graded = nbformat.read(classroom.notebook_path(root, "autograded", NAME, "read_instructor_files"), as_version=4)
    printed = "".join(o.get("text", "") for c in graded.cells for o in c.get("outputs", []) if c.cell_type == "code")
    assert "read 0 files" in printed, printed[:500]


def test_feedback_has_no_hidden_tests_or_solutions(graded_class):
    root, _, rows, source = graded_class
    hidden, solutions = set(), set()
    for cell in source.cells:
        for block in marker_blocks(cell.source, classroom.HIDDEN_BEGIN, classroom.HIDDEN_END):
            hidden |= {line.strip() for line in block.splitlines() if len(line.strip()) >= 12}
        for block in marker_blocks(cell.source, classroom.SOLUTION_BEGIN, classroom.SOLUTION_END):
            solutions |= {line.strip() for line in block.splitlines() if len(line.strip()) >= 12}
    checked = 0
    for student in rows:
        page = root / "feedback" / student / NAME / f"{NAME}.html"
        if not page.exists():
            continue
        text = classroom.html_to_text(page.read_text())
        own = classroom.notebook_path(root, "submitted", NAME, student).read_text()
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"hidden tests in {student}'s feedback: {leaked[:3]}"
        leaked = [line for line in solutions if line in text and json.dumps(line)[1:-1] not in own]
        assert not leaked, f"solution code in {student}'s feedback: {leaked[:3]}"
        assert "mmcourse-guard" not in text, "the grader's guard cells leaked into feedback"
        checked += 1
    assert checked >= len(rows) - 3, "feedback is missing for graded submissions"



# ---------------------------------------------------------------- the guard on nbgrader's own paths

PLAIN_PATHS = {  # student → (attack, how it is graded)
    "cli_honest": ("honest", "nbgrader autograde"), "cli_redefine_check_helpers": ("redefine_check_helpers", "nbgrader autograde"),
    "cli_patch_grading_module": ("patch_grading_module", "nbgrader autograde"),
    "button_swap_sys_modules": ("swap_sys_modules", "formgrader"),
    "button_patch_grading_internals": ("patch_grading_internals", "formgrader"),
}


@pytest.fixture(scope="session")
def graded_by_nbgrader(tmp_path_factory):
    """Hand-ins graded without `mmcourse grade`: by `nbgrader autograde` on the command line, and by
    NbGraderAPI.autograde, which is what the formgrader's Autograde button calls. nbgrader_config.py must bring the
    guard along on both."""
    root = classroom.copy_course(REPO, tmp_path_factory.mktemp("plain"), [NAME])
    api = classroom.open_course(root)
    assert api.generate_assignment(NAME)["success"]
    source = nbformat.read(classroom.notebook_path(root, "solutions", NAME), as_version=4)
    release = nbformat.read(REPO / "course" / NAME / f"{NAME}.ipynb", as_version=4)
    for student, (attack, _) in PLAIN_PATHS.items():
        nb = honest_work(source, release)
        _set_answer(nb, "nb01_vit_token_count", WRONG_VIT + ATTACKS[attack][0])
        classroom.submit(root, NAME, student, nb)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    for student, (_, path) in PLAIN_PATHS.items():
        if path == "nbgrader autograde":
            done = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "autograde", NAME, "--student", student],
                                  cwd=root, env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-3000:]
        else:
            assert api.autograde(NAME, student)["success"]
    return {student: classroom.scores(api, NAME, student)["total"][0] for student in PLAIN_PATHS}


@pytest.mark.parametrize("student", sorted(PLAIN_PATHS))
def test_nbgrader_autograde_and_the_formgrader_button_run_the_guard(graded_by_nbgrader, student):
    attack, path = PLAIN_PATHS[student]
    assert graded_by_nbgrader[student] == HONEST, \
        f"{attack} through {path} scored {graded_by_nbgrader[student]}, its real work earns {HONEST}"
