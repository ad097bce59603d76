"""Grade a whole class with nbgrader: in parallel, within limits, resisting tampering, losing nothing.

    mmcourse grade 01_what_is_a_multimodal_llm --jobs 2        (from the course folder)

What nbgrader alone does badly, and what this module does instead:

    one submission at a time         N workers, one process per submission (`--jobs N`)
    a kernel that dies, hangs,       every submission ends with a grade and a reason: the cells that
    exits or floods output gets      ran before the failure keep their points, every test cell that
    no grade ("Removing failed       could not run scores 0 (not full marks, as an empty output would)
    assignment") and leaves a
    stale one
    one failure can disturb the      each submission is graded in its own temporary course folder with
    gradebook                        its own gradebook; its grades are copied into the class gradebook
                                     only when its worker finished
    hidden tests run next to code    the kernel runs in a sandbox (mmcourse.sandbox: memory limit, no
    that can monkeypatch them        network, user `nobody`, course files hidden), and a guard
                                     (mmcourse.guard) undoes tampering before every test cell

The pieces, in order:
    GuardedExecute      nbgrader's Execute preprocessor with the guard cells, limits and failure handling
    grade_submission    one student, inside a worker process: temporary course → nbgrader autograde
    grade_class         the scheduler: workers, wall-clock limits, merging into the class gradebook, CSV
"""

from __future__ import annotations

import ast
import csv
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_code_cell, new_output
from nbgrader.preprocessors import Execute
from traitlets import Dict, Float, Integer

from mmcourse import classroom
from mmcourse.sandbox import RUN_DIR_PARENT, SandboxKernelManager, SandboxPlan, plan_sandbox

MIB = 1024**2
HARD_KILL_GRACE = 30  # seconds past the wall-clock limit before a worker that did not stop by itself is killed
GUARD_SOURCE = (Path(__file__).with_name("guard.py")).read_text()
CSV_COLUMNS = ("student", "score", "max_score", "status", "reason", "seconds", "worker_peak_mib", "kernel_peak_mib")
# Statuses; anything but "ok" makes `mmcourse grade` exit 1 so that an instructor looks at it.
OK, TAMPERED, KERNEL_DIED, TIMEOUT, OUTPUT_FLOOD, KILLED, ERROR, MISSING = (
    "ok", "tampered", "kernel_died", "timeout", "output_flood", "killed", "error", "missing")


def is_graded(cell) -> bool:
    return cell.cell_type == "code" and bool(cell.metadata.get("nbgrader", {}).get("grade"))


def fail_cell(cell, ename: str, evalue: str) -> None:
    """Record an error in a test cell: nbgrader gives 0 points to a test cell with an error output."""
    cell.setdefault("outputs", []).append(new_output("error", ename=ename, evalue=evalue,
                                                     traceback=[f"{ename}: {evalue}"]))


def names_read(source: str) -> list[str]:
    """The global names a cell reads (for the guard to rebind). Falls back to every identifier."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython syntax (magics): over-approximate
        return sorted(set(re.findall(r"\b[A-Za-z_]\w*\b", source)))
    return sorted({node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)})


def import_bindings(notebooks: list[nbformat.NotebookNode]) -> dict[str, str]:
    """What the instructor's notebooks import, as {name: 'module' or 'module:attribute'}.

    Only cells that are not solutions count: these are what a test cell may rely on.
    """
    bindings = {}
    for nb in notebooks:
        for cell in nb.cells:
            if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("solution"):
                continue
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.asname:
                            bindings[alias.asname] = alias.name
                        else:
                            top = alias.name.split(".")[0]
                            bindings[top] = top
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    for alias in node.names:
                        if alias.name != "*":
                            bindings[alias.asname or alias.name] = f"{node.module}:{alias.name}"
    return bindings


# ---------------------------------------------------------------- executing one notebook


class GuardedExecute(Execute):
    """nbgrader's Execute, hardened for grading (configured only by `mmcourse grade`, never in releases).

    - runs the kernel in the sandbox of `SandboxKernelManager.plan`;
    - injects the guard: a setup cell first, a check cell before every test cell (removed afterwards);
    - ends a cell that runs past `timeout` (or past `deadline`) by killing the kernel, without
      waiting for an interrupt the code may ignore; stops a notebook that prints more than
      `max_output_bytes`;
    - when the kernel is gone (died, exited, killed), marks every test cell that did not run as failed;
    - ignores cell tags (a `skip-execution` tag on a test cell must not skip it).
    The outcome is left in `GuardedExecute.report` for the worker.
    """

    deadline = Float(0.0, help="time.monotonic() by which the notebook must have finished (0: none)").tag(config=True)
    max_output_bytes = Integer(16 * MIB, help="stop the notebook when its cells print more than this").tag(config=True)
    bindings = Dict({}, help="{name: 'module[:attr]'} that the guard rebinds before test cells").tag(config=True)
    guard = Integer(1, help="inject the guard cells (0 to switch off)").tag(config=True)

    report: dict = {}  # status, reason, repaired — for the worker (one notebook per worker process)

    def preprocess(self, nb, resources=None, km=None):
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self.kernel_manager_class = SandboxKernelManager
        self.interrupt_on_timeout = False  # a loop can ignore SIGINT: kill instead
        self.skip_cells_with_tag = "mmcourse-never-" + secrets.token_hex(8)
        self.timeout_func = self._cell_timeout
        self.stopped = None  # (status, reason) once the kernel is gone
        self.output_bytes = 0
        self.flooded = False
        GuardedExecute.report = {"status": OK, "reason": "", "repaired": {}}
        injected = self._inject_guard(nb) if self.guard else {}
        self.labels = []  # how a reason names each cell: its grade_id, or its position in the submission
        for cell in nb.cells:
            if "mmcourse_guard" in cell.metadata:
                self.labels.append("the grader's guard cell")
            else:
                position = sum(1 for label in self.labels if label != "the grader's guard cell") + 1
                self.labels.append(cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {position}")
        try:
            with self.setup_kernel():
                info = self.wait_for_reply(self.kc.kernel_info())
                if info:
                    self.nb.metadata["language_info"] = info["content"]["language_info"]
                for index, cell in enumerate(self.nb.cells):
                    self.preprocess_cell(cell, resources, index)
        except Exception as err:  # the kernel did not start, or broke down in a way nbclient did not expect
            self._stop(ERROR, f"the kernel failed: {type(err).__name__}: {err}")
            for cell in self.nb.cells:
                if is_graded(cell) and not any(o.output_type == "error" for o in cell.get("outputs", [])):
                    fail_cell(cell, "GradingError", self.stopped[1])
        self._fold_guard(nb, injected)
        self.set_widgets_metadata()
        if self.stopped:
            GuardedExecute.report.update(status=self.stopped[0], reason=self.stopped[1])
        return self.nb, self.resources

    # -- limits and failures

    def _cell_timeout(self, cell) -> int:
        limit = self.timeout or 10**6
        if self.deadline:
            limit = min(limit, self.deadline - time.monotonic())
        return max(1, math.ceil(limit))

    def _stop(self, status: str, reason: str) -> None:
        if self.stopped is None:
            self.stopped = (status, reason)

    def _kill_kernel(self) -> None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def _exit_reason(self) -> str:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        code = process.poll() if process is not None else None
        if code is None:
            return "the kernel stopped answering"
        if code < 0 or code > 128:
            number = -code if code < 0 else code - 128
            name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
            return f"the kernel was killed by {name}"
        return f"the kernel exited with status {code} (exit(), quit() or os._exit() in the code?)"

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if self.stopped is None and self.deadline and time.monotonic() >= self.deadline:
            self._kill_kernel()
            self._stop(TIMEOUT, f"the submission used up its wall-clock limit before {self.labels[index]}")
        if self.stopped:
            if is_graded(cell):
                fail_cell(cell, "NotRun", f"this test did not run: {self.stopped[1]}")
            return cell, resources
        injected = cell.metadata.get("mmcourse_guard")
        try:
            cell = self.execute_cell(cell, index, store_history=not injected)
        except CellTimeoutError:
            self._kill_kernel()
            if self.deadline and time.monotonic() >= self.deadline - 1:
                self._stop(TIMEOUT, f"{self.labels[index]} was still running when the submission's wall-clock "
                                    f"limit ran out")
            else:
                self._stop(TIMEOUT, f"{self.labels[index]} ran longer than the {self.timeout} s limit per cell")
            fail_cell(cell, "CellTimeoutError", self.stopped[1])
        except DeadKernelError:
            if self.flooded:
                self._stop(OUTPUT_FLOOD, f"{self.labels[index]} printed more than "
                                         f"{self.max_output_bytes / MIB:g} MiB of output")
            else:
                self._stop(KERNEL_DIED, f"{self._exit_reason()} while running {self.labels[index]}")
            fail_cell(cell, "DeadKernelError", self.stopped[1])
        return cell, resources

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = len(content.get("text", "")) + sum(len(str(v)) for v in content.get("data", {}).values()) + \
            sum(len(line) for line in content.get("traceback", []))
        self.output_bytes += size
        if self.output_bytes > self.max_output_bytes:
            if not self.flooded:
                self.flooded = True
                self._kill_kernel()  # nbclient notices the dead kernel within a second
            return None
        return super().output(outs, msg, display_id, cell_index)

    # -- the guard

    def _inject_guard(self, nb) -> dict:
        """Insert the setup cell and a check cell before each test cell. → {check cell id: nonce}."""
        setup_nonce = secrets.token_hex(8)
        setup = ("def __mmcourse_guard_setup():\n"
                 "    namespace = {'__name__': 'mmcourse_guard'}\n"
                 f"    exec(compile({GUARD_SOURCE!r}, 'mmcourse/guard.py', 'exec'), namespace)\n"
                 f"    namespace['install']({setup_nonce!r}, {dict(self.bindings)!r})\n"
                 "__mmcourse_guard_setup(); del __mmcourse_guard_setup\n")
        cells = [new_code_cell(setup, metadata={"mmcourse_guard": setup_nonce})]
        for cell in nb.cells:
            if is_graded(cell):
                nonce = secrets.token_hex(8)
                names = json.dumps(names_read(cell.source)).encode().hex()  # no test names in the cell's text
                check = f"__import__('sys').modules['__mmcourse_guard__'].guard.check({nonce!r}, {names!r})\n"
                cells.append(new_code_cell(check, metadata={"mmcourse_guard": nonce}))
            cells.append(cell)
        nb.cells = cells
        return {c.id: c.metadata["mmcourse_guard"] for c in cells[1:] if "mmcourse_guard" in c.metadata} | \
            {cells[0].id: setup_nonce}

    def _fold_guard(self, nb, injected: dict) -> None:
        """Remove the guard cells; a check that did not print its nonce fails the test cell after it."""
        if not injected:
            return
        kept, pending_failure, setup_failed = [], None, None
        for cell in nb.cells:
            nonce = cell.metadata.get("mmcourse_guard")
            if nonce is None:
                if pending_failure and is_graded(cell):
                    if not any(o.output_type == "error" for o in cell.get("outputs", [])):
                        fail_cell(cell, "GradingGuardError", pending_failure)
                    pending_failure = None
                if setup_failed and is_graded(cell):
                    fail_cell(cell, "GradingGuardError", setup_failed)
                kept.append(cell)
                continue
            text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")
            errors = [f"{o.ename}: {o.evalue}" for o in cell.get("outputs", []) if o.output_type == "error"]
            is_setup = text.startswith(f"mmcourse-guard {nonce} ready") or cell.source.startswith("def __mmcourse_guard_setup")
            if is_setup:
                if f"mmcourse-guard {nonce} ready" not in text and not self.stopped:
                    setup_failed = "the grading guard could not start in the kernel: " + (errors[0] if errors else "no output")
                    self._stop(ERROR, setup_failed)
                continue
            match = re.search(rf"^mmcourse-guard {nonce} ok (.*)$", text, re.M)
            if match and not errors:
                repaired = json.loads(match.group(1))
                if repaired:
                    GuardedExecute.report["repaired"][len(kept)] = repaired
            elif not self.stopped:
                pending_failure = ("the grading guard before this test did not run "
                                   f"({errors[0] if errors else 'its output was missing'}); something in the notebook "
                                   "changes how cells run, so this test cannot be trusted")
                GuardedExecute.report["repaired"][len(kept)] = [
                    "guard did not run" + (f" ({errors[0][:200]})" if errors else "")]
        nb.cells = kept
        repaired = GuardedExecute.report["repaired"]
        if repaired and GuardedExecute.report["status"] == OK and not self.stopped:
            parts = []
            for index, items in repaired.items():
                grade_id = kept[index].metadata.get("nbgrader", {}).get("grade_id", f"cell {index}") if index < len(kept) else "?"
                parts.append(f"before {grade_id}: {', '.join(items[:6])}{' …' if len(items) > 6 else ''}")
            GuardedExecute.report.update(status=TAMPERED, reason="tampering undone " + "; ".join(parts))


# ---------------------------------------------------------------- one submission (in a worker process)


@dataclass
class Limits:
    """What one submission may use."""

    wall_seconds: float = 600  # the whole notebook, kernel start included
    cell_seconds: float | None = None  # None: Execute.timeout from nbgrader_config.py
    memory_gb: float | None = 8  # address space of the kernel (torch alone maps ≈ 3.3 GB)
    max_output_mb: float = 16
    isolate: bool = True  # namespaces and user `nobody` where the machine allows
    guard: bool = True


@dataclass
class Job:
    student: str
    assignment: str
    submitted: str  # the student's folder in the class course
    template: str  # a course folder with this assignment generated (its own gradebook)
    work: str  # this submission's private course folder
    run_dir: str  # the folder that holds every work folder (opened to the kernel user up to cwd)
    limits: Limits
    plan: SandboxPlan
    bindings: dict = field(default_factory=dict)


def normalize_submission(path: Path, release_path: Path) -> None:
    """Give every nbgrader cell of a submission back the metadata (and cell type) it has in the release.

    nbgrader restores the source of test cells itself, but a re-tagged cell (grade False, other points,
    a markdown test cell, a duplicated or invented grade_id) can make it fail or skip a test.
    """
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # not a notebook: nbgrader will say so
        return
    truth = {c.metadata["nbgrader"]["grade_id"]: c for c in nbformat.read(release_path, as_version=4).cells
             if "grade_id" in c.metadata.get("nbgrader", {})}
    seen = set()
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if "nbgrader" not in cell.metadata:
            continue
        if grade_id not in truth or grade_id in seen:
            del cell.metadata["nbgrader"]  # an invented or duplicated nbgrader cell is an ordinary cell
            continue
        seen.add(grade_id)
        cell.metadata["nbgrader"] = dict(truth[grade_id].metadata["nbgrader"])
        if cell.cell_type != truth[grade_id].cell_type:
            cell.cell_type = truth[grade_id].cell_type
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
            else:
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
    nbformat.write(nb, path)


def _result(job: Job, status: str, reason: str, **extra) -> dict:
    return {"student": job.student, "status": status, "reason": reason, "score": 0.0, "max_score": None,
            "seconds": 0.0, "worker_peak_mib": None, "kernel_peak_mib": None, "work": job.work, **extra}


def grade_submission(job: Job) -> dict:
    """Autograde one submission in its own course folder (runs inside the worker process)."""
    import resource

    from nbgrader.converters.autograde import Autograde

    start = time.monotonic()
    work = Path(job.work)
    shutil.copytree(job.template, work, symlinks=True)
    preprocessors = [GuardedExecute if p is Execute else p for p in Autograde.autograde_preprocessors.default()]
    overrides = {"CourseDirectory": {"db_url": f"sqlite:///{work / 'gradebook.db'}", "release_directory": "release"},
                 "Autograde": {"autograde_preprocessors": preprocessors},
                 "GuardedExecute": {"deadline": start + job.limits.wall_seconds - min(10, job.limits.wall_seconds / 5),
                                    "max_output_bytes": int(job.limits.max_output_mb * MIB),
                                    "bindings": job.bindings, "guard": int(job.limits.guard)}}
    if job.limits.cell_seconds:
        overrides["GuardedExecute"]["timeout"] = int(job.limits.cell_seconds)
    api = classroom.open_course(work, **overrides)
    course = api.coursedir
    handed_in = work / course.submitted_directory / job.student / job.assignment
    shutil.copytree(job.submitted, handed_in, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    notebooks = sorted((work / "release" / job.assignment).glob("*.ipynb"))
    missing = [p.name for p in notebooks if not (handed_in / p.name).is_file()]
    for release in notebooks:
        if (handed_in / release.name).is_file():
            normalize_submission(handed_in / release.name, release)

    # The kernel must not see this course's secrets either: the source, the gradebook, the submission
    # folder, the template, and nbgrader's copy of the notebook beside it (it holds the hidden tests).
    private = [work / course.source_directory, work / "gradebook.db", work / course.submitted_directory,
               Path(job.template)]
    private += [work / course.autograded_directory / job.student / job.assignment / p.name for p in notebooks]
    SandboxKernelManager.plan = replace(job.plan, hide=job.plan.hide + [str(p) for p in private]) \
        if job.plan.namespaces else job.plan
    SandboxKernelManager.folder = work
    SandboxKernelManager.course_root = Path(job.run_dir)

    if notebooks and len(missing) == len(notebooks):
        result = _result(job, MISSING, f"no {', '.join(missing)} in the submission")
    else:
        outcome = api.autograde(job.assignment, job.student)
        report = GuardedExecute.report
        if outcome["success"]:
            total = classroom.scores(api, job.assignment, job.student)["total"]
            status, reason = report.get("status", OK), report.get("reason", "")
            if missing:
                status, reason = MISSING, f"no {', '.join(missing)} in the submission (scored 0); " + reason
            result = _result(job, status, reason, score=total[0], max_score=total[1],
                             gradebook=str(work / "gradebook.db"))
        else:
            result = _result(job, ERROR, "nbgrader could not grade it: " + nbgrader_error(outcome))
    result["seconds"] = time.monotonic() - start
    result["worker_peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["kernel_peak_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


def nbgrader_error(outcome: dict) -> str:
    """The most telling line of a failed nbgrader run (its last line is a generic 'see the traceback')."""
    text = (outcome.get("error") or "") + "\n" + (outcome.get("log") or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    telling = [line for line in lines if re.match(r"[\w.]+(Error|Exception): ", line) and "NbGraderException" not in line]
    return (telling or lines or ["nbgrader failed without a message"])[-1][:300]


def _worker(job: Job, result_path: str) -> None:
    """The body of a worker process: its own process group (so it can be killed whole), private files."""
    from sqlalchemy.exc import SAWarning

    warnings.simplefilter("ignore", SAWarning)
    os.setsid()
    os.umask(0o077)
    try:
        result = grade_submission(job)
    except BaseException as err:  # noqa: BLE001 - whatever happens, the parent gets a reason
        import traceback

        traceback.print_exc()
        result = _result(job, ERROR, f"the grader failed: {type(err).__name__}: {err}")
    Path(result_path).write_text(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)


def kill_tree(pid: int) -> None:
    """SIGKILL a process, its process group and every descendant (kernels live in their own sessions)."""
    children: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    victims, todo = [], [pid]
    while todo:
        current = todo.pop()
        victims.append(current)
        todo += children.get(current, [])
    for victim in victims:
        for kill in (os.killpg, os.kill):
            try:
                kill(victim, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def kill_processes_of(folder: Path) -> None:
    """SIGKILL every process whose command line names `folder` (a run's kernels and their launchers).

    A kernel whose parent died is no longer below its worker in the process tree; its command line
    still names its connection file in the run's folder.
    """
    mark = str(folder).encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if mark in cmdline.read_bytes():
                kill_tree(int(cmdline.parent.name))
        except (OSError, ValueError):
            continue


# ---------------------------------------------------------------- the class


def submissions(api, assignment: str) -> list[str]:
    """Students with a folder for `assignment` in submitted/, sorted."""
    base = Path(api.coursedir.root) / api.coursedir.submitted_directory
    return sorted(p.parent.name for p in base.glob(f"*/{assignment}") if p.is_dir())


def make_template(api, assignment: str, folder: Path) -> Path:
    """A private course folder with `assignment` generated into its own SQLite gradebook."""
    root = Path(api.coursedir.root)
    folder.mkdir(parents=True)
    shutil.copy(root / "nbgrader_config.py", folder / "nbgrader_config.py")
    source = api.coursedir.source_directory
    shutil.copytree(root / source / assignment, folder / source / assignment,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    template = classroom.open_course(folder, CourseDirectory={"db_url": f"sqlite:///{folder / 'gradebook.db'}",
                                                              "release_directory": "release"})
    outcome = template.generate_assignment(assignment)
    if not outcome["success"]:
        raise RuntimeError(f"nbgrader generate_assignment {assignment} failed:\n{outcome.get('error') or outcome.get('log')}")
    for path in [folder, *folder.rglob("*")]:  # holds the hidden tests: for the grader's eyes only
        path.chmod(0o700 if path.is_dir() else 0o600)
    return folder


def merge_grades(api, result: dict, assignment: str) -> None:
    """Copy one graded submission into the class gradebook and autograded/ (a failure: zeros, flagged)."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    student = result["student"]
    root = Path(api.coursedir.root)
    target = root / api.coursedir.autograded_directory / student / assignment
    source = Path(result["work"]) / api.coursedir.autograded_directory / student / assignment
    with warnings.catch_warnings(), api.gradebook as class_gb:
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's update_or_create_* trip autoflush warnings
        class_gb.update_or_create_student(student)
        if result.get("gradebook"):
            with Gradebook(f"sqlite:///{result['gradebook']}", api.coursedir.course_id) as graded_gb:
                graded = graded_gb.find_submission(assignment, student)
                extra = {"timestamp": graded.timestamp} if graded.timestamp else {}
                class_gb.update_or_create_submission(assignment, student, **extra)
                for notebook in graded.notebooks:
                    mine = class_gb.find_submission_notebook(notebook.name, assignment, student)
                    mine.late_submission_penalty = notebook.late_submission_penalty
                    for grade in notebook.grades:
                        row = class_gb.find_grade(grade.name, notebook.name, assignment, student)
                        row.auto_score, row.needs_manual_grade = grade.auto_score, grade.needs_manual_grade
                    for comment in notebook.comments:
                        row = class_gb.find_comment(comment.name, notebook.name, assignment, student)
                        row.auto_comment = comment.auto_comment
        else:  # no usable grade: zero, and flagged for the instructor in formgrader
            submission = class_gb.update_or_create_submission(assignment, student)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    grade.auto_score, grade.needs_manual_grade = 0.0, True
        class_gb.db.commit()
    if target.exists():
        shutil.rmtree(target)
    if result.get("gradebook") and source.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target)
        for path in [target, *target.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    score = classroom.scores(api, assignment, student)["total"]
    result["score"], result["max_score"] = score


def write_csv(path: Path, rows: list[dict]) -> None:
    """The grades so far (rewritten after every submission, so a crash loses nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r["student"]):
            writer.writerow({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()})
    partial.replace(path)


def grade_class(root: Path, assignment: str, jobs: int = 2, limits: Limits | None = None,
                students: list[str] | None = None, csv_path: Path | None = None, feedback: bool = False,
                log=print) -> list[dict]:
    """Autograde every submission of `assignment` in the course folder `root`. → one row per student.

    Rows: student, score, max_score, status (ok, tampered, kernel_died, timeout, output_flood, killed,
    error, missing), reason, seconds, worker_peak_mib, kernel_peak_mib. The CSV at `csv_path`
    (default: ROOT/grades/ASSIGNMENT.csv) is rewritten after each submission.
    """
    limits = limits or Limits()
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if not (Path(root) / "nbgrader_config.py").is_file():
        raise FileNotFoundError(f"no nbgrader_config.py in {Path(root).resolve()}; run mmcourse grade in the course "
                                f"folder or give it with --course")
    api = classroom.open_course(Path(root))
    root = Path(api.coursedir.root)
    with api.gradebook as gb:
        try:
            gb.find_assignment(assignment)
        except Exception:
            raise ValueError(f"assignment {assignment!r} is not in the gradebook of {root}; release it first with "
                             f"`nbgrader generate_assignment {assignment}` (run in {root})") from None
    everyone = submissions(api, assignment)
    students = everyone if students is None else students
    unknown = sorted(set(students) - set(everyone))
    if unknown:
        raise ValueError(f"no submission of {assignment} for {', '.join(unknown)} in "
                         f"{root / api.coursedir.submitted_directory}; found {len(everyone)} students")
    csv_path = Path(csv_path) if csv_path else root / "grades" / f"{assignment}.csv"
    secrets_to_hide = [root / api.coursedir.source_directory, root / api.coursedir.submitted_directory,
                       root / api.coursedir.autograded_directory, root / api.coursedir.feedback_directory,
                       root / "nbgrader_config.py"]  # may hold a database password
    db_file = api.coursedir.db_url.removeprefix("sqlite:///")
    if api.coursedir.db_url.startswith("sqlite:///"):
        secrets_to_hide.append(Path(db_file))
    plan = plan_sandbox(limits.memory_gb, limits.isolate, [str(p) for p in secrets_to_hide])
    log(f"mmcourse grade {assignment}: {len(students)} submissions, {jobs} workers; {plan.describe()}")
    for note in plan.notes:
        log(f"  note: {note}")
    run_dir = Path(tempfile.mkdtemp(prefix="mmcourse-grade-", dir=RUN_DIR_PARENT))
    rows = []
    try:
        template = make_template(api, assignment, run_dir / "template")
        bindings = import_bindings([nbformat.read(p, as_version=4)
                                    for p in sorted((template / api.coursedir.source_directory / assignment).glob("*.ipynb"))])
        submitted = root / api.coursedir.submitted_directory
        queue = [Job(s, assignment, str(submitted / s / assignment), str(template), str(run_dir / "work" / s),
                     str(run_dir), limits, plan, bindings) for s in students]
        (run_dir / "work").mkdir()
        rows = _run_workers(api, queue, jobs, limits, run_dir, csv_path, log)
        if feedback:
            for row in rows:
                if row["status"] not in (ERROR, KILLED, MISSING):
                    outcome = api.generate_feedback(assignment, row["student"])
                    if not outcome["success"]:
                        log(f"  feedback for {row['student']} failed: {(outcome.get('error') or '')[-300:]}")
    finally:
        kill_processes_of(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)
    return rows


def _run_workers(api, queue: list[Job], jobs: int, limits: Limits, run_dir: Path, csv_path: Path, log) -> list[dict]:
    """Start workers up to `jobs`, collect each as it ends (or kill it when overdue), merge, write the CSV."""
    context = multiprocessing.get_context("fork")  # workers start with nbgrader already imported
    rows, running, total = [], {}, len(queue)
    queue = list(queue)
    try:
        while queue or running:
            while queue and len(running) < jobs:
                job = queue.pop(0)
                result_path = run_dir / f"{job.student}.result.json"
                process = context.Process(target=_worker, args=(job, str(result_path)), daemon=False)
                process.start()
                running[process.pid] = (process, job, result_path, time.monotonic())
            multiprocessing.connection.wait([p.sentinel for p, *_ in running.values()], timeout=1.0)
            for pid, (process, job, result_path, started) in list(running.items()):
                overdue = time.monotonic() - started > limits.wall_seconds + HARD_KILL_GRACE
                if process.exitcode is None and not overdue:
                    continue
                if process.exitcode is None:
                    kill_tree(pid)
                    process.join()
                    result = _result(job, KILLED, f"the worker ran past the {limits.wall_seconds:g} s wall-clock "
                                                  f"limit and was killed")
                elif result_path.is_file():
                    result = json.loads(result_path.read_text())
                else:
                    kill_tree(pid)
                    result = _result(job, KILLED, f"the worker died (exit code {process.exitcode}) before it reported")
                result["seconds"] = result.get("seconds") or time.monotonic() - started
                del running[pid]
                kill_processes_of(Path(job.work))
                try:
                    merge_grades(api, result, job.assignment)
                except Exception as err:  # noqa: BLE001 - keep grading the others
                    result.update(status=ERROR, reason=f"could not record the grade: {type(err).__name__}: {err}")
                shutil.rmtree(job.work, ignore_errors=True)
                rows.append(result)
                write_csv(csv_path, rows)
                log(f"[{len(rows)}/{total}] {job.student:<20} {result['score']:g}/{result['max_score'] or 0:g}  "
                    f"{result['status']:<12} {result['seconds']:5.1f} s  {result['reason']}")
    finally:  # also when interrupted (Ctrl-C, SIGTERM): workers live in their own sessions, so end them here
        for pid in list(running):
            kill_tree(pid)
    return rows


def exit_status(rows: list[dict]) -> int:
    """0 when every submission was graded normally, else 1."""
    return 0 if all(row["status"] == OK for row in rows) else 1
