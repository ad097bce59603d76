"""The course as a website (`make site` → build/site/html), checked as built and in a real headless Chromium.

Building executes every notebook (minutes), so these tests never build: they read the site that
`make site` left in build/site/html. Without it they skip, saying so, unless MMCOURSE_REQUIRE_SITE=1
(`.ci/run` builds the site first and sets it), when a missing site fails.

- every student notebook of course/ has its page, in course order, and the page shows executed outputs;
- no solution line and no hidden-test line of solutions/ appears anywhere in the site (the same lines the
  release leak test of tests/test_course.py looks for in course/);
- exercise stubs show a one-line note, never a traceback;
- nothing is fetched from the network: no http(s) script, style sheet, font or image;
- every page carries the language note, and the page fonts fall back to CJK fonts;
- in Chromium over file://: the start page's links all resolve, images load (natural width > 0),
  notebook 04 has audio players whose sound decodes, MathJax renders, the browser requested nothing
  but local files; screenshots go to build/site-screenshots/.
"""

from __future__ import annotations

import functools
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from mmcourse import classroom
from tests.conftest import require_browser
from tests.test_course import ASSIGNMENTS, MARKERS, private_lines, read

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "build" / "site" / "html"
SCREENSHOTS = REPO / "build" / "site-screenshots"
NOTEBOOKS = sorted((REPO / "course").glob("[0-9][0-9]_*/*.ipynb"))
CJK_FONTS = ("Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei")
LANGUAGE_NOTE = "中文：本课程的标题与练习说明为中英双语"


@pytest.fixture(scope="module")
def site() -> Path:
    if not (SITE / "index.html").is_file():
        message = f"the course website is not built ({SITE / 'index.html'} is missing): run `make site` first"
        if os.environ.get("MMCOURSE_REQUIRE_SITE") == "1":
            pytest.fail(message + "; MMCOURSE_REQUIRE_SITE=1 requires it")
        pytest.skip(message)
    return SITE


def page_of(notebook: Path, site: Path = SITE) -> Path:
    return site / notebook.relative_to(REPO).with_suffix(".html")


def pages(site: Path) -> list[Path]:
    """The site's pages (not the theme's HTML snippets in _static/)."""
    return sorted(p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)


class _Text(HTMLParser):
    """The text of an HTML page, as a browser would show it (code blocks keep their lines)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data):
        self.parts.append(data)

    def handle_starttag(self, tag, attrs):
        if tag in {"p", "div", "br", "li", "tr", "pre", "h1", "h2", "h3", "h4", "td", "th"}:
            self.parts.append("\n")


def page_text(path: Path) -> str:
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8"))
    return "".join(parser.parts)


# --- the site's hooks (site/mmcourse_site.py), no build needed --------------------------------------------------

@pytest.fixture(scope="module")
def hooks():
    pytest.importorskip("sphinx", reason='the site extra is not installed (pip install -e ".[site]")')
    import importlib.util

    spec = importlib.util.spec_from_file_location("mmcourse_site", REPO / "site" / "mmcourse_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebook_table_is_made_from_the_notebooks_that_exist(hooks, tmp_path):
    table = hooks.notebook_table().splitlines()[2:]
    assert [row.split("|")[1].strip() for row in table] == [nb.parent.name[:2] for nb in NOTEBOOKS]
    audio = hooks.notebook_row(_notebook("04"))
    assert audio["title"] == "Audio encoding" and audio["question"].startswith("问题") and audio["time"] == "45 minutes"
    assert audio["docname"] == "course/04_audio_encoding/04_audio_encoding"
    new = tmp_path / "course" / "14_capstone" / "14_capstone.ipynb"
    new.parent.mkdir(parents=True)
    new.write_text('{"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# 14 · 综合项目 Capstone"]}]}')
    rows = hooks.notebook_table(tmp_path / "course").splitlines()[2:]
    assert rows == ["| 14 | {doc}`综合项目 Capstone </course/14_capstone/14_capstone>` | — | — |"]


def test_readme_sections_are_copied_with_headings_lifted(hooks):
    guide = hooks.readme_section("## Instructor guide")
    assert guide.splitlines()[0].startswith("The course is an ordinary") and "\n## 1. Release an assignment" in guide
    assert "## Tests and benchmarks" not in guide and "make test" in hooks.readme_section("## The two commands")
    assert hooks.readme_section("").startswith("A notebook course")
    with pytest.raises(Exception, match="README.md has no section whose heading starts with '## Nope'"):
        hooks.readme_section("## Nope")


def test_stub_tracebacks_become_notes_and_other_errors_fail_the_build(hooks):
    from types import SimpleNamespace

    from docutils import nodes
    from docutils.utils import new_document
    from sphinx.errors import ExtensionError

    def doctree(traceback: str):
        document = new_document("page")
        document += nodes.literal_block(traceback, traceback, classes=["output", "traceback"])
        return document

    app = SimpleNamespace(env=SimpleNamespace(docname="course/01_x/01_x"))
    stub = doctree("Cell In[3], line 4\n----> 4 raise NotImplementedError()\n\nNotImplementedError: \n")
    hooks.replace_stub_errors(app, stub)
    [note] = stub.children
    assert isinstance(note, nodes.paragraph) and note["classes"] == ["mmcourse-stub-note"]
    with pytest.raises(ExtensionError, match="course/01_x/01_x: a cell raised ValueError"):
        hooks.replace_stub_errors(app, doctree("----> 1 raise ValueError('boom')\n\nValueError: boom"))


# --- the built site ------------------------------------------------------------------------------------------

def test_every_notebook_has_a_page_in_course_order(site):
    assert NOTEBOOKS, "no notebooks in course/"
    missing = [str(page_of(nb).relative_to(site)) for nb in NOTEBOOKS if not page_of(nb).is_file()]
    assert not missing, f"notebooks without a page: {missing}; run `make site` again"
    index = (site / "index.html").read_text(encoding="utf-8")
    positions = [index.find(page_of(nb).relative_to(site).as_posix()) for nb in NOTEBOOKS]
    assert -1 not in positions, "the start page does not link every notebook"
    assert positions == sorted(positions), "the start page lists the notebooks out of course order"
    assert (site / "instructor.html").is_file() and "nbgrader" in page_text(site / "instructor.html")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_notebook_page_shows_executed_outputs_and_no_traceback(site, notebook):
    html = page_of(notebook).read_text(encoding="utf-8")
    assert 'class="cell_output' in html, f"{notebook.name}: the page shows no output: was it executed?"
    assert not re.search(r'class="[^"]*\b(traceback|highlight-ipythontb)\b', html), \
        f"{notebook.name}: the page shows a traceback (only stub errors are allowed, and they become a note)"
    stubs = sum("raise NotImplementedError" in "".join(c.source) for c in read(notebook).cells)
    if stubs:
        assert "mmcourse-stub-note" in html, f"{notebook.name} has {stubs} exercise stubs but no stub note"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_page_shows_every_figure_player_and_stub_of_the_executed_notebook(site, notebook):
    """What the build's kernel produced (the execution cache holds the executed notebook) is on the page."""
    jupyter_cache = pytest.importorskip("jupyter_cache", reason='the site extra is not installed (pip install -e ".[site]")')
    cache = jupyter_cache.get_cache(site.parent / ".jupyter_cache")
    try:
        record = cache.match_cache_notebook(read(notebook))
    except KeyError:
        pytest.fail(f"{notebook.name} is not in the execution cache: the site is older than the notebook; run `make site`")
    outputs = [out for cell in cache.get_cache_bundle(record.pk).nb.cells for out in cell.get("outputs", [])]
    figures = sum("image/png" in out.get("data", {}) for out in outputs)
    players = sum("<audio" in str(out.get("data", {}).get("text/html", "")) for out in outputs)
    errors = sum(out.output_type == "error" for out in outputs)
    html = page_of(notebook).read_text(encoding="utf-8")
    assert len(re.findall(r"<img\b", html)) >= figures, f"{notebook.name}: {figures} figures were drawn, fewer are on the page"
    assert html.count("<audio") == players, f"{notebook.name}: {players} audio players were made, the page has {html.count('<audio')}"
    assert html.count('class="mmcourse-stub-note"') == errors, f"{notebook.name}: {errors} stub errors, not as many notes"


@functools.cache
def released_lines() -> frozenset[str]:
    """Every line of every student notebook: a secret of one notebook may be public code in another
    (`g = torch.Generator().manual_seed(1)`), and then it is no secret."""
    return frozenset(line.strip() for nb in NOTEBOOKS for cell in read(nb).cells for line in cell.source.splitlines())


@functools.cache
def site_lines(site: Path) -> dict[str, frozenset[str]]:
    """Each text file of the site → its lines as a reader sees them (the text of a page, the raw text of the rest)."""
    found = {}
    for path in sorted(site.rglob("*")):
        if path.suffix == ".html":
            text = page_text(path)
        elif path.suffix in {".js", ".txt", ".json", ".ipynb", ".md", ".py", ".css"}:
            text = path.read_text(encoding="utf-8", errors="replace")
        else:
            continue
        found[str(path.relative_to(site))] = frozenset(line.strip() for line in text.splitlines())
    return found


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_no_solution_or_hidden_test_in_the_site(site, name):
    source = read(classroom.notebook_path(REPO, "solutions", name))
    secrets = private_lines(source, (classroom.SOLUTION_BEGIN, classroom.SOLUTION_END),
                            (classroom.HIDDEN_BEGIN, classroom.HIDDEN_END)) - released_lines()
    graded = any(c.metadata.get("nbgrader", {}).get("grade") for c in source.cells)
    assert secrets or not graded, "found no solution or hidden-test lines to look for"
    found = {}
    for path, lines in site_lines(site).items():
        for marker in MARKERS:  # as a line of code (the instructor guide names them in its prose)
            assert marker not in lines, f"{marker!r} in {path}"
        for line in secrets & lines:
            found.setdefault(line, path)
    assert not found, f"solution or hidden-test lines of solutions/{name} in the site: {list(found.items())[:5]}"


URL_ATTRIBUTE = re.compile(r'<(script|link|img|audio|source|iframe|video)\b[^>]*?\b(?:src|href)="(https?:)?//[^"]*"', re.I)
CSS_URL = re.compile(r'(?:url\(\s*["\']?|@import\s+["\'])(https?:)?//', re.I)


def test_nothing_is_fetched_from_the_network(site):
    remote = []
    for path in pages(site):
        for match in URL_ATTRIBUTE.finditer(path.read_text(encoding="utf-8")):
            if not (match.group(1) == "link" and re.search(r'rel="(canonical|next|prev|index|search)"', match.group(0))):
                remote.append(f"{path.relative_to(site)}: {match.group(0)[:120]}")
    for path in site.rglob("*.css"):
        remote += [f"{path.relative_to(site)}: {m.group(0)}" for m in CSS_URL.finditer(path.read_text(errors="replace"))]
    assert not remote, f"the site loads from the network (it must work offline): {remote[:5]}"
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax is not bundled (sphinx-mathjax-offline)"


def test_language_note_and_cjk_fonts(site):
    without = [str(p.relative_to(site)) for p in pages(site) if LANGUAGE_NOTE not in p.read_text(encoding="utf-8")]
    assert not without, f"pages without the language note: {without[:5]}"
    css = (site / "_static" / "mmcourse.css").read_text(encoding="utf-8")
    for font in CJK_FONTS:
        assert f'"{font}"' in css, f"the page fonts do not fall back to {font}"


# --- in a real browser ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    chromium, chromedriver = require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(60)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def open_page(driver, path: Path, screenshot: str):
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return [...document.images].every(i => i.complete)"))
    note = driver.execute_script("return document.querySelector('.bd-header-announcement')?.innerText || ''")
    assert LANGUAGE_NOTE in note, f"{path.name}: the language note is not shown on top of the page"
    requested = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    remote = [url for url in requested if not url.startswith(("file:", "data:", "blob:"))]
    assert not remote, f"{path.name} requested from the network: {remote[:5]}"
    driver.save_screenshot(str(SCREENSHOTS / screenshot))
    return driver


def broken_images(driver) -> list[str]:
    return driver.execute_script("return [...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.src)")


def test_start_page_links_resolve(browser, site):
    open_page(browser, site / "index.html", "index.png")
    links = browser.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.href)")
    local = {unquote(urlparse(url).path) for url in links if url.startswith("file:")}
    assert len(local) > len(NOTEBOOKS), f"the start page links only {len(local)} local pages"
    dead = sorted(p for p in local if not Path(p).exists())
    assert not dead, f"links on the start page that lead nowhere: {dead[:5]}"
    assert not broken_images(browser), f"images that did not load on the start page: {broken_images(browser)}"
    fonts = browser.execute_script("return getComputedStyle(document.querySelector('h1')).fontFamily")
    assert all(font in fonts for font in CJK_FONTS), f"the headings' fonts have no CJK fallback: {fonts}"


def _notebook(prefix: str) -> Path:
    found = [nb for nb in NOTEBOOKS if nb.parent.name.startswith(prefix)]
    assert found, f"no notebook {prefix}_* in course/"
    return found[0]


def test_image_notebook_shows_its_figures(browser, site):
    open_page(browser, page_of(_notebook("03")), "03_image_encoding.png")
    count = browser.execute_script("return document.querySelectorAll('.cell_output img').length")
    assert count >= 3, f"notebook 03's page shows {count} figures; expected its images, patches and maps"
    browser.execute_script("document.querySelector('.cell_output img').scrollIntoView()")
    browser.save_screenshot(str(SCREENSHOTS / "03_image_encoding_figure.png"))
    assert not broken_images(browser), f"images that did not load: {broken_images(browser)[:3]}"


def test_audio_notebook_has_players_that_play(browser, site):
    from selenium.webdriver.support.ui import WebDriverWait

    open_page(browser, page_of(_notebook("04")), "04_audio_encoding.png")
    assert browser.execute_script("return document.querySelectorAll('audio').length") >= 1, \
        "notebook 04's page has no audio player"
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('audio')].every(a => a.readyState >= 1)"),
        message="the audio players did not load their sound")
    durations = browser.execute_script("return [...document.querySelectorAll('audio')].map(a => a.duration)")
    assert all(d > 0.1 for d in durations), f"audio players with no sound: durations {durations}"
    assert not broken_images(browser), f"images that did not load: {broken_images(browser)[:3]}"


def test_equations_are_rendered_by_the_bundled_mathjax(browser, site):
    from selenium.webdriver.support.ui import WebDriverWait

    open_page(browser, page_of(_notebook("01")), "01_what_is_a_multimodal_llm.png")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.querySelectorAll('mjx-container').length > 0"),
                                     message="MathJax rendered no equation on notebook 01's page")
