"""Shared test settings: offline, single-threaded, deterministic."""

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
