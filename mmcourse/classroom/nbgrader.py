"""nbgrader plumbing for instructors and for the course's own tests.

The course keeps nbgrader's standard layout (see nbgrader_config.py):

    solutions/<assignment>/<assignment>.ipynb      source: solutions and hidden tests
    course/<assignment>/<assignment>.ipynb         release: what students get
    submitted/<student>/<assignment>/...           what students hand in
    autograded/<student>/<assignment>/...          after `nbgrader autograde`
    feedback/<student>/<assignment>/...html        after `nbgrader generate_feedback`

These helpers drive nbgrader's Python API (`NbGraderAPI`) inside one process, which
saves the ≈ 4 s start-up that every `nbgrader` command pays.

Where it sits: the bottom of mmcourse.classroom. nbgrader_config.py loads HideTestTracebacks from here;
the grader (worker.py, scheduler.py) opens its course folders with `open_course` and reads grades with
`scores`; `mmcourse validate` is `validate_notebook`; the course's tests build classes with the rest.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
ASSIGNMENT_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")


def repo_root() -> Path:
    """The course repository this package was installed from (the folder holding nbgrader_config.py)."""
    here = Path(__file__).resolve().parents[2]  # mmcourse/classroom/nbgrader.py → the repository
    if not (here / "nbgrader_config.py").is_file():
        raise FileNotFoundError(f"no nbgrader_config.py next to the mmcourse package in {here}; "
                                f"install the course in editable mode (pip install -e .) from its repository")
    return here


def discover_assignments(source_dir: Path) -> list[str]:
    """Assignment folders in `source_dir` (NN_topic/NN_topic.ipynb), sorted by number."""
    found = []
    for folder in sorted(Path(source_dir).iterdir()):
        if folder.is_dir() and ASSIGNMENT_NAME.match(folder.name) and (folder / f"{folder.name}.ipynb").is_file():
            found.append(folder.name)
    return found


def notebook_path(root: Path, step: str, assignment: str, student: str | None = None) -> Path:
    """Where nbgrader keeps `assignment`'s notebook for a step ('solutions', 'course', 'submitted', 'autograded')."""
    base = Path(root) / step
    if student is not None:
        base = base / student
    return base / assignment / f"{assignment}.ipynb"


def _ensure_tools_on_path() -> None:
    # nbgrader runs `alembic` from PATH when it creates a gradebook.
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def open_course(root: Path, **overrides):
    """An NbGraderAPI for the course folder `root`, configured by its nbgrader_config.py.

    `overrides` set extra config values, e.g. {"Execute": {"timeout": 60}}.
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    _ensure_tools_on_path()
    root = Path(root).resolve()
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    config.merge(Config(overrides))
    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir, config=config)


def copy_course(repo: Path, dest: Path, assignments: list[str] | None = None) -> Path:
    """Copy nbgrader_config.py and the source notebooks of `assignments` into a fresh course folder `dest`."""
    repo, dest = Path(repo), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(repo / "nbgrader_config.py", dest / "nbgrader_config.py")
    for name in assignments if assignments is not None else discover_assignments(repo / "solutions"):
        shutil.copytree(repo / "solutions" / name, dest / "solutions" / name,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return dest


def strip_solution_markers(source: str) -> str:
    """A solution cell's code as a student who got it right would write it (no nbgrader markers)."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in (SOLUTION_BEGIN, SOLUTION_END))


def perfect_submission(source_nb: nbformat.NotebookNode, release_nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The released notebook with every answer cell filled in from the solution: a full-marks submission."""
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source_nb.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    submission = nbformat.from_dict(release_nb)
    for cell in submission.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = strip_solution_markers(answers[grade_id])
    return submission


def submit(root: Path, assignment: str, student: str, notebook: nbformat.NotebookNode) -> Path:
    """Place `notebook` where nbgrader expects `student`'s submission of `assignment`."""
    path = notebook_path(root, "submitted", assignment, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def scores(api, assignment: str, student: str) -> dict:
    """Points per graded cell from the gradebook: {'total': (score, max), grade_id: (score, max), ...}."""
    with api.gradebook as gb:
        submission = gb.find_submission(assignment, student)
        result = {"total": (submission.score, submission.max_score)}
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                result[grade.name] = (grade.score, grade.max_score)
        return result


def html_to_text(page: str) -> str:
    """The visible text of an HTML page (tags removed, entities decoded): what a reader of feedback sees."""
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", page))


class HideTestTracebacks(NbGraderPreprocessor):
    """For feedback: reduce a failed test cell's traceback to its last line ("CheckFailed: message").

    IPython tracebacks quote the source lines around the failure, so a failing hidden test
    would show its own code in the feedback even after ClearHiddenTests removed it from the cell.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade"):
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources


def validate_notebook(path: Path, timeout: int | None = None) -> dict:
    """Run a student's notebook and its visible tests with nbgrader's Validator. → Validator.validate's dict.

    The result has "failed" (test cells that raised), "changed" (test cells the student edited) or
    "type_changed" (cells whose type was changed) when something is wrong, and nothing of these when
    the notebook passes. The course's nbgrader_config.py supplies the settings (e.g. Execute.timeout).
    """
    from nbgrader.validator import Validator
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    path = Path(path)
    if path.suffix != ".ipynb" or not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}; give the path of your .ipynb file, "
                                f"e.g. mmcourse validate course/01_what_is_a_multimodal_llm/01_what_is_a_multimodal_llm.ipynb")
    config = Config()
    try:
        config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(repo_root())).load_config())
    except FileNotFoundError:
        config.Execute.timeout = 120  # a torch import needs more than nbgrader's default 30 s
    if timeout:
        config.Execute.timeout = timeout
    return Validator(config=config).validate(str(path.resolve()))
