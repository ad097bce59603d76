import time

import pytest
import torch

from mmcourse import runtime


def test_cpu_when_no_gpu_and_no_override(monkeypatch):
    monkeypatch.delenv(runtime.DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    assert runtime.get_device() == torch.device("cpu")


def test_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv(runtime.DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.get_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: True)
    assert runtime.get_device().type == "mps"


def test_environment_override(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv(runtime.DEVICE_ENV, "cpu")
    assert runtime.get_device() == torch.device("cpu")


def test_bad_override_is_an_error_not_a_fallback(monkeypatch):
    monkeypatch.setenv(runtime.DEVICE_ENV, "gpu")
    with pytest.raises(ValueError, match="MMCOURSE_DEVICE"):
        runtime.get_device()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(runtime.DEVICE_ENV, "cuda")
    with pytest.raises(RuntimeError, match="no CUDA"):
        runtime.get_device()


def test_autocast_is_a_no_op_on_cpu():
    assert runtime.autocast_dtype("cpu") is None
    with runtime.autocast("cpu"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_autocast_picks_bf16_on_capable_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert runtime.autocast_dtype("cuda") is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert runtime.autocast_dtype("cuda") is None
    assert runtime.autocast_dtype("mps") is None


def test_seed_everything_is_reproducible():
    runtime.seed_everything(7)
    a = torch.randn(5)
    g = runtime.seed_everything(7)
    assert torch.equal(a, torch.randn(5))
    assert torch.equal(torch.randn(3, generator=g), torch.randn(3, generator=torch.Generator().manual_seed(7)))
    with pytest.raises(ValueError):
        runtime.seed_everything(-1)


def test_is_offline_from_environment(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert runtime.is_offline()


def test_hub_check_is_fast_without_network(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://nonexistent.invalid")
    start = time.perf_counter()
    assert runtime.is_offline()
    assert time.perf_counter() - start < 3


def test_describe():
    report = runtime.describe()
    assert report["device"] in ("cpu", "cuda", "mps") and report["torch"] == torch.__version__
