"""Mutation testing of the exercises: do the tests catch plausible wrong answers, and accept other right ones?

For a notebook of solutions/, one kernel runs the notebook top to bottom. At each answer cell that has variants
(tests/mutants/nbNN.py), before the real answer runs, every variant is defined in its place and then judged twice:
by the **visible** part of its test cells (what `mmcourse validate` runs: the hidden blocks removed) and by the whole
test cells (what grading runs). An answer's test cells are all the graded cells between it and the next answer cell
(notebook 13's quiz is graded in two: the multiple-choice and the numeric answers); a variant passes when every one
of them passes. Then the real answer is defined again and the notebook goes on.

    wrong variants   must fail the hidden tests at least; a mistake the instructions warn about (`warned=True`)
                     must fail the VISIBLE tests, with a message that names it (`names`: a regex); with `loses`,
                     it must lose the points of that test cell
    right variants   written differently from the solution; must pass both

    python -m tests.mutation [NOTEBOOK ...]     prints, per notebook, how many wrong answers each kind of test catches
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from mmcourse import classroom

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Verdict:
    passed: bool
    message: str  # "ename: evalue" of the first error, "" when passed


@dataclass
class Result:
    notebook: str
    answer: str  # the grade_id of the answer cell
    variant: str
    right: bool  # a right variant (else a wrong one)
    warned: bool
    names: str
    visible: Verdict
    hidden: Verdict
    lost: tuple[str, ...] = ()  # grade ids of the test cells whose points the variant loses at grading
    loses: str = ""  # the test cell whose points it must lose ("" when any will do)

    @property
    def ok(self) -> bool:
        """Did the tests judge this variant as they must?"""
        if self.right:
            return self.visible.passed and self.hidden.passed
        if self.loses and self.loses not in self.lost:
            return False
        if self.warned:
            return not self.visible.passed and bool(re.search(self.names, self.visible.message, re.S))
        return not self.hidden.passed


def visible_part(source: str) -> str:
    """A test cell as the release shows it: the hidden block removed (nbgrader's ClearHiddenTests)."""
    return re.sub(rf"^[ \t]*{re.escape(classroom.HIDDEN_BEGIN)}.*?{re.escape(classroom.HIDDEN_END)}[ \t]*\n?", "",
                  source, flags=re.S | re.M)


def pair_tests(cells) -> dict[str, list[int]]:
    """{answer grade_id: indices of its test cells}: the graded cells after the answer cell, up to the next answer
    cell (at least the first graded cell after it)."""
    meta = [c.metadata.get("nbgrader", {}) for c in cells]
    pairs = {}
    for i, m in enumerate(meta):
        if not m.get("solution"):
            continue
        later = [j for j in range(i + 1, len(cells)) if meta[j].get("grade")]
        ends = next((j for j in range(i + 1, len(cells)) if meta[j].get("solution")), len(cells))
        pairs[m["grade_id"]] = [j for j in later if j < ends] or later[:1]
    return pairs


def _run(client: NotebookClient, source: str, index: int) -> Verdict:
    cell = new_code_cell(source)
    client.execute_cell(cell, index)
    for out in cell.outputs:
        if out.output_type == "error":
            return Verdict(False, f"{out.ename}: {out.evalue}")
    return Verdict(True, "")


def _first_failure(verdicts: list[Verdict]) -> Verdict:
    """Passed when every test cell passed; else the first failure's message."""
    return next((v for v in verdicts if not v.passed), Verdict(True, ""))


def run_mutants(name: str, mutants: dict) -> list[Result]:
    """Run notebook `name` of solutions/ once, judging every variant of `mutants` ({answer grade_id: Exercise})."""
    path = classroom.notebook_path(REPO, "solutions", name)
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    grade_ids = {c.metadata.get("nbgrader", {}).get("grade_id"): i for i, c in enumerate(cells)}
    unknown = sorted(set(mutants) - set(grade_ids))
    if unknown:
        raise KeyError(f"{name} has no answer cells {unknown}; check the grade ids in tests/mutants/nb{name[:2]}.py")
    tests = pair_tests(cells)  # answer grade_id → indices of its test cells
    results = []
    client = NotebookClient(nb, kernel_name="python3", timeout=300, allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        for index, cell in enumerate(cells):
            if cell.cell_type != "code":
                continue
            answer = cell.metadata.get("nbgrader", {}).get("grade_id")
            if answer in mutants:
                test_cells = [cells[j] for j in tests[answer]]
                for right, variants in ((False, mutants[answer].wrong), (True, mutants[answer].right)):
                    for variant in variants:
                        defined = _run(client, variant.source, index)
                        assert defined.passed, f"{name} {answer} variant {variant.name!r} does not run: {defined.message}"
                        visible = [_run(client, visible_part(t.source), index) for t in test_cells]
                        hidden = [_run(client, t.source, index) for t in test_cells]
                        lost = tuple(t.metadata.nbgrader["grade_id"] for t, v in zip(test_cells, hidden) if not v.passed)
                        results.append(Result(name, answer, variant.name, right, variant.warned, variant.names,
                                              _first_failure(visible), _first_failure(hidden), lost, variant.loses))
            real = _run(client, classroom.strip_solution_markers(cell.source), index)
            assert real.passed, f"{name} cell {index} fails in the mutation run: {real.message}"
    return results


def table(results: list[Result]) -> str:
    rows = ["| notebook | wrong answers | caught by visible tests | caught only by hidden tests | missed | "
            "right variants accepted | judged as required |", "|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r.notebook for r in results):
        mine = [r for r in results if r.notebook == name]
        wrong, right = [r for r in mine if not r.right], [r for r in mine if r.right]
        visible = sum(not r.visible.passed for r in wrong)
        hidden_only = sum(r.visible.passed and not r.hidden.passed for r in wrong)
        missed = sum(r.hidden.passed for r in wrong)
        accepted = sum(r.visible.passed and r.hidden.passed for r in right)
        rows.append(f"| {name} | {len(wrong)} | {visible} | {hidden_only} | {missed} | {accepted}/{len(right)} | "
                    f"{sum(r.ok for r in mine)}/{len(mine)} |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    from tests.mutants import MUTANTS

    names = argv or list(MUTANTS)
    results = [r for name in names for r in run_mutants(name, MUTANTS[name])]
    print(table(results))
    for r in results:
        if not r.ok:
            print(f"NOT AS REQUIRED: {r.notebook} {r.answer} {'right' if r.right else 'wrong'} {r.variant!r}: "
                  f"visible {r.visible}, hidden {r.hidden}, points lost in {list(r.lost)}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
