"""nbgrader configuration for mmcourse (instructors: run nbgrader commands from this folder).

solutions/NN_topic/NN_topic.ipynb  is the source (instructor version, with solutions and hidden tests)
course/NN_topic/NN_topic.ipynb     is the release (student version), made by `nbgrader generate_assignment`
"""

import os

from nbgrader.preprocessors import ClearHiddenTests, GetGrades
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor

from mmcourse.classroom import HideTestTracebacks
from mmcourse.classroom.execute import autograde_preprocessors

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.course_id = "mmcourse"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "course"

# The gradebook: SQLite (gradebook.db here) unless GRADEBOOK_URL names a server, password included, e.g.
# postgresql://grader:PASSWORD@localhost/mmcourse_gradebook. It stays in the environment, out of the repository;
# graded kernels never get it (they inherit a short allow-list of variables).
if os.environ.get("GRADEBOOK_URL"):
    c.CourseDirectory.db_url = os.environ["GRADEBOOK_URL"]

# What a learner sees in place of a solution.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A cell that imports torch and transformers needs more than nbgrader's default 30 s on a slow laptop.
c.Execute.timeout = 120  # CPU seconds per cell under GuardedExecute (wall-clock bound: 3 × that)

# Every grading path runs the test cells with the guard (mmcourse/classroom/guard.py): `mmcourse grade`, and also
# plain `nbgrader autograde` and the formgrader's Autograde button, which read this file. GuardedExecute takes
# Execute's place: before each test cell it undoes what the hand-in patched (check helpers, torch, builtins, ...).
c.Autograde.autograde_preprocessors = autograde_preprocessors()

# A test cell that a student deleted is put back and run, instead of scoring nothing.
c.OverwriteCells.add_missing_cells = True

# Feedback shows the student's grades and their own code, never the hidden tests: their source is
# cleared, and a failed test's traceback (which quotes the failing line) is cut to its message.
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, HideTestTracebacks, CSSHTMLHeaderPreprocessor]
