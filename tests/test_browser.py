"""JupyterLab with the nbgrader extension, driven by a real headless Chromium (Debian's `chromium`).

A student's JupyterLab, an nbgrader exchange with an assignment released by the instructor: the
Assignment List shows it, Fetch downloads it, and the Validate button on the released notebook
reports the failing exercise. Screenshots are saved in pytest's tmp folder (their paths are printed).

The course's Chinese headings are checked to render as glyphs, not as empty boxes ("tofu"): each
character is drawn on a canvas in the heading's own font and compared with the box a missing glyph gives
(and a control run of the browser with only a Latin font shows the check fails there).

Needs `apt-get install -y chromium chromium-driver fonts-noto-cjk` and `pip install selenium`; skipped
without them unless MMCOURSE_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mmcourse import classroom
from tests.conftest import wait_for_jupyter, require_browser

NAME = "99_demo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A running `jupyter lab` for a student, with NAME released in a temporary nbgrader exchange."""
    chromium, chromedriver = require_browser()
    from tests.test_autograde import demo_source

    base = tmp_path_factory.mktemp("lab")
    exchange, course, student, home = base / "exchange", base / "course", base / "student", base / "home"
    for folder in (exchange, student, home):
        folder.mkdir()
    exchange.chmod(0o777)
    exchange_config = f'c.Exchange.root = {str(exchange)!r}\nc.CourseDirectory.course_id = "mmcourse"\n'
    path = classroom.notebook_path(course, "solutions", NAME)
    path.parent.mkdir(parents=True)
    (course / "nbgrader_config.py").write_text((classroom.repo_root() / "nbgrader_config.py").read_text() + exchange_config)
    import nbformat

    nbformat.write(demo_source(), path)
    api = classroom.open_course(course)
    assert api.generate_assignment(NAME)["success"]
    released = api.release_assignment(NAME)
    assert released["success"], released.get("error")
    (student / "nbgrader_config.py").write_text(exchange_config + "c.Execute.timeout = 60\n")

    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), HF_HUB_OFFLINE="1",
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--ServerApp.token={token}", f"--ServerApp.root_dir={student}", "--LabApp.news_url=",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = open(base / "jupyter.log", "w")
    server = subprocess.Popen(command, cwd=student, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_jupyter(server, url, token, base / "jupyter.log", tries=120)
        yield {"url": url, "token": token, "student": student, "chromium": chromium, "chromedriver": chromedriver,
               "log": base / "jupyter.log", "profile": base / "chromium-profile"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def chrome(chromium: str, chromedriver: str, profile: Path, env: dict | None = None):
    """A headless Chromium driven by selenium; `env` replaces the browser's environment (e.g. its fonts)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--window-size=1400,900", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver, env=env), options=options)
    driver.set_page_load_timeout(60)
    return driver


@pytest.fixture(scope="module")
def browser(lab):
    driver = chrome(lab["chromium"], lab["chromedriver"], lab["profile"])
    yield driver
    driver.quit()


def _wait(driver, condition, seconds=60, what="the page"):
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, seconds, ignored_exceptions=(WebDriverException,)).until(condition)
    except WebDriverException as err:
        raise AssertionError(f"timed out waiting for {what}; page text:\n{driver.find_element('tag name', 'body').text[:2000]}") from err


def _click_text(driver, css: str, text: str):
    def find(d):
        for element in d.find_elements("css selector", css):
            if element.is_displayed() and element.text.strip() == text:
                return element
        return False

    _wait(driver, find, what=f"{text!r} ({css})").click()


def test_assignment_list_fetch_and_validate(lab, browser, tmp_path):
    url, token = lab["url"], lab["token"]
    browser.get(f"{url}/lab?token={token}")
    _wait(browser, lambda d: d.find_elements("css selector", ".lm-MenuBar-itemLabel"), what="JupyterLab's menu bar")
    _click_text(browser, ".lm-MenuBar-itemLabel", "Nbgrader")
    _click_text(browser, ".lm-Menu-itemLabel", "Assignment List")
    _wait(browser, lambda d: NAME in d.find_element("id", "released_assignments_list").text,
          what="the released assignment in the Assignment List")
    shot = tmp_path / "assignment_list.png"
    browser.save_screenshot(str(shot))
    print(f"\nscreenshot: {shot}")
    _click_text(browser, "#released_assignments_list button", "Fetch")
    _wait(browser, lambda d: NAME in d.find_element("id", "fetched_assignments_list").text,
          what="the fetched assignment")
    assert (lab["student"] / NAME / f"{NAME}.ipynb").is_file(), "Fetch did not download the notebook"

    browser.get(f"{url}/lab/tree/{NAME}/{NAME}.ipynb?token={token}")
    _wait(browser, lambda d: [b for b in d.find_elements("css selector", ".validate-button") if b.is_displayed()],
          what="the nbgrader Validate button")
    _wait(browser, lambda d: "Idle" in d.find_element("tag name", "body").text or
          d.find_elements("css selector", ".jp-Notebook-cell"), what="the notebook")
    next(b for b in browser.find_elements("css selector", ".validate-button") if b.is_displayed()).click()
    dialog = _wait(browser, lambda d: [x for x in d.find_elements("css selector", ".jp-Dialog")
                                       if "Validation Results" in x.text], seconds=120, what="the validation dialog")[0]
    text = dialog.text
    shot = tmp_path / "validate.png"
    browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    assert "NotImplementedError" in text, f"the released stub must fail validation; the dialog says:\n{text}"
    assert shot.stat().st_size > 10_000


# ---------------------------------------------------------------- Chinese glyphs render (not tofu)

ZH_NOTEBOOK = "01_what_is_a_multimodal_llm"

# In the page: find the first rendered heading with Chinese, draw each of its Chinese characters on a canvas
# in the heading's computed font, and compare with what a character no font has (U+E000, U+10FFFD) gives.
GLYPH_CHECK = r"""
const heading = [...document.querySelectorAll('.jp-RenderedMarkdown h1, .jp-RenderedMarkdown h2')]
  .find(e => /[\u4e00-\u9fff]/.test(e.textContent));
if (!heading) return null;
const family = getComputedStyle(heading).fontFamily;
const chars = [...new Set([...heading.textContent].filter(c => /[\u4e00-\u9fff]/.test(c)))];
const canvas = document.createElement('canvas');
canvas.width = 64; canvas.height = 64;
const ctx = canvas.getContext('2d', {willReadFrequently: true});
const draw = ch => {
  ctx.clearRect(0, 0, 64, 64); ctx.fillStyle = '#000'; ctx.textBaseline = 'top';
  ctx.font = '48px ' + family; ctx.fillText(ch, 4, 4); return canvas.toDataURL();
};
const missing = [draw('\ue000'), draw('\u{10fffd}'), draw(' ')];
const shots = chars.map(draw);
return {text: heading.textContent, family, chars: chars.join(''), distinct: new Set(shots).size,
        like_missing: chars.filter((c, i) => missing.includes(shots[i])).join('')};
"""


@pytest.fixture(scope="module")
def zh_lab(tmp_path_factory):
    """JupyterLab as `make lab` starts it (LAB_FLAGS), serving a copy of a course notebook with Chinese headings."""
    import shutil

    from tests.test_lab_settings import lab_flags, start_lab

    chromium, chromedriver = require_browser()
    base = tmp_path_factory.mktemp("zh-lab")
    root, home = base / "root", base / "home"
    home.mkdir()
    shutil.copytree(classroom.repo_root() / "course" / ZH_NOTEBOOK, root)
    with start_lab(root, home, lab_flags()) as (url, token):
        yield {"url": url, "token": token, "chromium": chromium, "chromedriver": chromedriver, "base": base}


def _glyphs(zh_lab, profile: str, env: dict | None, shot: Path) -> dict:
    driver = chrome(zh_lab["chromium"], zh_lab["chromedriver"], zh_lab["base"] / profile, env=env)
    try:
        driver.get(f"{zh_lab['url']}/lab/tree/{ZH_NOTEBOOK}.ipynb?token={zh_lab['token']}")
        result = _wait(driver, lambda d: d.execute_script(GLYPH_CHECK), seconds=120,
                       what="a rendered markdown heading with Chinese")
        driver.save_screenshot(str(shot))
        print(f"\nscreenshot: {shot}\n{result}")
        return result
    finally:
        driver.quit()


def test_chinese_headings_render_as_glyphs(zh_lab, tmp_path):
    from tests.conftest import require_cjk_font

    require_cjk_font()
    result = _glyphs(zh_lab, "profile-cjk", None, tmp_path / "zh_heading.png")
    assert len(result["chars"]) >= 3, result
    assert not result["like_missing"], (f"these characters of {result['text']!r} render as empty boxes (tofu): "
                                        f"{result['like_missing']}; install a CJK font (apt-get install fonts-noto-cjk)")
    assert result["distinct"] == len(result["chars"]), f"different characters drew the same picture: {result}"
    assert (tmp_path / "zh_heading.png").stat().st_size > 10_000


def test_the_glyph_check_fails_without_a_cjk_font(zh_lab, tmp_path):
    """The control: the same browser, allowed only the DejaVu fonts (a fontconfig file), shows tofu, and the check sees it."""
    dejavu = Path("/usr/share/fonts/truetype/dejavu")
    if not dejavu.is_dir():
        pytest.skip("the control needs Debian's DejaVu fonts in /usr/share/fonts/truetype/dejavu")
    config = tmp_path / "fonts.conf"
    config.write_text(f"<?xml version='1.0'?>\n<!DOCTYPE fontconfig SYSTEM 'fonts.dtd'>\n<fontconfig>"
                      f"<dir>{dejavu}</dir><cachedir>{tmp_path / 'fc-cache'}</cachedir></fontconfig>\n")
    env = dict(os.environ, FONTCONFIG_FILE=str(config))
    result = _glyphs(zh_lab, "profile-latin", env, tmp_path / "zh_heading_tofu.png")
    assert result["like_missing"] or result["distinct"] < len(result["chars"]), \
        f"without a CJK font the check still passed, so it cannot fail: {result}"
