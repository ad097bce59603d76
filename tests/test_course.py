"""The course as nbgrader sees it: every notebook in solutions/ is covered here without editing this file.

- course/ is exactly what `nbgrader generate_assignment` makes of solutions/ today;
- nothing of a solution or a hidden test reaches course/;
- every released notebook runs, the exercise stubs' NotImplementedError being the only errors;
- autograding a correct submission gives full marks, the untouched release gives zero,
  and the feedback shows no hidden test.
(nbval runs every solution notebook: see testpaths in pyproject.toml.)
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mmcourse import classroom
from tests.conftest import marker_blocks

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENTS = classroom.discover_assignments(REPO / "solutions")
MARKERS = (classroom.SOLUTION_BEGIN, classroom.SOLUTION_END, classroom.HIDDEN_BEGIN, classroom.HIDDEN_END)


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})



def private_lines(source: nbformat.NotebookNode, *markers: tuple[str, str]) -> set[str]:
    """Lines (≥ 12 characters, not comments) inside the given marker blocks that appear nowhere else in
    the notebook: those must never reach a student. A line such as `loss.backward()` that the visible
    code also has is not a secret."""
    every_marker = ((classroom.SOLUTION_BEGIN, classroom.SOLUTION_END), (classroom.HIDDEN_BEGIN, classroom.HIDDEN_END))
    private, public = set(), set()
    for cell in source.cells:
        def inside(pairs):
            return {line.strip() for begin, end in pairs for block in marker_blocks(cell.source, begin, end)
                    for line in block.splitlines()}
        private |= inside(markers)
        public |= {line.strip() for line in cell.source.splitlines()} - inside(every_marker)
    return {s for s in private - public if len(s) >= 12 and not s.startswith("#")}


@pytest.fixture(scope="session")
def fresh(tmp_path_factory) -> Path:
    """A temporary course folder in which nbgrader generated every assignment from solutions/."""
    root = classroom.copy_course(REPO, tmp_path_factory.mktemp("fresh"))
    api = classroom.open_course(root)
    for name in ASSIGNMENTS:
        result = api.generate_assignment(name)
        assert result["success"], f"nbgrader generate_assignment {name} failed:\n{result.get('error')}\n{result.get('log')}"
    return root


def test_there_are_assignments():
    assert len(ASSIGNMENTS) >= 2, f"expected notebooks in solutions/, found {ASSIGNMENTS}"


def test_course_has_exactly_the_released_assignments():
    released = sorted(p.name for p in (REPO / "course").iterdir() if p.is_dir())
    assert released == ASSIGNMENTS, "course/ and solutions/ hold different assignments; run `make course`"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_course_equals_fresh_generation(name, fresh):
    repo_files = sorted(p.relative_to(REPO / "course" / name) for p in (REPO / "course" / name).rglob("*") if p.is_file())
    fresh_files = sorted(p.relative_to(fresh / "course" / name) for p in (fresh / "course" / name).rglob("*") if p.is_file())
    assert repo_files == fresh_files, "course/ has other files than nbgrader generates; run `make course`"
    for rel in repo_files:
        ours, theirs = (REPO / "course" / name / rel).read_bytes(), (fresh / "course" / name / rel).read_bytes()
        assert ours == theirs, f"course/{name}/{rel} is out of date with solutions/; run `make course` and commit"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_source_notebook_is_well_formed(name):
    from nbgrader.nbgraderformat import MetadataValidator

    nb = read(classroom.notebook_path(REPO, "solutions", name))
    MetadataValidator().validate_nb(nb)
    number = name[:2]
    ids = [cell.id for cell in nb.cells]
    assert len(set(ids)) == len(ids), "duplicate cell ids"
    assert all(re.match(rf"^nb{number}[-_]", i) for i in ids), f"cell ids must be explicit and start with nb{number}: {ids}"
    graded = [c for c in nb.cells if nbgrader_meta(c).get("grade")]
    answers = [c for c in nb.cells if nbgrader_meta(c).get("solution")]
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if meta:
            assert meta["grade_id"].startswith(f"nb{number}_"), f"grade_id {meta['grade_id']} must start with nb{number}_"
        for marker in MARKERS:
            if marker in cell.source:
                kind = "solution" if "SOLUTION" in marker else "grade"
                assert meta.get(kind), f"cell {cell.id} has {marker!r} but is not a {kind} cell"
    for cell in graded:
        assert nbgrader_meta(cell)["points"] > 0, f"test cell {cell.id} gives no points"
        assert marker_blocks(cell.source, classroom.HIDDEN_BEGIN, classroom.HIDDEN_END), f"test cell {cell.id} has no hidden tests"
    for cell in answers:
        assert marker_blocks(cell.source, classroom.SOLUTION_BEGIN, classroom.SOLUTION_END), f"answer cell {cell.id} has no solution block"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and re.search(r"[\u4e00-\u9fff]", first.source) if answers else True, \
        "a graded notebook opens with its interview question in Chinese and English"
    assert "Learning objectives" in first.source and "Estimated time" in first.source, \
        "the first cell states the learning objectives and the estimated time"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_nothing_leaks_into_course(name):
    source = read(classroom.notebook_path(REPO, "solutions", name))
    release_text = (REPO / "course" / name / f"{name}.ipynb").read_text()
    release = read(classroom.notebook_path(REPO, "course", name))
    for cell in release.cells:
        for marker in MARKERS:
            assert marker not in cell.source, f"{marker!r} in released cell {cell.id}"
    # Every line of a solution or hidden test that appears nowhere else in the source must be absent from the release.
    secret_lines = private_lines(source, (classroom.SOLUTION_BEGIN, classroom.SOLUTION_END),
                                 (classroom.HIDDEN_BEGIN, classroom.HIDDEN_END))
    graded = any(nbgrader_meta(c).get("solution") or nbgrader_meta(c).get("grade") for c in source.cells)
    assert secret_lines or not graded, "found no solution or hidden-test lines to look for"
    released_lines = {line.strip() for cell in release.cells for line in cell.source.splitlines()}
    leaked = sorted(secret_lines & released_lines)
    assert not leaked, f"solution or hidden-test lines in course/{name}: {leaked[:5]}"
    assert "outputs\": [\n     {" not in release_text, "the release carries cell outputs"


def _errors(nb: nbformat.NotebookNode) -> list[tuple[str, str, str]]:
    return [(cell.id, out.ename, out.evalue) for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if out.output_type == "error"]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_runs_with_only_stub_errors(name, tmp_path):
    folder = tmp_path / name
    shutil.copytree(REPO / "course" / name, folder)
    nb = read(folder / f"{name}.ipynb")
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    errors = _errors(nb)
    wrong = [e for e in errors if e[1] != "NotImplementedError"]
    assert not wrong, f"released {name} fails for another reason than an exercise stub: {wrong}"
    n_answers = sum(1 for c in nb.cells if nbgrader_meta(c).get("solution"))
    if n_answers:
        assert errors, "the release has exercises, yet no stub raised NotImplementedError"
    draws = any("viz." in c.source for c in nb.cells if c.cell_type == "code")
    pictures = sum("image/png" in out.get("data", {}) for c in nb.cells if c.cell_type == "code" for out in c.outputs)
    assert pictures or not draws, f"{name} draws with viz, yet no figure reached the outputs as an image (MPLBACKEND=Agg)"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_autograde_full_marks_and_zero(name, tmp_path):
    root = classroom.copy_course(REPO, tmp_path / "class", [name])
    api = classroom.open_course(root)
    assert api.generate_assignment(name)["success"]
    source = read(classroom.notebook_path(root, "solutions", name))
    release = read(REPO / "course" / name / f"{name}.ipynb")  # the committed release, byte for byte
    classroom.submit(root, name, "perfect", classroom.perfect_submission(source, release))
    classroom.submit(root, name, "untouched", release)
    for student in ("perfect", "untouched"):
        result = api.autograde(name, student)
        assert result["success"], f"autograde {student} failed:\n{result.get('error')}\n{result.get('log')}"
    perfect, untouched = classroom.scores(api, name, "perfect"), classroom.scores(api, name, "untouched")
    score, maximum = perfect["total"]
    n_tests = sum(1 for c in source.cells if nbgrader_meta(c).get("grade"))
    if n_tests == 0:
        assert maximum == 0
        return
    assert maximum > 0 and score == maximum, f"a correct submission scored {score}/{maximum}: {perfect}"
    assert untouched["total"][0] == 0, f"the untouched release scored {untouched['total']}: {untouched}"
    graded = read(classroom.notebook_path(root, "autograded", name, "perfect"))
    assert not _errors(graded), f"the correct submission raised errors: {_errors(graded)}"
    # Feedback: grades and the student's code, never the hidden tests.
    assert api.generate_feedback(name, "untouched")["success"]
    text = classroom.html_to_text((root / "feedback" / "untouched" / name / f"{name}.html").read_text())
    assert classroom.HIDDEN_BEGIN not in text
    hidden = private_lines(source, (classroom.HIDDEN_BEGIN, classroom.HIDDEN_END))
    assert hidden, "found no hidden-test lines to look for"
    shown = sorted(line for line in hidden if line in text)
    assert not shown, f"hidden test lines in the feedback: {shown[:5]}"


@pytest.mark.parametrize("name", [n for n in ASSIGNMENTS if not n.startswith("00_")])
def test_mmcourse_grade_honest_is_ok_and_untouched_is_zero(name, tmp_path):
    """Through the guarded grader (`mmcourse grade`): the release with the correct code typed in is `ok` with full
    marks — never `tampered` for names the notebook itself defines or imports — and the untouched release is `ok` with
    zero: the guard must not rebind a student's own answer (an exercise function) to the package's version."""
    root = classroom.copy_course(REPO, tmp_path / "class", [name])
    api = classroom.open_course(root)
    assert api.generate_assignment(name)["success"]
    source = read(classroom.notebook_path(root, "solutions", name))
    release = read(REPO / "course" / name / f"{name}.ipynb")
    classroom.submit(root, name, "perfect", classroom.perfect_submission(source, release))
    classroom.submit(root, name, "untouched", release)
    rows = {r["student"]: r for r in classroom.grade_class(root, name, jobs=1, log=lambda *args: None)}
    perfect, untouched = rows["perfect"], rows["untouched"]
    assert (perfect["status"], perfect["reason"]) == ("ok", ""), f"an honest student was reported: {perfect}"
    assert perfect["max_score"] > 0 and perfect["score"] == perfect["max_score"], perfect
    assert (untouched["status"], untouched["reason"]) == ("ok", ""), f"the untouched release was reported: {untouched}"
    assert untouched["score"] == 0, f"the untouched release earned points: {untouched}"


@pytest.mark.parametrize("readme_name", ["README.md", "README.zh-CN.md"])
def test_readme_states_each_notebooks_exercises_and_points(readme_name):
    """The READMEs' notebook tables (English and Chinese) say how many exercises and points each notebook has: keep them true."""
    readme = (REPO / readme_name).read_text(encoding="utf-8")
    for name in ASSIGNMENTS:
        cells = [nbgrader_meta(c) for c in read(REPO / "solutions" / name / f"{name}.ipynb").cells]
        exercises = sum(1 for m in cells if m.get("solution"))
        points = sum(m.get("points", 0) for m in cells if m.get("grade"))
        stated = "—" if exercises == 0 else f"{exercises} · {points:g}"
        row = re.search(rf"^\| {name[:2]} \|.*\| ([^|]+) \|$", readme, re.M)
        assert row, f"{readme_name}'s notebook table has no row for {name}"
        assert row.group(1).strip() == stated, f"{readme_name} says {row.group(1).strip()!r} for {name}; it has {stated!r}"
