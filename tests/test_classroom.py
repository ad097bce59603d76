"""nbgrader plumbing on a small synthetic assignment (fast; the real notebooks are in test_course.py)."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mmcourse import classroom
from tests.conftest import nbgrader_metadata


def demo_source() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell("# 99 demo\n**Learning objectives**\n**Estimated time**: 1 minute", id="nb99-md-01",
                          metadata=nbgrader_metadata(locked=True, grade_id="nb99_md_01")),
        new_code_cell("def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION", id="nb99-square",
                      metadata=nbgrader_metadata(solution=True, grade_id="nb99_square")),
        new_code_cell("assert square(3) == 9, 'three squared is nine'\n### BEGIN HIDDEN TESTS\n"
                      "assert square(-4) == 16, 'secret message'\n### END HIDDEN TESTS", id="nb99-square-test",
                      metadata=nbgrader_metadata(grade=True, locked=True, points=2, grade_id="nb99_square_test")),
    ]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    (root / "nbgrader_config.py").write_text((classroom.repo_root() / "nbgrader_config.py").read_text())
    path = classroom.notebook_path(root, "solutions", "99_demo")
    path.parent.mkdir(parents=True)
    nbformat.write(demo_source(), path)
    api = classroom.open_course(root)
    assert api.generate_assignment("99_demo")["success"]
    return root, api


def test_discover_assignments(course):
    root, _ = course
    (root / "solutions" / "notes").mkdir()
    (root / "solutions" / "98_empty").mkdir()
    assert classroom.discover_assignments(root / "solutions") == ["99_demo"]


def test_release_is_stubbed(course):
    root, _ = course
    release = nbformat.read(classroom.notebook_path(root, "course", "99_demo"), 4)
    assert "raise NotImplementedError()" in release.cells[1].source
    assert "x * x" not in release.cells[1].source and "square(-4)" not in release.cells[2].source


def test_perfect_submission_strips_markers(course):
    root, _ = course
    release = nbformat.read(classroom.notebook_path(root, "course", "99_demo"), 4)
    perfect = classroom.perfect_submission(demo_source(), release)
    assert perfect.cells[1].source == "def square(x):\n    return x * x"
    assert release.cells[1].source != perfect.cells[1].source, "the release itself is untouched"


def test_grades_and_feedback_hide_failing_hidden_tests(course):
    root, api = course
    release = nbformat.read(classroom.notebook_path(root, "course", "99_demo"), 4)
    half = nbformat.from_dict(release)
    half.cells[1].source = "def square(x):\n    return x * x if x > 0 else 0"  # passes visible, fails hidden
    classroom.submit(root, "99_demo", "half", half)
    classroom.submit(root, "99_demo", "perfect", classroom.perfect_submission(demo_source(), release))
    for student in ("half", "perfect"):
        assert api.autograde("99_demo", student)["success"]
    assert classroom.scores(api, "99_demo", "perfect")["total"] == (2.0, 2.0)
    assert classroom.scores(api, "99_demo", "half")["total"] == (0.0, 2.0)
    assert api.generate_feedback("99_demo", "half")["success"]
    text = classroom.html_to_text((root / "feedback" / "half" / "99_demo" / "99_demo.html").read_text())
    assert "AssertionError" in text and "secret message" in text  # the student learns that a test failed, and its message
    assert "square(-4)" not in text, "the hidden test's code leaked into feedback (via the source or the traceback)"
    assert "BEGIN HIDDEN TESTS" not in text
