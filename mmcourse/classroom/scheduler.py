"""Grade a whole class with nbgrader: in parallel, within limits, resisting tampering, losing nothing.

    mmcourse grade 01_what_is_a_multimodal_llm --jobs 2        (from the course folder)

What nbgrader alone does badly, and what the grader does instead:

    one submission at a time         N workers, one process per submission (`--jobs N`)
    a kernel that dies, hangs,       every submission ends with a grade and a reason: the cells that
    exits or floods output gets      ran before the failure keep their points, every test cell that
    no grade ("Removing failed       could not run scores 0 (not full marks, as an empty output would)
    assignment") and leaves a
    stale one
    one failure can disturb the      each submission is graded in its own temporary course folder with
    gradebook                        its own gradebook; its grades are copied into the class gradebook
                                     only when its worker finished
    hidden tests run next to code    the kernel runs in a sandbox (sandbox.py: memory limit, no
    that can monkeypatch them        network, user `nobody`, course files hidden), and a guard
                                     (guard.py) undoes tampering before every test cell

Where it sits: the top of the grader; cli.py's `mmcourse grade` calls `grade_class`. The pieces, in order:
    execute.GuardedExecute   nbgrader's Execute preprocessor with the guard cells, limits and failure handling
    worker.grade_submission  one student, inside a worker process: temporary course → nbgrader autograde
    grade_class (here)       the scheduler: workers, wall-clock limits, merging into the class gradebook, CSV
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import tempfile
import time
import warnings
from pathlib import Path

import nbformat

from mmcourse.classroom.execute import ERROR, KILLED, MISSING, OK, import_bindings
from mmcourse.classroom.nbgrader import open_course, scores
from mmcourse.classroom.sandbox import RUN_DIR_PARENT, plan_sandbox, process_tree
from mmcourse.classroom.worker import Job, Limits, _result, _worker

HARD_KILL_GRACE = 30  # seconds past the wall-clock limit before a worker that did not stop by itself is killed
CSV_COLUMNS = ("student", "score", "max_score", "status", "reason", "seconds", "worker_peak_mib", "kernel_peak_mib")


def grade_class(root: Path, assignment: str, jobs: int = 2, limits: Limits | None = None,
                students: list[str] | None = None, csv_path: Path | None = None, feedback: bool = False,
                regrade: bool = False, log=print) -> list[dict]:
    """Autograde every submission of `assignment` in the course folder `root`. → one row per hand-in graded now.

    Rows: student, score, max_score, status (ok, tampered, kernel_died, timeout, output_flood, killed,
    error, missing), reason, seconds, worker_peak_mib, kernel_peak_mib. The CSV at `csv_path`
    (default: ROOT/grades/ASSIGNMENT.csv) is rewritten from the class gradebook after each submission,
    atomically: every student with a grade has a row, whoever graded them and whenever.

    Resuming: a hand-in whose files are unchanged since `mmcourse grade` recorded its grade (the ledger
    ROOT/grades/ASSIGNMENT.status.json) is not graded again, so a run killed half-way (an OOM kill, a
    reboot) picks up where it stopped; `regrade=True` grades every hand-in again.
    """
    limits = limits or Limits()
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if not (Path(root) / "nbgrader_config.py").is_file():
        raise FileNotFoundError(f"no nbgrader_config.py in {Path(root).resolve()}; run mmcourse grade in the course "
                                f"folder or give it with --course")
    api = open_course(Path(root))
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
    ledger = Ledger(root / "grades" / f"{assignment}.status.json")
    handed_in = {s: fingerprint(root / api.coursedir.submitted_directory / s / assignment) for s in students}
    if not regrade:
        done = [s for s in students if ledger.is_current(s, handed_in[s]) and has_submission(api, assignment, s)]
        if done:
            log(f"resuming: {len(done)} of {len(students)} hand-ins were graded before and are unchanged; their "
                f"grades are kept (--regrade grades them again)")
        students = [s for s in students if s not in done]
    remove_stale_runs()
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
    run_dir = Path(tempfile.mkdtemp(prefix=RUN_PREFIX, dir=RUN_DIR_PARENT))
    (run_dir / "grader.pid").write_text(str(os.getpid()))
    rows = []
    if not students:
        write_csv(csv_path, class_rows(api, assignment, ledger))
        shutil.rmtree(run_dir, ignore_errors=True)
        return rows
    try:
        template = make_template(api, assignment, run_dir / "template")
        bindings = import_bindings([nbformat.read(p, as_version=4)
                                    for p in sorted((template / api.coursedir.source_directory / assignment).glob("*.ipynb"))])
        submitted = root / api.coursedir.submitted_directory
        queue = [Job(s, assignment, str(submitted / s / assignment), str(template), str(run_dir / "work" / s),
                     str(run_dir), limits, plan, bindings) for s in students]
        (run_dir / "work").mkdir()
        rows = _run_workers(api, queue, jobs, limits, run_dir, csv_path, ledger, handed_in, log)
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


def _run_workers(api, queue: list[Job], jobs: int, limits: Limits, run_dir: Path, csv_path: Path, ledger: Ledger,
                 handed_in: dict, log) -> list[dict]:
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
                ledger.record(result, handed_in[job.student])  # after the gradebook's commit: a kill in between
                write_csv(csv_path, class_rows(api, job.assignment, ledger))  # only regrades this one
                log(f"[{len(rows)}/{total}] {job.student:<20} {result['score']:g}/{result['max_score'] or 0:g}  "
                    f"{result['status']:<12} {result['seconds']:5.1f} s  {result['reason']}")
    finally:  # also when interrupted (Ctrl-C, SIGTERM): workers live in their own sessions, so end them here
        for pid in list(running):
            kill_tree(pid)
    return rows


def exit_status(rows: list[dict]) -> int:
    """0 when every submission was graded normally, else 1."""
    return 0 if all(row["status"] == OK for row in rows) else 1


# ---------------------------------------------------------------- the class gradebook and the CSV


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
    template = open_course(folder, CourseDirectory={"db_url": f"sqlite:///{folder / 'gradebook.db'}",
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
    score = scores(api, assignment, student)["total"]
    result["score"], result["max_score"] = score


class Ledger:
    """What `mmcourse grade` knows beyond the gradebook: per student the status, the reason and which files it graded.

    A JSON file beside the CSV, replaced atomically after every merged grade: {student: row + "handed_in"}.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def is_current(self, student: str, handed_in: str) -> bool:
        """Graded before from exactly these files, and the grade is a real one (not a killed or failed run)?"""
        entry = self.entries.get(student)
        return bool(entry) and entry.get("handed_in") == handed_in and entry.get("status") not in (KILLED, ERROR)

    def record(self, row: dict, handed_in: str) -> None:
        self.entries[row["student"]] = {**{k: row.get(k) for k in CSV_COLUMNS}, "handed_in": handed_in}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
        partial.replace(self.path)


def fingerprint(folder: Path) -> str:
    """A hash of a hand-in's files (names and contents): a new hand-in, or an edited one, has a new fingerprint."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def has_submission(api, assignment: str, student: str) -> bool:
    with api.gradebook as gb:
        try:
            gb.find_submission(assignment, student)
        except Exception:  # nbgrader raises MissingEntry
            return False
        return True


def class_rows(api, assignment: str, ledger: Ledger) -> list[dict]:
    """One CSV row per student with a grade in the class gradebook; status and reason from the ledger.

    A grade recorded by another path (`nbgrader autograde`, the formgrader) has status `recorded`."""
    rows = []
    with api.gradebook as gb:
        for submission in gb.assignment_submissions(assignment):
            student = submission.student.id
            known = ledger.entries.get(student) or {"status": "recorded", "reason": "graded outside mmcourse grade"}
            rows.append({**known, "student": student, "score": submission.score, "max_score": submission.max_score})
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    """The grades so far (rewritten after every submission, atomically, so a crash loses nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r["student"]):
            writer.writerow({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()})
    partial.replace(path)


# ---------------------------------------------------------------- ending workers and their kernels

RUN_PREFIX = "mmcourse-grade-"


def remove_stale_runs() -> None:
    """Delete the run folders of graders that died without cleaning up (SIGKILL, a reboot) and end their kernels."""
    for folder in Path(RUN_DIR_PARENT or tempfile.gettempdir()).glob(RUN_PREFIX + "*"):
        try:
            pid = int((folder / "grader.pid").read_text())
            os.kill(pid, 0)
            continue  # its grader is alive (another class being graded)
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            if time.time() - folder.stat().st_mtime < 3600:
                continue  # no pid file yet: a run that is just starting
        kill_processes_of(folder)
        shutil.rmtree(folder, ignore_errors=True)



def kill_tree(pid: int) -> None:
    """SIGKILL a process, its process group and every descendant (kernels live in their own sessions)."""
    victims = process_tree(pid)
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
