"""The course website's own Sphinx hooks (loaded by site/conf.py): what Sphinx and myst-nb do not know about the course.

- the start page's notebook table is made from the notebooks that exist in course/ (one row per notebook);
- README.md's sections (the introduction, the two commands, the instructor guide) are copied in at build time,
  so the site never says something the README no longer says;
- an exercise stub's `NotImplementedError` traceback is replaced by one line saying it is an exercise; any
  other error in an executed notebook stops the build, naming the page and the error.

Pages ask for generated text with a marker line: `<!-- mmcourse: notebook-table -->` or
`<!-- mmcourse: readme "## The two commands" -->` (the README section whose heading starts so).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from docutils import nodes
from sphinx.errors import ExtensionError

REPO = Path(__file__).resolve().parent.parent
MARKER = re.compile(r'^<!-- mmcourse: (notebook-table|readme "([^"]*)") -->$', re.M)
STUB_ERROR = "NotImplementedError"
STUB_NOTE = ("练习：这个单元在你写完上面的练习之前会抛出 NotImplementedError（请在 JupyterLab 里运行并作答）。 "
             "Exercise: this cell raises NotImplementedError until the exercise is solved (run it in JupyterLab).")


# --- the notebook table ------------------------------------------------------------------------------------

def course_notebooks(course: Path = REPO / "course") -> list[Path]:
    """The student notebooks course/NN_topic/*.ipynb, in course order (the order of the folder names)."""
    return sorted(course.glob("[0-9][0-9]_*/*.ipynb"))


def notebook_row(path: Path, course: Path = REPO / "course") -> dict[str, str]:
    """What the table says of one notebook, read from its first cell: number, title, interview question, time.

    The first cell opens `# NN · Title`, may quote the interview question in bold (`**问题 2：…**`) and
    states `**Estimated time**: 45 minutes.`; what a notebook does not say is shown as "—".
    """
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    first = "".join(cells[0]["source"]) if cells else ""
    heading = re.search(r"^#\s+(.+)$", first, re.M)
    title = heading.group(1).strip() if heading else path.stem
    title = re.sub(r"^\d\d\s*[·.:-]\s*", "", title).split(" · ")[0]  # the English title (the page shows both)
    question = re.search(r"\*\*(问题[^*]+)\*\*", first)
    time = re.search(r"\*\*Estimated time\*\*:\s*([^.\n]+)", first)
    return {"number": path.parent.name[:2], "title": title, "docname": path.relative_to(course.parent).with_suffix("").as_posix(),
            "question": question.group(1).strip() if question else "—", "time": time.group(1).strip() if time else "—"}


def notebook_table(course: Path = REPO / "course") -> str:
    """A Markdown table of every student notebook, linked by docname (course/NN_topic/NN_topic under site/)."""
    rows = ["| NN | notebook | interview question 面试题 | estimated time |", "|---|---|---|---|"]
    for path in course_notebooks(course):
        row = notebook_row(path, course)
        rows.append(f"| {row['number']} | {{doc}}`{row['title']} </{row['docname']}>` | {row['question']} | {row['time']} |")
    return "\n".join(rows)


# --- README sections ---------------------------------------------------------------------------------------

def readme_section(heading: str, readme: Path = REPO / "README.md") -> str:
    """The README text under the level-2 heading that starts with `heading` ("" = the text before the first
    level-2 heading, title excluded), headings lifted one level so the page's own `#` title stays on top."""
    lines, found, inside, fenced = readme.read_text(encoding="utf-8").splitlines(), False, heading == "", False
    out = []
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            if inside and (found or heading == ""):
                break
            inside = found = line.startswith(heading) if heading else False
            continue
        if not fenced and line.startswith("# ") and heading == "":
            continue
        if heading == "" and "README.zh-CN.md" in line:  # the README's language switch: the site has its own note
            continue
        if inside:
            out.append(line[1:] if not fenced and line.startswith("###") else line)
    if heading and not found:
        raise ExtensionError(f"README.md has no section whose heading starts with {heading!r}: "
                             "fix the marker in site/ or the README heading")
    return "\n".join(out).strip()


def fill_markers(app, docname: str, source: list[str]) -> None:
    """Sphinx's source-read event: replace each marker line of a page by the text it names."""
    def replace(match: re.Match) -> str:
        return notebook_table() if match.group(1) == "notebook-table" else readme_section(match.group(2))

    source[0] = MARKER.sub(replace, source[0])


# --- exercise stubs ----------------------------------------------------------------------------------------

def _error_name(traceback: str) -> str:
    """The exception's name from the last line of an IPython traceback ("NotImplementedError: …" → its name)."""
    last = [line for line in traceback.strip().splitlines() if line.strip()][-1:] or [""]
    return re.split(r"[:\s]", last[0].strip(), maxsplit=1)[0]


def replace_stub_errors(app, doctree: nodes.document) -> None:
    """Sphinx's doctree-read event: stub tracebacks become a one-line note; any other error fails the build."""
    docname = app.env.docname
    for block in list(doctree.findall(nodes.literal_block)):
        if "traceback" not in block["classes"]:
            continue
        name = _error_name(block.astext())
        if name != STUB_ERROR:
            raise ExtensionError(f"{docname}: a cell raised {name}, not an exercise stub's {STUB_ERROR}:\n"
                                 f"{block.astext()[-2000:]}\nfix the notebook (solutions/, then `make course`)")
        note = nodes.paragraph(STUB_NOTE, STUB_NOTE)
        block.replace_self(note)
        note["classes"] = ["mmcourse-stub-note"]  # replace_self copies the traceback's classes: drop them


def setup(app):
    app.connect("source-read", fill_markers)
    app.connect("doctree-read", replace_stub_errors)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
