"""Prose checked against output: the claims a notebook's text makes about what its cells print.

A markdown sentence that states a number or an outcome of a following cell ("both give the same number", "the loss
falls below 0.1", "accuracy ≈ 97 %") is checked by an assertion in the cell that computes it, saying what the text
says — the reader sees it, and the notebook fails to run (nbval, the release run) when the text and the output part:

    assert abs(a - b) < 1e-6, "the text above says both give the same number"

A **checked claim** is an `assert` in an ungraded code cell whose message mentions "the text" (or "the sentence",
"the recap").
tests/test_prose.py requires at least one in every notebook whose prose states numbers.

    python -m tests.prose       prints, per notebook, the checked claims and the markdown cells that state numbers
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "solutions").glob("[0-9][0-9]_*/*.ipynb"))

SAYS = re.compile(r"\bthe (text|sentence|recap)\b", re.I)
# A number in running prose: digits that are not part of a heading, an exercise title, a points count, an
# identifier, a code span, a formula, a notebook or bug reference.
_STRIP = [
    (re.compile(r"```.*?```", re.S), " "),       # fenced code
    (re.compile(r"`[^`]*`"), " "),                 # inline code
    (re.compile(r"\$\$.*?\$\$|\$[^$]*\$", re.S), " "),  # formulas
    (re.compile(r"^#.*$", re.M), " "),            # headings (parts, exercises)
    (re.compile(r"\(\d+ points?\)|\b(notebooks?|bugs?|parts?|cells?|exercises?|snippets?|questions?|Q)\s*\d+"
                r"(\s*(–|-|and|,)\s*\d+)*", re.I), " "),
    (re.compile(r"\*\*\d+\*\*"), " 0 "),           # bold numbers stay numbers
]
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?(?:\s*%)?(?![\w])")


def _code(cell) -> str:
    """The cell's Python (IPython magics and shell lines blanked)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines())


def graded(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade") or meta.get("solution"))


def checked_claims(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(cell id, message) of every assertion that checks a claim of the text, in ungraded code cells."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "code" or graded(cell):
            continue
        for node in ast.walk(ast.parse(_code(cell))):
            if isinstance(node, ast.Assert) and node.msg is not None and SAYS.search(ast.unparse(node.msg)):
                found.append((cell.id, ast.unparse(node.msg)))
    return found


def prose_numbers(source: str) -> list[str]:
    """The numbers a markdown cell states in its running prose."""
    text = source
    for pattern, replacement in _STRIP:
        text = pattern.sub(replacement, text)
    return NUMBER.findall(text)


def cells_stating_numbers(nb: nbformat.NotebookNode) -> list[str]:
    """Ids of the markdown cells (after the first: title and objectives) whose prose states numbers."""
    return [c.id for c in nb.cells[1:] if c.cell_type == "markdown" and prose_numbers(c.source)]


def table() -> str:
    rows = ["| notebook | markdown cells stating numbers | checked claims |", "|---|---|---|"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        rows.append(f"| {path.parent.name} | {len(cells_stating_numbers(nb))} | {len(checked_claims(nb))} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
    sys.exit(0)
