"""The grader (`mmcourse.classroom`: scheduler, worker, execute, sandbox) on a small synthetic assignment (no torch: fast).

The hostile corpus on the real notebook 01 is in test_hostile.py.
"""

from __future__ import annotations

import ast
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mmcourse import classroom
from mmcourse.classroom import execute, sandbox, scheduler, worker
from tests.conftest import nbgrader_metadata

NAME = "99_demo"


def demo_source() -> nbformat.NotebookNode:
    """Two exercises of 2 points each; the tests read only the learner's functions."""
    cells = [
        new_markdown_cell("# 99 demo", id="nb99-md", metadata=nbgrader_metadata(locked=True, grade_id="nb99_md")),
        new_code_cell("def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION",
                      id="nb99-square", metadata=nbgrader_metadata(solution=True, grade_id="nb99_square")),
        new_code_cell("assert square(3) == 9, 'three squared is nine'\n### BEGIN HIDDEN TESTS\n"
                      "assert square(-4) == 16, 'hidden square'\n### END HIDDEN TESTS", id="nb99-square-test",
                      metadata=nbgrader_metadata(grade=True, locked=True, points=2, grade_id="nb99_square_test")),
        new_code_cell("def cube(x):\n    ### BEGIN SOLUTION\n    return x ** 3\n    ### END SOLUTION",
                      id="nb99-cube", metadata=nbgrader_metadata(solution=True, grade_id="nb99_cube")),
        new_code_cell("assert cube(2) == 8, 'two cubed is eight'\n### BEGIN HIDDEN TESTS\n"
                      "assert cube(-3) == -27, 'hidden cube'\n### END HIDDEN TESTS", id="nb99-cube-test",
                      metadata=nbgrader_metadata(grade=True, locked=True, points=2, grade_id="nb99_cube_test")),
    ]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def submission(square: str = "return x * x", cube: str = "return x ** 3") -> nbformat.NotebookNode:
    nb = classroom.perfect_submission(demo_source(), demo_source())
    nb.cells[1].source = "def square(x):\n    " + square.replace("\n", "\n    ")
    nb.cells[3].source = "def cube(x):\n    " + cube.replace("\n", "\n    ")
    return nb


def demo_course(root):
    """A course folder at `root` with the repository's nbgrader_config.py and the demo's source (not generated)."""
    root.mkdir()
    (root / "nbgrader_config.py").write_text((classroom.repo_root() / "nbgrader_config.py").read_text())
    path = classroom.notebook_path(root, "solutions", NAME)
    path.parent.mkdir(parents=True)
    nbformat.write(demo_source(), path)
    return root


@pytest.fixture
def course(tmp_path):
    root = demo_course(tmp_path / "class")
    assert classroom.open_course(root).generate_assignment(NAME)["success"]
    return root


def grade(root, **kwargs):
    kwargs.setdefault("limits", worker.Limits(wall_seconds=60, cell_seconds=10, memory_gb=4))
    return {row["student"]: row for row in scheduler.grade_class(root, NAME, log=lambda line: None, **kwargs)}


def read_csv(root):
    with open(root / "grades" / f"{NAME}.csv") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def test_grades_partial_work_and_a_dying_kernel(course):
    classroom.submit(course, NAME, "perfect", submission())
    classroom.submit(course, NAME, "half", submission(cube="return x * x * abs(x)"))  # wrong for negatives
    classroom.submit(course, NAME, "dies", submission(cube="import os\nos._exit(1)"))  # dies in the cube test
    rows = grade(course, jobs=2)
    assert {s: (r["score"], r["status"]) for s, r in rows.items()} == {
        "perfect": (4.0, "ok"), "half": (2.0, "ok"), "dies": (2.0, "kernel_died")}
    assert "exited with status 1" in rows["dies"]["reason"]
    assert scheduler.exit_status(list(rows.values())) == 1
    on_disk = read_csv(course)
    assert on_disk["dies"]["score"] == "2.0" and on_disk["dies"]["status"] == "kernel_died"
    assert float(on_disk["perfect"]["kernel_peak_mib"]) > 10
    api = classroom.open_course(course)
    assert classroom.scores(api, NAME, "half")["total"] == (2.0, 4.0)
    graded = nbformat.read(classroom.notebook_path(course, "autograded", NAME, "dies"), as_version=4)
    errors = [o.ename for c in graded.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert "NotRun" in errors or "DeadKernelError" in errors, "the cells after the death must be marked failed"
    assert not any("mmcourse_guard" in c.metadata for c in graded.cells), "guard cells must be removed"


def test_a_worker_that_hangs_is_killed_and_earlier_grades_stay(course, monkeypatch):
    classroom.submit(course, NAME, "a_first", submission())
    grade(course, jobs=1)
    classroom.submit(course, NAME, "b_hangs", submission())
    real = worker.grade_submission

    def hang_for_b(job):
        if job.student == "b_hangs":
            time.sleep(3600)  # a stuck worker (e.g. an unkillable kernel): only the scheduler can end it
        return real(job)

    monkeypatch.setattr(worker, "grade_submission", hang_for_b)
    monkeypatch.setattr(scheduler, "HARD_KILL_GRACE", 1)
    rows = grade(course, jobs=2, limits=worker.Limits(wall_seconds=15, cell_seconds=10, memory_gb=4))
    assert rows["b_hangs"]["status"] == "killed" and rows["b_hangs"]["score"] == 0
    assert "a_first" not in rows, "a_first's hand-in is unchanged since its grade: the run resumes past it"
    on_disk = read_csv(course)
    assert (on_disk["a_first"]["status"], on_disk["a_first"]["score"]) == ("ok", "4.0")
    assert (on_disk["b_hangs"]["status"], on_disk["b_hangs"]["score"]) == ("killed", "0.0")
    api = classroom.open_course(course)
    assert classroom.scores(api, NAME, "a_first")["total"] == (4.0, 4.0)


def _grader(course, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    return subprocess.Popen([sys.executable, "-m", "mmcourse.classroom.cli", "grade", NAME, "--course", str(course),
                             "--memory-gb", "4", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)


def _grades_in_gradebook(course):
    from nbgrader.api import Gradebook

    api = classroom.open_course(course)
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(NAME)}


def test_a_grader_killed_half_way_loses_nothing_and_the_rerun_resumes(course):
    """SIGKILL (an OOM kill, a reboot) while the second of three hand-ins is graded: the first grade is kept in the
    gradebook and the CSV, the worker dies with the grader, and a rerun grades only the two that have no grade."""
    classroom.submit(course, NAME, "a", submission())
    classroom.submit(course, NAME, "b", submission(cube="import time\ntime.sleep(8)\nreturn x ** 3"))
    classroom.submit(course, NAME, "c", submission())
    run = _grader(course, "--jobs", "1")
    seen = []
    for line in run.stdout:
        seen.append(line)
        if line.startswith("[1/3]"):
            break
    time.sleep(2)  # b's kernel is running its cells
    run.kill()
    run.wait()
    assert any(line.startswith("[1/3] a ") for line in seen), "".join(seen)
    assert _grades_in_gradebook(course) == {"a": 4.0}
    assert {s: r["score"] for s, r in read_csv(course).items()} == {"a": "4.0"}, "the CSV has every grade, no more"
    time.sleep(2)  # the kernel's SIGKILL for the worker (PR_SET_PDEATHSIG) is immediate; its kernel follows
    stale = [p.parent for p in Path(sandbox.RUN_DIR_PARENT).glob("mmcourse-grade-*/grader.pid")
             if p.read_text() == str(run.pid)]
    assert len(stale) == 1

    rerun = _grader(course, "--jobs", "2")
    out = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, out
    assert "resuming: 1 of 3 hand-ins were graded before and are unchanged" in out
    assert "graded 2 submissions: 2 ok" in out
    assert not stale[0].exists(), "the dead grader's run folder is removed by the next run"
    assert _grades_in_gradebook(course) == {"a": 4.0, "b": 4.0, "c": 4.0}
    assert {s: (r["score"], r["status"]) for s, r in read_csv(course).items()} == {
        s: ("4.0", "ok") for s in "abc"}

    classroom.submit(course, NAME, "c", submission(cube="return x * x * abs(x)"))  # c hands in again: wrong now
    again = _grader(course, "--jobs", "2")
    out = again.communicate(timeout=300)[0]
    assert "resuming: 2 of 3" in out and "graded 1 submissions: 1 ok" in out, out
    assert _grades_in_gradebook(course) == {"a": 4.0, "b": 4.0, "c": 2.0}
    everything = _grader(course, "--jobs", "2", "--regrade")
    out = everything.communicate(timeout=300)[0]
    assert "resuming" not in out and "graded 3 submissions: 3 ok" in out, out


def test_cells_are_limited_by_cpu_time_so_a_busy_machine_accuses_no_one(course):
    """A busy machine: CPU burners beside the grader, and the honest kernel itself gets no CPU at all for 8 s (it is
    stopped, as a kernel starved by other work is; a helper process continues it). Its test cell takes longer than
    the 6 s limit in wall-clock time but uses about 1 s of CPU: `ok`. On the quiet machine, a spinning cell is stopped
    by CPU time and a sleeping one by the wall-clock bound (3 × 6 s)."""
    starved = ("import os, signal, subprocess, time\n"
               "subprocess.Popen(['sh', '-c', f'sleep 4; kill -CONT {os.getpid()}'])\n"
               "os.kill(os.getpid(), signal.SIGSTOP)\n"
               "end = time.process_time() + 0.5\n"
               "while time.process_time() < end:\n"
               "    pass\n"
               "return x ** 3")
    classroom.submit(course, NAME, "honest", submission(cube=starved))
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)  # own autogroups
               for _ in range(2)]
    try:
        rows = grade(course, jobs=2, limits=worker.Limits(wall_seconds=120, cell_seconds=6, memory_gb=4))
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert (rows["honest"]["status"], rows["honest"]["score"]) == ("ok", 4.0), rows["honest"]["reason"]
    graded = nbformat.read(classroom.notebook_path(course, "autograded", NAME, "honest"), as_version=4)
    timing = graded.cells[4].metadata["execution"]  # the cube test: it calls cube(2) and cube(-3)
    from datetime import datetime

    wall = (datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00")) -
            datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))).total_seconds()
    assert wall > 6, f"the starved kernel's test cell should have taken over 6 s of wall clock ({wall:.1f} s)"
    assert wall < 18, "the wall-clock bound is 3 × the CPU-time limit"
    classroom.submit(course, NAME, "spinner", submission(cube="while True:\n    pass"))
    classroom.submit(course, NAME, "sleeper", submission(cube="import time\ntime.sleep(3600)"))
    rows = grade(course, jobs=1, limits=worker.Limits(wall_seconds=120, cell_seconds=6, memory_gb=4))
    assert (rows["spinner"]["status"], rows["spinner"]["score"]) == ("timeout", 2.0)
    assert "nb99_cube_test used more than the 6 s of CPU time allowed per cell" in rows["spinner"]["reason"]
    assert (rows["sleeper"]["status"], rows["sleeper"]["score"]) == ("timeout", 2.0)
    assert "18 s, the wall-clock bound per cell" in rows["sleeper"]["reason"]


def test_wall_clock_limit_keeps_the_points_earned_so_far(course):
    classroom.submit(course, NAME, "slow", submission(cube="import time\ntime.sleep(3600)"))
    rows = grade(course, limits=worker.Limits(wall_seconds=25, cell_seconds=None, memory_gb=4))
    assert rows["slow"]["status"] == "timeout"
    assert rows["slow"]["score"] == 2.0, "square's test ran before the cell that hung"


def test_refuses_unknown_assignment_and_students(course):
    with pytest.raises(ValueError, match="generate_assignment"):
        scheduler.grade_class(course, "98_nothing", log=lambda line: None)
    with pytest.raises(ValueError, match="no submission"):
        scheduler.grade_class(course, NAME, students=["ghost"], log=lambda line: None)
    with pytest.raises(ValueError, match="jobs"):
        scheduler.grade_class(course, NAME, jobs=0, log=lambda line: None)


def test_import_bindings_and_names_read():
    nb = new_notebook(cells=[new_code_cell("import torch\nimport numpy as np\nfrom mmcourse.grading import check_close as cc\n"
                                           "from os import path"),
                             new_code_cell("import secret_solution_helper", metadata=nbgrader_metadata(solution=True))])
    assert execute.import_bindings([nb]) == {"torch": "torch", "np": "numpy", "cc": "mmcourse.grading:check_close",
                                               "path": "os:path"}
    assert execute.names_read("x = f(torch.ones(3))\ncheck_close(x, y)") == ["check_close", "f", "torch", "x", "y"]
    assert "check_close" in execute.names_read("%time check_close(a, b)")  # magics: falls back to identifiers


def test_a_name_an_answer_defines_is_never_rebound():
    """Notebook 11 writes misalign_pairs as an exercise, tests it, then imports the package's: rebinding it before
    the test would grade the package's function instead of the student's."""
    answer = new_code_cell("def misalign_pairs(n):\n    raise NotImplementedError\nfrom random import choice as pick\n"
                           "rate: float = 0.5\nfor step in range(2):\n    pass\nwith open('f') as handle:\n    pass",
                           metadata=nbgrader_metadata(solution=True))
    later = new_code_cell("from mmcourse.data import misalign_pairs\nfrom random import choice as pick\n"
                          "from mmcourse.grading import check_close\nimport step, rate, handle")
    assert execute.import_bindings([new_notebook(cells=[answer, later])]) == {"check_close": "mmcourse.grading:check_close"}
    assert execute.top_level_names(ast.parse(answer.source)) == {"misalign_pairs", "pick", "rate", "step", "handle"}


# ---------------------------------------------------------------- the sandbox itself


SANDBOX_PROBE = """
import os, socket, resource
print("uid", os.getuid())
try:
    socket.create_connection(("127.0.0.1", 22), timeout=2)
    print("network open")
except OSError as err:
    print("network blocked", type(err).__name__)
try:
    print("secret readable" if "hidden tests" in open(SECRET).read() else "secret hidden")
except OSError:
    print("secret hidden")
print("pids", len([p for p in os.listdir("/proc") if p.isdigit()]))
print("as_limit", resource.getrlimit(resource.RLIMIT_AS)[0])
"""


@pytest.fixture
def open_tmp():
    """A temporary folder that the kernel user can reach (pytest's own is closed to others)."""
    import shutil
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="mmcourse-test-", dir=sandbox.RUN_DIR_PARENT))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_sandboxed_kernel_has_no_network_no_secrets_and_a_memory_limit(open_tmp):
    from nbclient import NotebookClient

    tmp_path = open_tmp
    secret = tmp_path / "gradebook.db"
    secret.write_text("hidden tests live here")
    secret.chmod(0o644)
    plan = sandbox.plan_sandbox(memory_gb=4, hide=[str(secret)])
    if not plan.namespaces:
        if os.environ.get("MMCOURSE_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"no sandbox here: {plan.notes}")
        pytest.skip(f"no namespaces here: {plan.notes}")
    sandbox.SandboxKernelManager.plan, sandbox.SandboxKernelManager.folder = plan, tmp_path
    sandbox.SandboxKernelManager.course_root = tmp_path
    nb = new_notebook(cells=[new_code_cell(SANDBOX_PROBE.replace("SECRET", repr(str(secret))))])
    NotebookClient(nb, timeout=60, kernel_name="python3", kernel_manager_class=sandbox.SandboxKernelManager,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    out = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "network blocked" in out and "secret hidden" in out, out
    assert f"as_limit {4 * sandbox.GIB}" in out
    assert int(out.split("pids ")[1].split()[0]) <= 3, "the kernel sees the machine's other processes"
    if plan.uid is not None:
        assert "uid 65534" in out


def test_plan_without_isolation_says_so():
    plan = sandbox.plan_sandbox(memory_gb=2, isolate=False)
    assert not plan.namespaces and plan.uid is None and plan.memory_bytes == 2 * sandbox.GIB
    assert "network NOT isolated" in plan.describe() and plan.notes
    assert plan.wrap(["python", "-m", "ipykernel"])[0] != "unshare"


def test_kernel_env_drops_secrets(monkeypatch, tmp_path):
    monkeypatch.setenv("PGPASSWORD", "hunter2")
    monkeypatch.setenv("MMCOURSE_DEVICE", "cpu")
    env = sandbox.kernel_env(tmp_path)
    assert "PGPASSWORD" not in env and env["MMCOURSE_DEVICE"] == "cpu" and env["HOME"] == str(tmp_path)


def test_kernel_env_gives_each_kernel_one_thread(monkeypatch, tmp_path):
    """An honest notebook 01 took 142 s instead of 12 s (status timeout) when kernels inherited OMP_NUM_THREADS=2
    on a busy 2-core machine: graded kernels get one thread whatever the grader's environment says."""
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("MKL_NUM_THREADS", "8")
    env = sandbox.kernel_env(tmp_path)
    assert (env["OMP_NUM_THREADS"], env["MKL_NUM_THREADS"], env["OPENBLAS_NUM_THREADS"]) == ("1", "1", "1")
