"""Every graded exercise with variants in tests/mutants/ is judged as required (see tests/mutation.py):
each wrong answer fails — the visible tests catch those the instructions warn about, with a message that names the
mistake — and each right answer written differently passes the visible and the hidden tests.
`python -m tests.mutation` prints the table of what each kind of test catches."""

from __future__ import annotations

import pytest

import nbformat

from mmcourse import classroom
from tests.mutants import MUTANTS
from tests.mutation import REPO, pair_tests, run_mutants, table


@pytest.mark.parametrize("name", classroom.discover_assignments(REPO / "solutions"))
def test_every_test_cell_judges_an_exercise_with_mutants(name):
    """Every graded cell belongs to an answer cell whose variants it judges — notebook 13's quiz has two."""
    cells = nbformat.read(classroom.notebook_path(REPO, "solutions", name), as_version=4).cells
    pairs = pair_tests(cells)
    graded = [i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("grade")]
    assert sorted(j for tests in pairs.values() for j in tests) == graded, f"{name}: test cells paired {pairs}"
    if pairs:
        assert sorted(MUTANTS.get(name, {})) == sorted(pairs), f"{name}: exercises without mutants in tests/mutants/"


@pytest.mark.parametrize("name", list(MUTANTS))
def test_exercises_catch_wrong_answers_and_accept_right_ones(name):
    results = run_mutants(name, MUTANTS[name])
    assert sum(not r.right for r in results) >= 3 * len(MUTANTS[name]), "a handful of wrong answers per exercise"
    assert all(sum(r.right for r in results if r.answer == a) >= 2 for a in MUTANTS[name]), "two right variants each"
    bad = [f"{'right' if r.right else 'wrong'} {r.answer} {r.variant!r}: visible {r.visible.message or 'passed'}; "
           f"hidden {r.hidden.message or 'passed'}" for r in results if not r.ok]
    assert not bad, table(results) + "\n\njudged wrongly:\n" + "\n".join(bad)
