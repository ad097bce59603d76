"""The checks that notebook test cells call.

    from mmcourse.grading import check_close, check_shape
    check_shape(tokens, (1, 197, 768), "tokens", hint="14×14 = 196 patches + 1 [CLS] token")
    check_close(pooled, reference, "pooled", atol=1e-5)

A failed check raises `CheckFailed` (an AssertionError) whose message says what was
expected, what came back, and — through `hint` — what usually causes the difference.

Tamper resistance. Test cells run in the learner's kernel, so an answer cell could
redefine `torch.allclose` or `torch.testing.assert_close` to make every comparison pass.
These checks never call those: they use torch functions captured when this module is
first imported and tensor methods of torch's C type (which cannot be reassigned),
refuse tensor subclasses (which can override every operation), and refuse to run while
a torch function/dispatch mode (which can intercept every call) is active.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

# Captured at import time: later reassignments of torch.isclose & co. do not reach us.
_T = torch._C.TensorBase  # a C type: its methods cannot be reassigned
_isclose = torch.isclose
_abs = torch.abs
_sub = torch.sub
_all = torch.all
_any = torch.any
_argmax = torch.argmax
_isfinite = torch.isfinite
_where = torch.where
_zeros_like = torch.zeros_like
_as_tensor = torch.as_tensor
_function_modes = torch._C._len_torch_function_stack
_dispatch_modes = torch._C._len_torch_dispatch_stack
_Tensor = torch.Tensor


class CheckFailed(AssertionError):
    """A graded check failed; the message explains what was expected."""


def _fail(message: str, hint: str = "") -> None:
    raise CheckFailed(message + (f"\nHint: {hint}" if hint else ""))


def _guard() -> None:
    if _function_modes() or _dispatch_modes():
        _fail("a torch function or dispatch mode is active, which could intercept the checks; "
              "remove it (exit the `with` block or restart the kernel) and run the cells again")


def _plain_tensor(value, name: str) -> torch.Tensor:
    if type(value) is not _Tensor:
        if isinstance(value, _Tensor):
            _fail(f"{name} is a {type(value).__name__} (a tensor subclass); return a plain torch.Tensor")
        _fail(f"{name} should be a torch.Tensor, got {type(value).__name__}")
    return value


def _fmt_shape(shape) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_type(value, expected_type, name: str = "result", hint: str = "") -> None:
    """`value` is an instance of `expected_type` (a type or tuple of types)."""
    if not isinstance(value, expected_type):
        names = expected_type.__name__ if isinstance(expected_type, type) else " or ".join(t.__name__ for t in expected_type)
        _fail(f"{name} should be a {names}, got {type(value).__name__}", hint)


def check_shape(tensor, expected: Sequence[int | None], name: str = "result", hint: str = "") -> None:
    """`tensor` has shape `expected`; None in `expected` matches any size in that dimension."""
    _guard()
    tensor = _plain_tensor(tensor, name)
    shape = tuple(_T.size(tensor))
    expected = tuple(expected)
    if len(shape) != len(expected):
        _fail(f"{name} has {len(shape)} dimensions {_fmt_shape(shape)}; expected {len(expected)} dimensions "
              f"{_fmt_shape(expected)}", hint)
    wrong = [i for i, (s, e) in enumerate(zip(shape, expected)) if e is not None and s != e]
    if wrong:
        dims = ", ".join(f"dim {i}: {shape[i]} instead of {expected[i]}" for i in wrong)
        _fail(f"{name} has shape {_fmt_shape(shape)}; expected {_fmt_shape(expected)} ({dims})", hint)


def check_dtype(tensor, expected: torch.dtype, name: str = "result", hint: str = "") -> None:
    """`tensor` has dtype `expected`."""
    _guard()
    tensor = _plain_tensor(tensor, name)
    if _T.dtype.__get__(tensor) != expected:
        _fail(f"{name} has dtype {_T.dtype.__get__(tensor)}; expected {expected}", hint)


def check_close(actual, expected, name: str = "result", atol: float = 1e-5, rtol: float = 1e-4,
                hint: str = "") -> None:
    """`actual` equals `expected` elementwise within |a − e| ≤ atol + rtol·|e| (shapes must match).

    `expected` may be a tensor or a number/nested list; `actual` a tensor or a plain Python int/float
    (a returned accuracy, say), compared as a 0-dim tensor.
    """
    _guard()
    if type(actual) in (int, float):  # exactly int or float: no bool, no subclass with its own __eq__
        actual = _as_tensor(actual, dtype=torch.float64)
    actual = _plain_tensor(actual, name)
    if type(expected) is not _Tensor:
        if isinstance(expected, _Tensor):
            _fail("the reference is a tensor subclass; the test itself is broken")
        expected = _as_tensor(expected, dtype=torch.float64)
    a = _T.to(_T.detach(actual), device="cpu", dtype=torch.float64)
    e = _T.to(_T.detach(expected), device="cpu", dtype=torch.float64)
    a_shape, e_shape = tuple(_T.size(a)), tuple(_T.size(e))
    if a_shape != e_shape:
        _fail(f"{name} has shape {_fmt_shape(a_shape)}; expected {_fmt_shape(e_shape)}", hint)
    if _T.numel(a) == 0:
        return
    finite_a, finite_e = _isfinite(a), _isfinite(e)
    if not bool(_T.item(_all(finite_a))) and bool(_T.item(_all(finite_e))):
        bad = int(_T.item(_T.sum(_T.logical_not(finite_a))))
        _fail(f"{name} contains {bad} NaN or infinite value(s); expected finite numbers", hint)
    ok = _isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    if bool(_T.item(_all(ok))):
        return
    diff = _abs(_sub(a, e))
    diff = _where(ok, _zeros_like(diff), diff)
    flat = int(_T.item(_argmax(_T.reshape(diff, (-1,)))))
    index = tuple(int(i) for i in _unravel(flat, a_shape))
    n_bad = int(_T.item(_T.sum(_T.logical_not(ok))))
    got, want = _T.tolist(_T.reshape(a, (-1,)))[flat], _T.tolist(_T.reshape(e, (-1,)))[flat]
    where = f" at index {index}" if a_shape else ""
    _fail(f"{name} differs from the expected values in {n_bad} of {_T.numel(a)} element(s); "
          f"worst{where}: got {got:.6g}, expected {want:.6g} "
          f"(tolerance atol={atol:g}, rtol={rtol:g})", hint)


def _unravel(flat: int, shape: tuple[int, ...]) -> list[int]:
    index = []
    for size in reversed(shape):
        index.append(flat % size)
        flat //= size
    return list(reversed(index))


def check_equal(actual, expected, name: str = "result", hint: str = "") -> None:
    """`actual == expected` for plain Python values (ints, floats, strings, tuples, lists, dicts).

    Floats are compared exactly only when `expected` is an int; use check_close for tensors.
    """
    _guard()
    if isinstance(actual, _Tensor) or isinstance(expected, _Tensor):
        _fail(f"{name}: check_equal compares Python values; got a tensor (use .item() or .tolist())", hint)
    if type(actual) is bool and type(expected) is not bool or type(expected) is bool and type(actual) is not bool:
        _fail(f"{name} is {actual!r} ({type(actual).__name__}); expected {expected!r} ({type(expected).__name__})", hint)
    if not _same(actual, expected):
        _fail(f"{name} is {actual!r}; expected {expected!r}", hint)


def _same(a, b) -> bool:
    """Structural equality that does not trust user-defined __eq__ of `a`."""
    if isinstance(b, (list, tuple)):
        return type(a) in (list, tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(b, dict):
        return type(a) is dict and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in b)
    if isinstance(b, bool):
        return type(a) is bool and a is b
    if isinstance(b, int):
        return type(a) is int and a == b
    if isinstance(b, float):
        return type(a) in (int, float) and (a == b or (math.isnan(a) and math.isnan(b)))
    if isinstance(b, str):
        return type(a) is str and str.__eq__(a, b)
    return type(a) is type(b) and a == b


def check_true(condition, message: str, hint: str = "") -> None:
    """`condition` is the boolean True (not merely truthy: an object cannot fake it)."""
    _guard()
    if isinstance(condition, _Tensor):
        if _T.numel(condition) != 1:
            _fail("check_true needs a single boolean, got a tensor with several elements; use .all() or .any()")
        condition = bool(_T.item(condition))
    if condition is not True:
        _fail(message, hint)


def check_raises(func, exception: type[BaseException], name: str = "the call", match: str = "", hint: str = "") -> None:
    """Calling `func()` raises `exception` (and its message contains `match`, if given)."""
    try:
        func()
    except exception as err:
        if match and match.lower() not in str(err).lower():
            _fail(f"{name} raised {type(err).__name__}, but its message {str(err)!r} does not mention {match!r}", hint)
        return
    except Exception as err:  # noqa: BLE001 - we report what was raised instead
        _fail(f"{name} raised {type(err).__name__}: {err}; expected {exception.__name__}", hint)
    _fail(f"{name} raised nothing; expected {exception.__name__}", hint)
