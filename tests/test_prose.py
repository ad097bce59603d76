"""Every notebook whose prose states numbers has claims checked against its output (see tests/prose.py): assertions
in its cells that say what the text says, run wherever the notebook runs (nbval on solutions/, the release run of
tests/test_course.py)."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tests.prose import NOTEBOOKS, cells_stating_numbers, checked_claims, prose_numbers, table


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.parent.name for p in NOTEBOOKS])
def test_a_notebook_that_states_numbers_checks_them(path):
    nb = nbformat.read(path, as_version=4)
    stating, claims = cells_stating_numbers(nb), checked_claims(nb)
    print(f"{path.parent.name}: {len(claims)} checked claims, {len(stating)} markdown cells stating numbers")
    assert claims or not stating, (f"{path.parent.name} states numbers (cells {stating[:5]}) but checks none: add an "
                                   f"assertion that says what the text says, e.g. assert ..., \"the text above says …\"")


def test_there_are_checked_claims_in_every_notebook():
    print("\n" + table())
    assert len(NOTEBOOKS) >= 16


def test_the_counter_finds_claims_and_numbers():
    nb = new_notebook(cells=[
        new_markdown_cell("# 99 · Demo · 演示"),
        new_markdown_cell("## Part 1 · Tokens · token\n\n### Exercise 1 — count (2 points)\n\nSee notebook 04."),
        new_markdown_cell("The loss falls below 0.1 and accuracy reaches 97 %."),
        new_code_cell("%time x = 1\nloss = 0.05\nassert loss < 0.1, \"the text above says below 0.1\"\n"
                      "assert loss > 0  # no message: not a claim\nassert loss, 'a check of its own'", id="c1"),
    ])
    assert checked_claims(nb) == [("c1", "'the text above says below 0.1'")]
    assert cells_stating_numbers(nb) == [nb.cells[2].id]
    assert prose_numbers("`197` tokens, $x^2$, bug 25, notebooks 06 and 07, (3 points)") == []
    assert prose_numbers("**197** tokens, 1.1e-05 or 25 %") != []
