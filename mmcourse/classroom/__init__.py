"""The course as an nbgrader course, the grader that grades a whole class, and the `mmcourse` command.

Instructors and the course's own tests use this; the lesson never does. From the bottom layer up:

    nbgrader.py      nbgrader plumbing: the course layout, an NbGraderAPI per folder, submit, scores, HideTestTracebacks, validate
    guard.py         the grader, inside the student's kernel: undoes tampering before each test cell (sent as source text)
    sandbox.py       the grader, around the kernel: memory limit, network/PID/mount namespaces, user nobody; the launcher
    execute.py       the grader, one notebook: GuardedExecute runs its cells (guard cells, limits, dead kernels); the statuses
    worker.py        the grader, one hand-in: the worker process that autogrades it in a private course folder
    scheduler.py     the grader, the class: parallel workers, wall-clock kills, the class gradebook, the CSV (`grade_class`)
    cli.py           the command on top: `mmcourse doctor | grade | validate | quiz`

The names below resolve lazily (PEP 562): `from mmcourse.classroom import HideTestTracebacks` (nbgrader_config.py)
loads nbgrader.py only, and `mmcourse doctor` runs where nbgrader is not installed.
"""

from __future__ import annotations

import importlib

# name → the module that defines it (imported on first use)
_EXPORTS = {
    **dict.fromkeys(("SOLUTION_BEGIN", "SOLUTION_END", "HIDDEN_BEGIN", "HIDDEN_END", "ASSIGNMENT_NAME", "repo_root",
                     "discover_assignments", "notebook_path", "open_course", "copy_course", "strip_solution_markers",
                     "perfect_submission", "submit", "scores", "html_to_text", "HideTestTracebacks",
                     "validate_notebook"), "mmcourse.classroom.nbgrader"),
    "Limits": "mmcourse.classroom.worker",
    "grade_class": "mmcourse.classroom.scheduler", "exit_status": "mmcourse.classroom.scheduler",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mmcourse.classroom' has no attribute {name!r}; see the map in "
                         f"mmcourse/classroom/__init__.py")


def __dir__():
    return sorted(__all__)
