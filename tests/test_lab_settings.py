"""`make lab`'s JupyterLab suits an offline classroom: no news fetching, no update check, Chinese selectable.

A real `jupyter lab` is started headless with the flags of the Makefile's LAB_FLAGS line, and its settings and
translations APIs are asked what a learner's browser would get. A control run without those flags shows that
the overrides are what changes the answer (JupyterLab's own default is to ask about news).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time

from tests.conftest import wait_for_jupyter
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTIFICATION = "@jupyterlab/apputils-extension:notification"


def lab_flags() -> list[str]:
    """The Makefile's LAB_FLAGS, with $(CURDIR) as the repository."""
    line = re.search(r"^LAB_FLAGS := (.*)$", (REPO / "Makefile").read_text(), re.M)
    assert line, "the Makefile has no LAB_FLAGS line (make lab's JupyterLab settings)"
    return shlex.split(line.group(1).replace("$(CURDIR)", str(REPO)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start_lab(root: Path, home: Path, flags: list[str]):
    """A headless `jupyter lab` serving `root`, its user files in `home`; yields (url, token)."""
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTER_DATA_DIR=str(home / "data"), HF_HUB_OFFLINE="1",
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", *flags]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log_path = home / "jupyter.log"
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_jupyter(server, url, token, log_path)
            yield url, token
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


def effective(setting: dict) -> dict:
    """What the browser uses: the schema's defaults (where overrides land), then the user's own settings."""
    defaults = {key: spec.get("default") for key, spec in setting["schema"]["properties"].items()}
    return {**defaults, **setting.get("settings", {})}


def get_json(url: str, token: str, path: str) -> dict:
    request = urllib.request.Request(f"{url}{path}", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    """What JupyterLab answers with make lab's flags and, as a control, without them."""
    out = {}
    for name, flags in (("course", lab_flags()), ("plain", [])):
        home = tmp_path_factory.mktemp(f"home-{name}")
        with start_lab(REPO / "course", home, flags) as (url, token):
            out[name] = {"notification": get_json(url, token, f"/lab/api/settings/{NOTIFICATION}"),
                         "translations": get_json(url, token, "/lab/api/translations/")}
    return out


def test_the_course_lab_never_fetches_news_nor_checks_for_updates(answers):
    composite = effective(answers["course"]["notification"])
    assert composite["fetchNews"] == "false", f"the news prompt would try the internet: {composite}"
    assert composite["checkForUpdates"] is False, composite


def test_without_the_course_settings_jupyterlab_would_ask_about_news(answers):
    """The control: JupyterLab's default is "none" (ask the learner, who may say yes offline)."""
    assert effective(answers["plain"]["notification"])["fetchNews"] == "none"


def test_chinese_is_selectable(answers):
    languages = answers["course"]["translations"]["data"]
    assert "zh_CN" in languages, (f"Settings → Language offers {sorted(languages)}: install "
                                  "jupyterlab-language-pack-zh-CN (a base dependency of mmcourse)")
    assert "中文" in json.dumps(languages["zh_CN"], ensure_ascii=False)


def test_the_overrides_file_is_valid_json_of_known_settings():
    overrides = json.loads((REPO / ".jupyter/lab/settings/overrides.json").read_text())
    assert set(overrides) == {NOTIFICATION, "@jupyterlab/translation-extension:plugin"}
