"""Grade one hand-in inside its own worker process: a private course folder → nbgrader autograde → a result.

Where it sits: scheduler.py forks one worker per submission and runs `_worker(job, result_path)` in it.
The worker copies the template course (the assignment generated into its own gradebook), puts the
submission in it with its nbgrader metadata restored, hides the course's secrets from the kernel
(sandbox.py), and has nbgrader autograde it with execute.GuardedExecute in place of Execute. The
result (a dict: one row of the CSV) goes to a JSON file; the grades stay in the private gradebook
until the scheduler merges them into the class gradebook.

    Limits, Job             what one submission may use; everything a worker needs to grade it
    grade_submission        the grading itself
    _worker                 the process body: its own session, private files, a result whatever happens,
                            and death with the grader (die_with_parent)
    normalize_submission    below them: the check that gives test cells back their release metadata
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat

from mmcourse.classroom.execute import ERROR, MIB, MISSING, OK, GuardedExecute, autograde_preprocessors
from mmcourse.classroom.nbgrader import open_course, scores
from mmcourse.classroom.sandbox import SandboxKernelManager, SandboxPlan


@dataclass
class Limits:
    """What one submission may use."""

    wall_seconds: float = 600  # the whole notebook, kernel start included
    cell_seconds: float | None = None  # None: Execute.timeout from nbgrader_config.py
    memory_gb: float | None = 8  # address space of the kernel (torch alone maps ≈ 3.3 GB)
    max_output_mb: float = 16
    max_write_mb: float = 1024  # files the kernel may add to its folders (its /tmp: a bounded tmpfs of its own)
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


def grade_submission(job: Job) -> dict:
    """Autograde one submission in its own course folder (runs inside the worker process)."""
    import resource

    start = time.monotonic()
    work = Path(job.work)
    shutil.copytree(job.template, work, symlinks=True)
    overrides = {"CourseDirectory": {"db_url": f"sqlite:///{work / 'gradebook.db'}", "release_directory": "release"},
                 "Autograde": {"autograde_preprocessors": autograde_preprocessors()},
                 "GuardedExecute": {"deadline": start + job.limits.wall_seconds - min(10, job.limits.wall_seconds / 5),
                                    "max_output_bytes": int(job.limits.max_output_mb * MIB),
                                    "max_write_bytes": int(job.limits.max_write_mb * MIB),
                                    "bindings": job.bindings, "guard": int(job.limits.guard)}}
    if job.limits.cell_seconds:
        overrides["GuardedExecute"]["timeout"] = int(job.limits.cell_seconds)
    api = open_course(work, **overrides)
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
            total = scores(api, job.assignment, job.student)["total"]
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


def _worker(job: Job, result_path: str) -> None:
    """The body of a worker process: its own process group (so it can be killed whole), private files."""
    from sqlalchemy.exc import SAWarning

    warnings.simplefilter("ignore", SAWarning)
    parent = os.getppid()
    os.setsid()
    die_with_parent(parent)
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


def die_with_parent(parent: int) -> None:
    """Have the kernel send this worker SIGKILL when the grader dies, even by SIGKILL (Linux prctl PDEATHSIG).

    Without it a worker whose grader was killed keeps grading into a folder nobody will read."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the next run's remove_stale_runs cleans up instead
    if os.getppid() != parent:  # the grader died before prctl took effect
        os._exit(1)


# ---------------------------------------------------------------- checks and the result row


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


def nbgrader_error(outcome: dict) -> str:
    """The most telling line of a failed nbgrader run (its last line is a generic 'see the traceback')."""
    text = (outcome.get("error") or "") + "\n" + (outcome.get("log") or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    telling = [line for line in lines if re.match(r"[\w.]+(Error|Exception): ", line) and "NbGraderException" not in line]
    return (telling or lines or ["nbgrader failed without a message"])[-1][:300]


def _result(job: Job, status: str, reason: str, **extra) -> dict:
    return {"student": job.student, "status": status, "reason": reason, "score": 0.0, "max_score": None,
            "seconds": 0.0, "worker_peak_mib": None, "kernel_peak_mib": None, "work": job.work, **extra}
