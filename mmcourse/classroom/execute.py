"""Run one notebook's cells for grading: nbgrader's Execute preprocessor, hardened against the code it runs.

Where it sits: scheduler.py (the class) → worker.py (one hand-in, one process) → here (its cells), in a
kernel that sandbox.py starts, with guard.py sent into it. nbgrader's own Autograde converter drives
this preprocessor; worker.py and the course's nbgrader_config.py (autograde_preprocessors) put it in place of Execute.

    GuardedExecute      Execute with the guard cells, a per-cell and a wall-clock limit, capped output, and a
                        dead kernel's untested cells failed; the outcome is left in GuardedExecute.report
    names_read          the global names a test cell reads (the guard rebinds them before it)
    import_bindings     what the instructor's notebooks import (what the guard rebinds them to)

The statuses of a graded submission (OK, TAMPERED, ...) are defined here, at the bottom of the grader,
and shared by worker.py and scheduler.py.
"""

from __future__ import annotations

import ast
import json
import math
import re
import secrets
import signal
import tempfile
import threading
import time
from pathlib import Path

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_code_cell, new_output
from nbgrader.preprocessors import Execute
from traitlets import Dict, Float, Integer

from mmcourse.classroom.sandbox import SandboxKernelManager, folder_bytes, tree_cpu_seconds

MIB = 1024**2
GUARD_SOURCE = (Path(__file__).with_name("guard.py")).read_text()
# Statuses; anything but "ok" makes `mmcourse grade` exit 1 so that an instructor looks at it.
OK, TAMPERED, KERNEL_DIED, TIMEOUT, OUTPUT_FLOOD, KILLED, ERROR, MISSING = (
    "ok", "tampered", "kernel_died", "timeout", "output_flood", "killed", "error", "missing")


class GuardedExecute(Execute):
    """nbgrader's Execute, hardened for grading: `mmcourse grade`'s workers and the course's nbgrader_config.py
    (so plain `nbgrader autograde` and the formgrader's Autograde button) put it in Execute's place; never in releases.

    - runs the kernel in the sandbox of `SandboxKernelManager.plan`;
    - injects the guard: a setup cell first, a check cell before every test cell (removed afterwards);
    - ends a cell that uses more than `timeout` seconds of CPU time (the kernel and its children), or runs
      past WALL_FACTOR × `timeout` of wall-clock time (a sleep, a wait) or past `deadline`, by killing the
      kernel, without waiting for an interrupt the code may ignore. CPU time, not wall-clock time, is the
      measure: on a busy machine an honest cell takes longer but uses the same CPU, so it is not
      accused of a timeout. Stops a notebook that prints more than `max_output_bytes`, or whose files in
      its writable folders grow by more than `max_write_bytes` (its /tmp is a bounded tmpfs already);
    - when the kernel is gone (died, exited, killed), marks every test cell that did not run as failed;
    - ignores cell tags (a `skip-execution` tag on a test cell must not skip it).
    The outcome is left in `GuardedExecute.report` for the worker.
    """

    deadline = Float(0.0, help="time.monotonic() by which the notebook must have finished (0: none)").tag(config=True)
    max_output_bytes = Integer(16 * MIB, help="stop the notebook when its cells print more than this").tag(config=True)
    max_write_bytes = Integer(1024 * MIB, help="stop the notebook when it writes more than this to disk").tag(config=True)
    bindings = Dict({}, help="{name: 'module[:attr]'} that the guard rebinds before test cells").tag(config=True)
    guard = Integer(1, help="inject the guard cells (0 to switch off)").tag(config=True)

    report: dict = {}  # status, reason, repaired — for the worker (one notebook per worker process)
    WALL_FACTOR = 3  # a cell's wall-clock bound, in multiples of its CPU-time limit

    def preprocess(self, nb, resources=None, km=None):
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self.kernel_manager_class = SandboxKernelManager
        self.interrupt_on_timeout = False  # a loop can ignore SIGINT: kill instead
        self.skip_cells_with_tag = "mmcourse-never-" + secrets.token_hex(8)
        self.timeout_func = self._cell_timeout
        self.stopped = None  # (status, reason) once the kernel is gone
        self.output_bytes = 0
        self.flooded = False
        self.written_at_start = None
        GuardedExecute.report = {"status": OK, "reason": "", "repaired": {}}
        injected = self._inject_guard(nb, dict(self.bindings) or instructor_bindings(self.config, resources)) \
            if self.guard else {}
        self.labels = []  # how a reason names each cell: its grade_id, or its position in the submission
        for cell in nb.cells:
            if "mmcourse_guard" in cell.metadata:
                self.labels.append("the grader's guard cell")
            else:
                position = sum(1 for label in self.labels if label != "the grader's guard cell") + 1
                self.labels.append(cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {position}")
        own_folder = None
        if SandboxKernelManager.folder is None:  # plain `nbgrader autograde`: no worker made a private folder
            own_folder = tempfile.TemporaryDirectory(prefix="mmcourse-kernel-")
            SandboxKernelManager.folder = Path(own_folder.name)
        try:
            with self.setup_kernel():
                info = self.wait_for_reply(self.kc.kernel_info())
                if info:
                    self.nb.metadata["language_info"] = info["content"]["language_info"]
                for index, cell in enumerate(self.nb.cells):
                    self.preprocess_cell(cell, resources, index)
        except Exception as err:  # the kernel did not start, or broke down in a way nbclient did not expect
            self._stop(ERROR, f"the kernel failed: {type(err).__name__}: {err}")
            for cell in self.nb.cells:
                if is_graded(cell) and not any(o.output_type == "error" for o in cell.get("outputs", [])):
                    fail_cell(cell, "GradingError", self.stopped[1])
        finally:
            if own_folder is not None:
                SandboxKernelManager.folder = None
                own_folder.cleanup()
        self._fold_guard(nb, injected)
        self.set_widgets_metadata()
        if self.stopped:
            GuardedExecute.report.update(status=self.stopped[0], reason=self.stopped[1])
        return self.nb, self.resources

    # -- limits and failures

    def _cell_timeout(self, cell) -> int:
        """nbclient's (wall-clock) timeout for a cell: the outer bound; _watch_cpu enforces the CPU-time limit."""
        limit = self.timeout * self.WALL_FACTOR if self.timeout else 10**6
        if self.deadline:
            limit = min(limit, self.deadline - time.monotonic())
        return max(1, math.ceil(limit))

    def _watch(self, done: threading.Event) -> None:
        """Runs beside one cell: kill the kernel once the cell has used `timeout` seconds of CPU time, or once the
        kernel's writable folders have grown by more than `max_write_bytes` since the notebook started."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        folders = getattr(self.km, "writable", [])
        if process is None:
            return
        start = tree_cpu_seconds(process.pid)
        if self.written_at_start is None:
            self.written_at_start = folder_bytes(folders)
        tick = 0
        while not done.wait(0.2):
            tick += 1
            if self.timeout and tree_cpu_seconds(process.pid) - start > self.timeout:
                self.exceeded = "cpu"
            elif tick % 5 == 0 and folder_bytes(folders) - self.written_at_start > self.max_write_bytes:
                self.exceeded = "disk"
            if self.exceeded:
                self._kill_kernel()
                return

    def _stop(self, status: str, reason: str) -> None:
        if self.stopped is None:
            self.stopped = (status, reason)

    def _kill_kernel(self) -> None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def _exit_reason(self) -> str:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        code = process.poll() if process is not None else None
        if code is None:
            return "the kernel stopped answering"
        if code < 0 or code > 128:
            number = -code if code < 0 else code - 128
            name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
            return f"the kernel was killed by {name}"
        return f"the kernel exited with status {code} (exit(), quit() or os._exit() in the code?)"

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if self.stopped is None and self.deadline and time.monotonic() >= self.deadline:
            self._kill_kernel()
            self._stop(TIMEOUT, f"the submission used up its wall-clock limit before {self.labels[index]}")
        if self.stopped:
            if is_graded(cell):
                fail_cell(cell, "NotRun", f"this test did not run: {self.stopped[1]}")
            return cell, resources
        injected = cell.metadata.get("mmcourse_guard")
        self.exceeded = None
        done = threading.Event()
        watchdog = threading.Thread(target=self._watch, args=(done,), daemon=True)
        watchdog.start()
        try:
            cell = self.execute_cell(cell, index, store_history=not injected)
        except CellTimeoutError:
            self._kill_kernel()
            if self.deadline and time.monotonic() >= self.deadline - 1:
                self._stop(TIMEOUT, f"{self.labels[index]} was still running when the submission's wall-clock "
                                    f"limit ran out")
            else:
                self._stop(TIMEOUT, f"{self.labels[index]} ran longer than {self.timeout * self.WALL_FACTOR} s, the "
                                    f"wall-clock bound per cell ({self.WALL_FACTOR} × the {self.timeout} s CPU-time "
                                    f"limit per cell)")
            fail_cell(cell, "CellTimeoutError", self.stopped[1])
        except DeadKernelError:
            if self.exceeded == "cpu":
                self._stop(TIMEOUT, f"{self.labels[index]} used more than the {self.timeout} s of CPU time allowed "
                                    f"per cell")
            elif self.exceeded == "disk":
                self._stop(OUTPUT_FLOOD, f"{self.labels[index]} wrote more than {self.max_write_bytes / MIB:g} MiB "
                                         f"of files")
            elif self.flooded:
                self._stop(OUTPUT_FLOOD, f"{self.labels[index]} printed more than "
                                         f"{self.max_output_bytes / MIB:g} MiB of output")
            else:
                self._stop(KERNEL_DIED, f"{self._exit_reason()} while running {self.labels[index]}")
            fail_cell(cell, "DeadKernelError", self.stopped[1])
        finally:
            done.set()
            watchdog.join()
        return cell, resources

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = len(content.get("text", "")) + sum(len(str(v)) for v in content.get("data", {}).values()) + \
            sum(len(line) for line in content.get("traceback", []))
        self.output_bytes += size
        if self.output_bytes > self.max_output_bytes:
            if not self.flooded:
                self.flooded = True
                self._kill_kernel()  # nbclient notices the dead kernel within a second
            return None
        return super().output(outs, msg, display_id, cell_index)

    # -- the guard

    def _inject_guard(self, nb, bindings: dict) -> dict:
        """Insert the setup cell and a check cell before each test cell. → {check cell id: nonce}."""
        setup_nonce = secrets.token_hex(8)
        setup = ("def __mmcourse_guard_setup():\n"
                 "    namespace = {'__name__': 'mmcourse_guard'}\n"
                 f"    exec(compile({GUARD_SOURCE!r}, 'mmcourse/classroom/guard.py', 'exec'), namespace)\n"
                 f"    namespace['install']({setup_nonce!r}, {bindings!r})\n"
                 "__mmcourse_guard_setup(); del __mmcourse_guard_setup\n")
        cells = [new_code_cell(setup, metadata={"mmcourse_guard": setup_nonce})]
        for cell in nb.cells:
            if is_graded(cell):
                nonce = secrets.token_hex(8)
                names = json.dumps(names_read(cell.source)).encode().hex()  # no test names in the cell's text
                check = f"__import__('sys').modules['__mmcourse_guard__'].guard.check({nonce!r}, {names!r})\n"
                cells.append(new_code_cell(check, metadata={"mmcourse_guard": nonce}))
            cells.append(cell)
        nb.cells = cells
        return {c.id: c.metadata["mmcourse_guard"] for c in cells[1:] if "mmcourse_guard" in c.metadata} | \
            {cells[0].id: setup_nonce}

    def _fold_guard(self, nb, injected: dict) -> None:
        """Remove the guard cells; a check that did not print its nonce fails the test cell after it."""
        if not injected:
            return
        kept, pending_failure, setup_failed = [], None, None
        for cell in nb.cells:
            nonce = cell.metadata.get("mmcourse_guard")
            if nonce is None:
                if pending_failure and is_graded(cell):
                    if not any(o.output_type == "error" for o in cell.get("outputs", [])):
                        fail_cell(cell, "GradingGuardError", pending_failure)
                    pending_failure = None
                if setup_failed and is_graded(cell):
                    fail_cell(cell, "GradingGuardError", setup_failed)
                kept.append(cell)
                continue
            text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")
            errors = [f"{o.ename}: {o.evalue}" for o in cell.get("outputs", []) if o.output_type == "error"]
            is_setup = text.startswith(f"mmcourse-guard {nonce} ready") or cell.source.startswith("def __mmcourse_guard_setup")
            if is_setup:
                if f"mmcourse-guard {nonce} ready" not in text and not self.stopped:
                    setup_failed = "the grading guard could not start in the kernel: " + (errors[0] if errors else "no output")
                    self._stop(ERROR, setup_failed)
                continue
            match = re.search(rf"^mmcourse-guard {nonce} ok (.*)$", text, re.M)
            if match and not errors:
                repaired = json.loads(match.group(1))
                if repaired:
                    GuardedExecute.report["repaired"][len(kept)] = repaired
            elif not self.stopped:
                pending_failure = ("the grading guard before this test did not run "
                                   f"({errors[0] if errors else 'its output was missing'}); something in the notebook "
                                   "changes how cells run, so this test cannot be trusted")
                GuardedExecute.report["repaired"][len(kept)] = [
                    "guard did not run" + (f" ({errors[0][:200]})" if errors else "")]
        nb.cells = kept
        repaired = GuardedExecute.report["repaired"]
        if repaired and GuardedExecute.report["status"] == OK and not self.stopped:
            parts = []
            for index, items in repaired.items():
                grade_id = kept[index].metadata.get("nbgrader", {}).get("grade_id", f"cell {index}") if index < len(kept) else "?"
                parts.append(f"before {grade_id}: {', '.join(items[:6])}{' …' if len(items) > 6 else ''}")
            GuardedExecute.report.update(status=TAMPERED, reason="tampering undone " + "; ".join(parts))


def autograde_preprocessors() -> list:
    """nbgrader's autograde preprocessors with GuardedExecute in Execute's place (for Autograde.autograde_preprocessors)."""
    from nbgrader.converters.autograde import Autograde

    return [GuardedExecute if p is Execute else p for p in Autograde.autograde_preprocessors.default()]


# ---------------------------------------------------------------- test cells, and what the guard rebinds


def is_graded(cell) -> bool:
    return cell.cell_type == "code" and bool(cell.metadata.get("nbgrader", {}).get("grade"))


def fail_cell(cell, ename: str, evalue: str) -> None:
    """Record an error in a test cell: nbgrader gives 0 points to a test cell with an error output."""
    cell.setdefault("outputs", []).append(new_output("error", ename=ename, evalue=evalue,
                                                     traceback=[f"{ename}: {evalue}"]))


def names_read(source: str) -> list[str]:
    """The global names a cell reads (for the guard to rebind). Falls back to every identifier."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython syntax (magics): over-approximate
        return sorted(set(re.findall(r"\b[A-Za-z_]\w*\b", source)))
    return sorted({node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)})


def import_bindings(notebooks: list[nbformat.NotebookNode]) -> dict[str, str]:
    """What the instructor's notebooks import, as {name: 'module' or 'module:attribute'}.

    Only cells that are not solutions count: these are what a test cell may rely on. A name that an answer
    cell defines is the student's own (notebook 11 writes `misalign_pairs`, tests it, and only then imports
    the package's): it is never rebound, or the test would grade the package instead of the student.
    """
    bindings, answers = {}, set()
    for nb in notebooks:
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue
            if cell.metadata.get("nbgrader", {}).get("solution"):
                answers |= top_level_names(tree)
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.asname:
                            bindings[alias.asname] = alias.name
                        else:
                            top = alias.name.split(".")[0]
                            bindings[top] = top
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    for alias in node.names:
                        if alias.name != "*":
                            bindings[alias.asname or alias.name] = f"{node.module}:{alias.name}"
    return {name: target for name, target in bindings.items() if name not in answers}


def instructor_bindings(config, resources) -> dict[str, str]:
    """The bindings of this assignment's source notebook, for plain `nbgrader autograde` and the formgrader's
    Autograde button, where no worker passes them (nbgrader tells the preprocessor the assignment and notebook)."""
    from nbgrader.coursedir import CourseDirectory

    info = (resources or {}).get("nbgrader", {})
    if not info.get("assignment") or not info.get("notebook"):
        return {}
    coursedir = CourseDirectory(config=config)
    path = Path(coursedir.format_path(coursedir.source_directory, ".", info["assignment"])) / f"{info['notebook']}.ipynb"
    return import_bindings([nbformat.read(path, as_version=4)]) if path.is_file() else {}


def top_level_names(tree: ast.Module) -> set[str]:
    """The global names a cell binds: its functions, classes, assignments, imports and loop variables."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
        else:
            targets = {ast.Assign: "targets", ast.AnnAssign: "target", ast.AugAssign: "target", ast.For: "target",
                       ast.With: "items"}
            for kind, field in targets.items():
                if isinstance(node, kind):
                    value = getattr(node, field)
                    for part in value if isinstance(value, list) else [value]:
                        part = part.optional_vars if isinstance(part, ast.withitem) else part
                        if part is not None:
                            names |= {n.id for n in ast.walk(part) if isinstance(n, ast.Name)}
    return names
