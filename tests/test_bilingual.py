"""Every notebook speaks both languages where a learner finds their way: English stays the reference, Chinese follows it.

The convention (notebooks 00–13 and every later one, found by globbing solutions/):
- the H1 title is `# NN · English title · 中文标题`;
- every `## ` heading ends with ` · 中文`;
- the learning objectives and the recap: the English list, then a `**中文**` block with the same points;
- every `### Exercise k` section: the English instructions, then a paragraph starting `**练习（中文）：**`.
A Chinese block runs from its marker to the next heading, the next line that starts with `**`, or the cell's end.
Every number in a Chinese block appears in its English counterpart (the numbers come from the same computed facts).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "solutions").glob("[0-9][0-9]_*/*.ipynb"))

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
ZH_BLOCK, ZH_EXERCISE = "**中文**", "**练习（中文）：**"


def numbers(text: str) -> set[str]:
    return set(NUMBER.findall(text))


def _lines(source: str) -> list[str]:
    """The cell's lines with fenced code blanked out (a `## ` inside a code block is no heading)."""
    out, fence = [], False
    for line in source.split("\n"):
        if line.startswith("```"):
            fence = not fence
            out.append("")
        else:
            out.append("" if fence else line)
    return out


def _block_end(lines: list[str], start: int) -> int:
    """Index of the line that ends the Chinese block starting at `start`: a heading, a `**` line, or the end."""
    for j in range(start + 1, len(lines)):
        if lines[j].startswith("#") or lines[j].startswith("**"):
            return j
    return len(lines)


def _check_numbers(where: str, english: str, chinese: str) -> list[str]:
    extra = sorted(numbers(chinese) - numbers(english), key=lambda s: (len(s), s))
    return [f"{where}: the Chinese text has numbers the English does not: {extra}"] if extra else []


def _check_block(where: str, lines: list[str], begin: int, marker: str) -> list[str]:
    """The `marker` block after lines[begin] (the English start): present, Chinese, with the English's numbers."""
    for k in range(begin + 1, len(lines)):
        if lines[k].startswith("#"):
            break
        if lines[k].startswith(marker):
            end = _block_end(lines, k)
            english, chinese = "\n".join(lines[begin:k]), "\n".join(lines[k:end])
            if not any(line.strip() for line in lines[begin + 1:k]):
                return [f"{where}: the {marker} block comes before the English text it translates"]
            if not CJK.search(chinese):
                return [f"{where}: the {marker} block has no Chinese"]
            return _check_numbers(where, english, chinese)
    return [f"{where}: no {marker} block after the English (add the same points in Chinese)"]


def _check_heading(where: str, line: str) -> list[str]:
    english, sep, chinese = line.rpartition(" · ")
    if not sep or not CJK.search(chinese) or CJK.search(english):
        return [f"{where}: {line!r} must end with ' · 中文' after the English heading"]
    return _check_numbers(where, english, chinese)


def bilingual_problems(nb: nbformat.NotebookNode, name: str) -> list[str]:
    """What in notebook `nb` breaks the bilingual convention above (an empty list when nothing does)."""
    problems: list[str] = []
    cells = [c for c in nb.cells if c.cell_type == "markdown"]
    if not cells or cells[0] is not nb.cells[0]:
        return [f"{name}: the notebook must open with a markdown cell (its title)"]
    first = _lines(cells[0].source)
    title = first[0]
    if not (title.startswith(f"# {name[:2]} · ") and title.count(" · ") >= 2):
        problems.append(f"{name}: the title {title!r} must read '# {name[:2]} · English title · 中文标题'")
    else:
        problems += _check_heading(f"{name} title", title[2:])
    objectives = [i for i, line in enumerate(first) if line.startswith("**Learning objectives**")]
    if not objectives:
        problems.append(f"{name}: the first cell has no **Learning objectives**")
    else:
        problems += _check_block(f"{name} learning objectives", first, objectives[0], ZH_BLOCK)
    recaps = 0
    for cell in cells:
        lines = _lines(cell.source)
        for i, line in enumerate(lines):
            where = f"{name} cell {cell.get('id')}"
            if line.startswith("## "):
                problems += _check_heading(where, line[3:].strip())
            if line.startswith("## Recap"):
                recaps += 1
                problems += _check_block(f"{where} recap", lines, i, ZH_BLOCK)
            if re.match(r"### Exercise \d+\b", line):
                problems += _check_block(f"{where} {line[4:].strip()!r}", lines, i, ZH_EXERCISE)
    if recaps != 1:
        problems.append(f"{name}: expected one '## Recap' section, found {recaps}")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.parent.name for p in NOTEBOOKS])
def test_notebook_is_bilingual(path):
    problems = bilingual_problems(nbformat.read(path, as_version=4), path.parent.name)
    assert not problems, "\n".join(problems)


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 14, [p.name for p in NOTEBOOKS]


def _demo(first: str, *more: str) -> nbformat.NotebookNode:
    return new_notebook(cells=[new_markdown_cell(first), *(new_markdown_cell(s) for s in more)])


GOOD_FIRST = ("# 99 · Demo · 演示\n\n**Learning objectives**\n- Count 197 tokens.\n\n**中文**\n- 数出 197 个 token。\n\n"
              "**Estimated time**: 5 minutes.")
GOOD_EXERCISE = ("## Part 1 · Tokens · token 数\n\n### Exercise 1 — count (2 points)\n\nReturn 197.\n\n"
                 "**练习（中文）：** 返回 197（2 分）。")
GOOD_RECAP = "## Recap · 小结\n\n- 197 tokens.\n\n**中文**\n- 197 个 token。"


def test_the_checker_accepts_the_convention():
    assert bilingual_problems(_demo(GOOD_FIRST, GOOD_EXERCISE, GOOD_RECAP), "99_demo") == []


@pytest.mark.parametrize("broken, expected", [
    ((GOOD_FIRST.replace(" · 演示", ""), GOOD_EXERCISE, GOOD_RECAP), "must read '# 99 · English title · 中文标题'"),
    ((GOOD_FIRST.replace("**中文**\n- 数出 197 个 token。\n\n", ""), GOOD_EXERCISE, GOOD_RECAP),
     "learning objectives: no **中文** block"),
    ((GOOD_FIRST.replace("数出 197", "数出 196"), GOOD_EXERCISE, GOOD_RECAP), "numbers the English does not: ['196']"),
    ((GOOD_FIRST, GOOD_EXERCISE.replace(" · token 数", ""), GOOD_RECAP), "must end with ' · 中文'"),
    ((GOOD_FIRST, GOOD_EXERCISE.replace("**练习（中文）：** 返回 197（2 分）。", ""), GOOD_RECAP),
     "no **练习（中文）：** block"),
    ((GOOD_FIRST, GOOD_EXERCISE.replace("（2 分）", "（3 分）"), GOOD_RECAP), "numbers the English does not: ['3']"),
    ((GOOD_FIRST, GOOD_EXERCISE, GOOD_RECAP.replace("\n\n**中文**\n- 197 个 token。", "")), "recap: no **中文** block"),
    ((GOOD_FIRST.replace("**Learning objectives**\n- Count 197 tokens.\n\n**中文**\n- 数出 197 个 token。",
                         "**Learning objectives**\n\n**中文**\n- 数出 197 个 token。\n\n- Count 197 tokens."),
      GOOD_EXERCISE, GOOD_RECAP), "learning objectives: the **中文** block comes before the English"),
    ((GOOD_FIRST, GOOD_EXERCISE), "expected one '## Recap' section, found 0"),
])
def test_the_checker_names_what_is_missing(broken, expected):
    problems = bilingual_problems(_demo(*broken), "99_demo")
    assert any(expected in p for p in problems), problems
