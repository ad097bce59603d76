"""Runs inside the student's kernel while it is graded: undo tampering before each test cell.

nbgrader runs the hidden tests in the student's own kernel, after the student's code. That code
can monkeypatch torch, numpy or mmcourse.grading, redefine the check helpers, shadow builtins,
or hook IPython (input/AST transformers, pre_run_cell events, a custom exception handler that
swallows the test's AssertionError). The grader (mmcourse.classroom.execute.GuardedExecute) therefore
injects, only while grading, two kinds of cells:

    setup   before any student code: imports what the instructor's notebook imports and takes
            a snapshot of it (module and class attributes, function code, builtins, sys hooks,
            the IPython shell's hooks);
    check   before every graded test cell: puts the snapshot back, rebinds the names the test
            cell reads (check helpers, modules) to the pristine objects, deletes user globals
            that shadow builtins, refuses to go on while a thread the notebook started is alive
            (it could patch again), and prints `mmcourse-guard NONCE ok [what it repaired]`.

What a library changed since the snapshot (transformers adds methods to torch.nn.Module, ipykernel
swaps builtins.input) is put back or left alone silently; what notebook code changed (code whose
file is not an installed package: a cell, exec'd text) is undone and reported.

The grader removes these cells afterwards, fails the next test cell when a check cell did not
print its nonce (something stopped it from running), and reports what was repaired.

Limits: everything here runs in the student's process. It stops generic tampering; code written
against this guard's own internals (or C-level tricks through ctypes, or a native thread started
without the threading module) could still fool it. The grades never depend on printed text, only on errors.

This file is sent to the kernel as source text (the kernel may not even be able to import it)
and uses only the standard library at import time.
"""

from __future__ import annotations

import builtins
import importlib
import json
import sys
import types

# Module families whose attributes are snapshotted when the notebook imports them.
PROTECTED_ROOTS = ("torch", "numpy", "mmcourse", "math", "operator", "functools", "itertools", "collections")
# IPython shell attributes that hold hooks a student can use to rewrite or silence later cells.
SHELL_LISTS = ("input_transformers_post", "ast_transformers")
MANAGER_LISTS = ("cleanup_transforms", "line_transforms", "token_transformers")
SYS_HOOKS = ("stdout", "stderr", "displayhook")
VOLATILE_BUILTINS = ("_", "input", "raw_input")  # ipykernel swaps these for every request
ROUTINE_TYPES = (types.FunctionType, types.BuiltinFunctionType, types.MethodDescriptorType,
                 types.WrapperDescriptorType, types.ClassMethodDescriptorType, types.GetSetDescriptorType,
                 types.MemberDescriptorType, classmethod, staticmethod, property)


def _public_module(name: str, roots: set[str]) -> bool:
    parts = name.split(".")
    return parts[0] in roots and not any(p.startswith("_") for p in parts[1:])


def _library_folders() -> tuple[str, ...]:
    import os

    folders = {sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix}
    folders |= {p for p in sys.path if p and os.path.isdir(p)}
    mmcourse = sys.modules.get("mmcourse")
    if mmcourse is not None and getattr(mmcourse, "__file__", None):
        folders.add(os.path.dirname(os.path.dirname(mmcourse.__file__)))
    return tuple(os.path.realpath(f).rstrip("/") + "/" for f in folders)


def student_made(value, library: tuple[str, ...]) -> bool:
    """Was `value` defined by notebook code (a cell, exec'd text) rather than by an installed library?"""
    import os

    def outside(filename: str) -> bool:
        return not filename.startswith("<frozen ") and not os.path.realpath(filename).startswith(library)

    function = getattr(value, "__func__", value)
    if isinstance(function, types.FunctionType):
        return function.__module__ == "__main__" or outside(function.__code__.co_filename)
    if isinstance(function, types.CodeType):
        return outside(function.co_filename)
    kind = value if isinstance(value, type) else type(value)
    if kind.__module__ == "__main__":
        return True
    module = sys.modules.get(kind.__module__)
    filename = getattr(module, "__file__", None)
    return module is None or (filename is not None and outside(filename))


def _restorable(value) -> bool:
    """Attributes worth guarding: code, classes and modules (not data a module may legitimately update)."""
    return isinstance(value, ROUTINE_TYPES) or isinstance(value, (type, types.ModuleType)) or callable(value)


class Guard:
    """A snapshot of the pristine kernel, taken before any student code runs."""

    def __init__(self, bindings: dict[str, str]):
        from IPython import get_ipython

        self.shell = get_ipython()
        self.library = _library_folders()
        self.bindings = {}  # name -> the object the instructor's notebook binds it to
        for name, target in bindings.items():
            try:
                self.bindings[name] = _resolve(target)
            except Exception:  # an optional import the notebook guards with try/except
                pass
        roots = {m.__name__.split(".")[0] for m in self._binding_modules()} & set(PROTECTED_ROOTS)
        roots |= {r for r in ("torch", "numpy") if r in sys.modules}
        self.modules = {name: module for name, module in list(sys.modules.items())
                        if module is not None and _public_module(name, roots)}
        self.attrs = []  # (owner, {name: value}, is_class)
        self.codes = {}  # function -> (__code__, __defaults__, __kwdefaults__)
        seen_classes = set()
        for module in self.modules.values():
            self._snapshot(module, is_class=False)
            for value in list(vars(module).values()):
                if isinstance(value, type) and id(value) not in seen_classes and \
                        _public_module(getattr(value, "__module__", "") or "", roots):
                    seen_classes.add(id(value))
                    self._snapshot(value, is_class=True)
        self._snapshot(builtins, is_class=False, everything=True)
        self.hooks = [self.shell, self.shell.kernel, self.shell.kernel.session, self.shell.displayhook,
                      self.shell.display_pub, self.shell.compile, self.shell.events, self.shell.input_transformer_manager]
        for obj in self.hooks:
            for cls in type(obj).__mro__[:-1]:  # not `object`
                if id(cls) not in seen_classes:
                    seen_classes.add(id(cls))
                    self._snapshot(cls, is_class=True)
        self.instance_dicts = [(obj, dict(vars(obj))) for obj in self.hooks]
        self.sys_hooks = {name: getattr(sys, name) for name in SYS_HOOKS}
        self.meta_path, self.path_hooks = list(sys.meta_path), list(sys.path_hooks)
        self.shell_lists = {name: (getattr(self.shell, name), list(getattr(self.shell, name))) for name in SHELL_LISTS}
        manager = self.shell.input_transformer_manager
        self.manager = manager
        self.manager_lists = {name: (getattr(manager, name), list(getattr(manager, name))) for name in MANAGER_LISTS}
        self.events = self.shell.events
        self.custom_exc = (self.shell.custom_exceptions, self.shell.CustomTB)

    def _binding_modules(self):
        for value in self.bindings.values():
            if isinstance(value, types.ModuleType):
                yield value
            elif isinstance(getattr(value, "__module__", None), str) and value.__module__ in sys.modules:
                yield sys.modules[value.__module__]

    def _snapshot(self, owner, is_class: bool, everything: bool = False) -> None:
        try:
            items = dict(vars(owner))
        except TypeError:
            return
        kept = {k: v for k, v in items.items() if everything or _restorable(v)}
        self.attrs.append((owner, kept, is_class))
        for value in kept.values():
            function = getattr(value, "__func__", value)
            if isinstance(function, types.FunctionType):
                self.codes[function] = (function.__code__, function.__defaults__, function.__kwdefaults__)

    # ------------------------------------------------------------ restore

    def made_by_student(self, value) -> bool:
        return student_made(value, self.library)

    def check(self, nonce: str, names: list[str] | str) -> list[str]:
        """Restore the snapshot, rebind `names` (what the next test cell reads), print the nonce line.

        Everything a library changed since the snapshot is put back silently; what notebook code
        changed is put back and reported (the grader marks the submission "tampered").
        """
        import warnings

        if isinstance(names, str):  # hex-encoded JSON: a filter on the text of cells will not spot it
            names = json.loads(bytes.fromhex(names))
        repaired = []
        sys.settrace(None)
        sys.setprofile(None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecated attributes of torch warn when touched
            repaired += self._restore_sys()
            repaired += self._restore_shell()
            repaired += self._restore_attrs()
            repaired += self._restore_names(names)
        self._refuse_student_threads()
        sys.stdout.write(f"mmcourse-guard {nonce} ok {json.dumps(sorted(set(repaired)))}\n")
        sys.stdout.flush()
        return repaired

    def _refuse_student_threads(self) -> None:
        """A thread the notebook started could patch things again between this check and the test."""
        import threading

        for thread in threading.enumerate():
            code = getattr(thread, "_target", None) or type(thread).run
            if thread is not threading.current_thread() and thread.is_alive() and self.made_by_student(code):
                raise RuntimeError(f"a thread started by the notebook ({thread.name}) is still running during the "
                                   f"tests; stop your threads before the test cells")

    def _restore_sys(self) -> list[str]:
        repaired = []
        for name, value in self.sys_hooks.items():
            current = getattr(sys, name)
            if current is not value and self.made_by_student(current):
                setattr(sys, name, value)
                repaired.append(f"sys.{name}")
        for hooks, label in ((sys.meta_path, "sys.meta_path"), (sys.path_hooks, "sys.path_hooks")):
            for hook in [h for h in hooks if self.made_by_student(h)]:
                hooks.remove(hook)
                repaired.append(label)
        for name, module in self.modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                repaired.append(f"sys.modules[{name!r}]")
        return repaired

    def _restore_shell(self) -> list[str]:
        shell, repaired = self.shell, []
        for obj, saved in self.instance_dicts:
            current = vars(obj)
            for key in list(current):
                value = current[key]
                if callable(value) and current.get(key) is not saved.get(key, _MISSING) and self.made_by_student(value):
                    if key in saved:
                        current[key] = saved[key]
                    else:
                        del current[key]  # an instance attribute that shadows a method, e.g. shell.run_cell
                    repaired.append(f"{type(obj).__name__}.{key}")
        if shell.input_transformer_manager is not self.manager:
            shell.input_transformer_manager = self.manager
            repaired.append("input_transformer_manager")
        for owner, lists, prefix in ((shell, self.shell_lists, ""), (self.manager, self.manager_lists,
                                                                      "input_transformer_manager.")):
            for name, (original, contents) in lists.items():
                if getattr(owner, name) is not original:
                    setattr(owner, name, original)
                    repaired.append(prefix + name)
                for hook in [h for h in original if self.made_by_student(h)]:
                    original.remove(hook)
                    repaired.append(prefix + name)
        if shell.events is not self.events:
            shell.events = self.events
            repaired.append("events")
        for event, hooks in self.events.callbacks.items():
            for hook in [h for h in hooks if self.made_by_student(h)]:
                hooks.remove(hook)
                repaired.append(f"events[{event!r}]")
        if (shell.custom_exceptions, shell.CustomTB) != self.custom_exc:
            shell.custom_exceptions, shell.CustomTB = self.custom_exc
            repaired.append("set_custom_exc")
        if shell.user_ns.get("__builtins__") is not builtins:
            shell.user_ns["__builtins__"] = builtins
            repaired.append("__builtins__")
        return repaired

    def _restore_attrs(self) -> list[str]:
        repaired = []
        for owner, saved, is_class in self.attrs:
            current = vars(owner)
            label = getattr(owner, "__name__", "?")
            for key, value in saved.items():
                now = current.get(key, _MISSING)
                if now is value or (owner is builtins and key in VOLATILE_BUILTINS):
                    continue
                try:
                    setattr(owner, key, value)
                except (TypeError, AttributeError):
                    continue
                if now is _MISSING or self.made_by_student(now):
                    repaired.append(f"{label}.{key}")
            if is_class or owner is builtins:  # additions: only those notebook code made
                for key in [k for k in current if k not in saved and k not in VOLATILE_BUILTINS]:
                    if not callable(current[key]) or not self.made_by_student(current[key]):
                        continue
                    try:
                        delattr(owner, key)
                    except (TypeError, AttributeError):
                        continue
                    repaired.append(f"{label}.{key}")
        for function, (code, defaults, kwdefaults) in self.codes.items():
            if function.__code__ is not code or function.__defaults__ is not defaults or \
                    function.__kwdefaults__ is not kwdefaults:
                new_code = function.__code__
                function.__code__, function.__defaults__, function.__kwdefaults__ = code, defaults, kwdefaults
                if self.made_by_student(new_code) or new_code is code:
                    repaired.append(f"{function.__module__}.{function.__qualname__}.__code__")
        return repaired

    def _restore_names(self, names: list[str]) -> list[str]:
        user_ns, repaired = self.shell.user_ns, []
        for name in names:
            if name in self.bindings:
                now = user_ns.get(name, _MISSING)
                if now is not self.bindings[name]:
                    user_ns[name] = self.bindings[name]
                    if now is not _MISSING and self.made_by_student(now):  # missing: the test imports it itself
                        repaired.append(f"global {name}")
            elif name in vars(builtins) and name in user_ns:
                del user_ns[name]  # a global that shadows a builtin the test uses (e.g. `sum = ...`)
                repaired.append(f"global {name} (shadowed a builtin)")
        return repaired


_MISSING = object()


def _resolve(target: str):
    """'torch' → the module; 'mmcourse.grading:check_close' → the attribute (or submodule)."""
    module_name, _, attr = target.partition(":")
    if not attr:
        return importlib.import_module(module_name)
    try:
        return importlib.import_module(f"{module_name}.{attr}")
    except ImportError:
        return getattr(importlib.import_module(module_name), attr)


def install(nonce: str, bindings: dict[str, str]) -> None:
    """The setup cell: snapshot the kernel and keep the guard where check cells find it."""
    import warnings

    module = types.ModuleType("__mmcourse_guard__")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # looking at every attribute of torch trips deprecation warnings
        module.guard = Guard(bindings)
    sys.modules["__mmcourse_guard__"] = module
    sys.stdout.write(f"mmcourse-guard {nonce} ready\n")
    sys.stdout.flush()
