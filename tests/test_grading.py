"""The checks test cells call: they catch wrong answers, teach, and survive tampering."""

import pytest
import torch

from mmcourse import grading
from mmcourse.grading import CheckFailed, check_close, check_equal, check_raises, check_shape, check_true


def test_check_close_passes_and_fails_with_a_teaching_message():
    check_close(torch.tensor([1.0, 2.0]), [1.0, 2.0 + 1e-7])
    with pytest.raises(CheckFailed) as err:
        check_close(torch.tensor([[1.0, 2.0], [3.0, 5.0]]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "pooled",
                    hint="did you divide by the number of real tokens?")
    message = str(err.value)
    assert "pooled" in message and "1 of 4" in message and "(1, 1)" in message and "got 5" in message
    assert "Hint: did you divide" in message


def test_check_close_shape_and_nan():
    with pytest.raises(CheckFailed, match=r"shape \(3,\); expected \(2,\)"):
        check_close(torch.zeros(3), torch.zeros(2))
    with pytest.raises(CheckFailed, match="NaN"):
        check_close(torch.tensor([float("nan")]), torch.tensor([0.0]))


def test_check_shape_names_the_dimension():
    with pytest.raises(CheckFailed, match="dim 1: 196 instead of 197"):
        check_shape(torch.zeros(1, 196, 8), (1, 197, 8), "tokens")
    check_shape(torch.zeros(4, 7), (None, 7))
    with pytest.raises(CheckFailed, match="2 dimensions"):
        check_shape(torch.zeros(4, 7), (4, 7, 1))
    with pytest.raises(CheckFailed, match="torch.Tensor"):
        check_shape([1, 2], (2,))


def test_check_equal_is_strict_about_types():
    check_equal((3000, 1500), (3000, 1500))
    check_equal([3, 3], [3, 3])
    with pytest.raises(CheckFailed):
        check_equal(True, 1)
    with pytest.raises(CheckFailed):
        check_equal("196", 196)
    with pytest.raises(CheckFailed, match="tensor"):
        check_equal(torch.tensor(3), 3)


def test_check_true_and_raises():
    check_true(torch.tensor(True), "ok")
    with pytest.raises(CheckFailed, match="rows must sum"):
        check_true(1, "rows must sum to one")  # truthy is not True
    check_raises(lambda: int("x"), ValueError, match="invalid")
    with pytest.raises(CheckFailed, match="raised nothing"):
        check_raises(lambda: None, ValueError)
    with pytest.raises(CheckFailed, match="TypeError"):
        check_raises(lambda: len(1), ValueError)


class _Liar:
    def __eq__(self, other):
        return True


def test_objects_that_claim_equality_do_not_pass():
    with pytest.raises(CheckFailed):
        check_equal(_Liar(), 197)
    with pytest.raises(CheckFailed):
        check_equal(_Liar(), "abc")


def test_redefining_torch_comparisons_does_not_make_a_wrong_answer_pass(monkeypatch):
    wrong, right = torch.zeros(3), torch.ones(3)
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(torch, "isclose", lambda a, b, **k: torch.ones_like(a, dtype=torch.bool))
    monkeypatch.setattr(torch, "equal", lambda *a, **k: True)
    monkeypatch.setattr(torch.testing, "assert_close", lambda *a, **k: None)
    monkeypatch.setattr(torch, "all", lambda *a, **k: torch.tensor(True))
    monkeypatch.setattr(torch.Tensor, "__sub__", lambda a, b: torch.zeros_like(a))
    with pytest.raises(CheckFailed):
        check_close(wrong, right)
    with pytest.raises(CheckFailed):
        check_shape(torch.zeros(2), (3,))


def test_tensor_subclasses_are_refused():
    class Always(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return torch.tensor(True)

    fake = torch.zeros(3).as_subclass(Always)
    with pytest.raises(CheckFailed, match="subclass"):
        check_close(fake, torch.ones(3))


def test_active_torch_function_modes_are_refused():
    from torch.overrides import TorchFunctionMode

    class Cheat(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.isclose:
                return torch.ones_like(args[0], dtype=torch.bool)
            return func(*args, **(kwargs or {}))

    with Cheat():
        with pytest.raises(CheckFailed, match="mode"):
            check_close(torch.zeros(3), torch.ones(3))
    check_close(torch.ones(3), torch.ones(3))


def test_captured_functions_are_the_originals():
    assert grading._isclose is torch._C._VariableFunctions.isclose


def test_check_close_takes_plain_numbers_but_not_look_alikes():
    check_close(0.75, 0.75, "accuracy")
    check_close(3, torch.tensor(3.0), "count")
    with pytest.raises(CheckFailed, match="accuracy differs"):
        check_close(0.5, 0.75, "accuracy")

    class AlwaysEqual(float):
        def __eq__(self, other):
            return True

    with pytest.raises(CheckFailed, match="should be a torch.Tensor, got AlwaysEqual"):
        check_close(AlwaysEqual(0.1), 0.75, "accuracy")
    with pytest.raises(CheckFailed, match="got bool"):
        check_close(True, 1.0, "flag")
