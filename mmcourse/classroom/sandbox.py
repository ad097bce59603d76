"""The box a student's kernel runs in while it is graded.

A kernel runs the student's code, so it gets as little as the operating system allows. Where the machine has
bubblewrap (`bwrap`, Debian's `bubblewrap`: the sandbox Flatpak uses) and the grader is root, the kernel runs in an
ALLOW-LIST: a new, empty file system holding only

    read-only   the system's programs and libraries (/usr, /bin, /lib…), the Python installation and environment,
                and the installed mmcourse package itself — not the repository around an editable install,
                not any other copy of the course, not the instructor's home;
    read-write  its own work folder (the hand-in) and its private runtime folder (sockets, home);
    /tmp        a private tmpfs of bounded size (`tmp_bytes`), gone when the kernel ends;

as user `nobody`, with no network (a new network namespace), no other process (a new PID namespace; every
process it starts dies with it) and no capabilities. Beneath that, the launcher below sets the limits:

    memory      an address-space limit (RLIMIT_AS): a huge allocation fails with MemoryError. torch alone maps
                ≈ 3.3 GB of address space, so the limit counts virtual memory, not resident memory.
    files       no file larger than `file_bytes` (RLIMIT_FSIZE: the write fails with "File too large").

Without bubblewrap, the fallback is the older DENY-LIST: util-linux's `unshare` (network, PID and mount
namespaces), known secrets (the course's source notebooks, gradebook, other submissions) covered by empty mounts,
and `nobody`; everything else on the machine stays readable. `plan_sandbox()` checks what works here; the first
line `mmcourse grade` prints (SandboxPlan.describe) says which isolation is in force, and the notes say why.

The kernel talks to the grader over ZMQ's IPC transport (unix sockets in the runtime folder, which cross network
namespaces; TCP on 127.0.0.1 would not). The kernel command becomes

    bwrap --unshare-all --uid 65534 … --ro-bind /usr /usr … -- python -I sandbox.py SPEC -- KERNEL_CMD…
    unshare --net --pid --fork --kill-child --mount-proc -- python -I sandbox.py SPEC -- KERNEL_CMD…   (fallback)

and `launch()` below (stdlib only) sets the limits (and, in the fallback, hides files and drops to `nobody`)
before it execs the kernel.

Where it sits: scheduler.py plans the sandbox once per class (`plan_sandbox`), worker.py points
`SandboxKernelManager` at its private folder, and execute.GuardedExecute starts every kernel with it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

GIB = 1024**3
RUN_DIR_PARENT = "/tmp" if os.path.isdir("/tmp") else None  # world-traversable: the kernel's folders live here
NOBODY = 65534
UNSHARE = ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
# Environment variables a kernel inherits; everything else (passwords, tokens, DB URLs) stays behind.
ENV_KEEP = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH",
            "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
            "OPENBLAS_L2_SIZE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MPLBACKEND", "PYTHONHASHSEED")
ENV_KEEP_PREFIXES = ("MMCOURSE_", "CUDA_", "NVIDIA_")


@dataclass
class SandboxPlan:
    """What a kernel launched by `SandboxKernelManager` gets. `notes` say what fell back and why."""

    memory_bytes: int | None = 8 * GIB
    bwrap: bool = False  # the allow-list: bubblewrap builds the kernel's file system from `allow` (needs root)
    allow: list[str] = field(default_factory=list)  # read-only folders of the allow-list (Python, the package)
    tmp_bytes: int = 512 * 1024**2  # size of the kernel's private /tmp (allow-list only)
    file_bytes: int = 256 * 1024**2  # no file larger than this (RLIMIT_FSIZE), everywhere
    namespaces: bool = False  # network, PID and mount namespaces (needs root and unshare)
    uid: int | None = None  # run the kernel as this user (None: as the grader's user)
    hide: list[str] = field(default_factory=list)  # paths the kernel must not see (needs namespaces)
    expose: list[str] = field(default_factory=list)  # folders the kernel needs (Python, packages) behind closed ones
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        memory = f"{self.memory_bytes / GIB:g} GiB address space" if self.memory_bytes else "no memory limit"
        network = "isolated" if self.namespaces else "NOT isolated"
        user = "nobody" if self.uid == NOBODY else (f"uid {self.uid}" if self.uid is not None else "the grader's user")
        files = (f"allow-list file system (bubblewrap): {len(self.allow)} read-only folders, private "
                 f"{self.tmp_bytes / 1024**2:g} MiB /tmp" if self.bwrap else
                 f"deny-list: {len(self.hide)} course paths hidden, the rest of the machine readable")
        return (f"kernel: {memory}; network {network}; runs as {user}; {files}; "
                f"files ≤ {self.file_bytes / 1024**2:g} MiB")

    def wrap(self, kernel_cmd: list[str], stage: str | None = None, writable: list[str] = (),
             cwd: str | None = None) -> list[str]:
        """The command that starts `kernel_cmd` inside this sandbox. `writable`: the folders the kernel may write
        (its work folder, its runtime folder), `cwd` its working folder; `stage`: an empty folder the deny-list
        launcher may mount on."""
        if self.bwrap:
            spec = json.dumps({"memory_bytes": self.memory_bytes, "file_bytes": self.file_bytes, "uid": self.uid})
            launcher = [sys.executable, "-I", str(Path(__file__).resolve()), spec, "--", *kernel_cmd]
            return bwrap_command(self, list(writable), cwd) + ["--", *launcher]
        spec = json.dumps({"memory_bytes": self.memory_bytes, "file_bytes": self.file_bytes, "uid": self.uid,
                           "stage": stage, "hide": self.hide if self.namespaces else [],
                           "expose": self.expose if self.namespaces and self.uid is not None else []})
        launcher = [sys.executable, "-I", str(Path(__file__).resolve()), spec, "--", *kernel_cmd]
        return (UNSHARE + ["--"] if self.namespaces else []) + launcher


def _open_parents(folders: list[str]) -> list[str]:
    """bwrap makes the folders above a mount point private (0700): create them open, or `nobody` cannot reach it."""
    parents = sorted({str(parent) for folder in folders for parent in Path(folder).parents if str(parent) != "/"},
                     key=lambda path: path.count("/"))
    return [arg for parent in parents for arg in ("--perms", "0755", "--dir", parent)]


# What every program needs from the system, read-only (a missing one is skipped: --ro-bind-try).
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc/ld.so.cache", "/etc/ld.so.conf",
                  "/etc/ld.so.conf.d", "/etc/fonts", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
                  "/etc/alternatives", "/etc/mime.types")


def bwrap_command(plan: SandboxPlan, writable: list[str], cwd: str | None) -> list[str]:
    """bubblewrap's arguments for the allow-list: an empty root with only what the kernel needs."""
    # No user namespace: in one, `nobody` inside would be root outside (the owner of root's files). Instead the
    # launcher drops to the real `nobody` (setuid, no groups, no new privileges): the only capabilities it keeps.
    cmd = ["bwrap", "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid", "--unshare-ipc",
           "--unshare-uts", "--unshare-cgroup-try", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID",
           "--cap-add", "CAP_SETGID", "--hostname", "mmcourse-grading"]
    cmd += _open_parents([*SYSTEM_FOLDERS, *plan.allow])
    for folder in SYSTEM_FOLDERS:
        cmd += ["--ro-bind-try", folder, folder]
    for folder in plan.allow:
        cmd += ["--ro-bind", folder, folder]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(plan.tmp_bytes), "--tmpfs", "/tmp"]
    cmd += _open_parents(writable)  # after /tmp's tmpfs, which would cover them
    for folder in writable:
        cmd += ["--bind", folder, folder]
    for secret in plan.hide:  # a secret inside a writable folder (a gradebook beside the hand-in): covered
        if any(secret.startswith(folder.rstrip("/") + "/") for folder in writable) and os.path.exists(secret):
            cmd += ["--perms", "0000", "--tmpfs", secret, "--remount-ro", secret] if os.path.isdir(secret) \
                else ["--ro-bind", "/dev/null", secret]
    if cwd:
        cmd += ["--chdir", cwd]
    return cmd


def _runs(cmd: list[str], timeout: float = 30) -> tuple[bool, str]:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, str(err)
    return done.returncode == 0, (done.stderr or done.stdout).strip()[-300:]


def plan_sandbox(memory_gb: float | None = 8, isolate: bool = True, hide: list[str] | None = None) -> SandboxPlan:
    """Check what this machine allows and return the strongest sandbox that works here.

    isolate=False skips namespaces and the user switch (the kernel then runs like a plain nbgrader one).
    """
    plan = SandboxPlan(memory_bytes=int(memory_gb * GIB) if memory_gb else None)
    if not isolate:
        plan.notes.append("isolation switched off (--no-isolation): network not isolated, kernel runs as the grader")
        return plan
    if os.geteuid() != 0:
        plan.notes.append("not running as root: network not isolated, kernel runs as the grader's user "
                          "(run `mmcourse grade` as root, e.g. in the grading container, for a full sandbox)")
        return plan
    if os.environ.get("MMCOURSE_SANDBOX") == "deny-list":  # the previous sandbox, for comparison (benchmarks)
        plan.notes.append("MMCOURSE_SANDBOX=deny-list: the deny-list sandbox, in which the rest of the machine stays "
                          "readable")
    elif shutil.which("bwrap") is None:
        plan.notes.append("bubblewrap not found: falling back to the deny-list sandbox, in which the rest of the "
                          "machine (other copies of the course included) stays readable (apt-get install bubblewrap)")
    else:
        allowed = SandboxPlan(memory_bytes=plan.memory_bytes, bwrap=True, allow=python_folders(), uid=NOBODY,
                              namespaces=True)
        check = ("import importlib.util as u\n"
                 "for name in ('ipykernel', 'torch', 'mmcourse'):\n"
                 "    spec = u.find_spec(name); open(spec.origin, 'rb').close()\n")
        ok, why = _runs(allowed.wrap([sys.executable, "-c", check]))
        if ok:
            allowed.hide = sorted(set(hide or []))
            return allowed
        plan.notes.append(f"bubblewrap cannot run the kernel here ({why.splitlines()[-1] if why else 'failed'}): "
                          f"falling back to the deny-list sandbox")
    if shutil.which("unshare") is None:
        plan.notes.append("util-linux `unshare` not found: network not isolated (apt-get install util-linux)")
    else:
        ok, why = _runs(UNSHARE + ["--", "true"])
        if ok:
            plan.namespaces = True
            plan.hide = sorted(set(hide or []))
        else:
            plan.notes.append(f"`unshare --net --pid` failed here ({why}): network not isolated")
    # Can `nobody` run the kernel? It must reach Python, the packages and this course. Where they sit
    # below a closed folder (a Python installed in /root), the namespace shows only them (`expose`).
    probe = SandboxPlan(memory_bytes=plan.memory_bytes, namespaces=plan.namespaces, uid=NOBODY,
                        expose=python_folders() if plan.namespaces else [])
    check = ("import importlib.util as u\n"
             "for name in ('ipykernel', 'torch', 'mmcourse'):\n"
             "    spec = u.find_spec(name); open(spec.origin, 'rb').close()\n")
    with tempfile.TemporaryDirectory(dir=RUN_DIR_PARENT) as stage:
        ok, why = _runs(probe.wrap([sys.executable, "-c", check], stage=stage))
    if ok:
        plan.expose = probe.expose
        plan.uid = NOBODY
    else:
        plan.notes.append(f"user `nobody` cannot run the kernel here ({why.splitlines()[-1] if why else 'failed'}): "
                          f"the kernel runs as root; make the Python environment and the course readable by "
                          f"others (chmod o+rX) to drop privileges")
    return plan


def python_folders() -> list[str]:
    """The folders a kernel of this Python needs: the installation, the environment, sys.path."""
    package = Path(__file__).resolve().parent.parent  # mmcourse/, wherever an editable install keeps it
    candidates = {sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix}
    # sys.path, except the folder the grader runs in and a checkout that holds the package (an editable install
    # with a .pth line, or `python -m` from the repository): the kernel gets mmcourse/, not the solutions beside it
    candidates |= {p for p in sys.path if p and os.path.isdir(p) and os.path.realpath(p) != os.path.realpath(os.getcwd())
                   and not (Path(p) / "mmcourse").resolve() == package}
    candidates.add(str(package))
    folders = sorted(os.path.realpath(p) for p in candidates)
    return [p for p in folders if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in folders)]


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it (from /proc: a kernel inside bubblewrap is a grandchild of its launcher)."""
    children: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, with those of finished children) of `pid` and every process below it."""
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def folder_bytes(folders: list[str]) -> int:
    """Disk space the files below `folders` take (allocated blocks: a sparse file counts what it really uses)."""
    total = 0
    for folder in folders:
        for base, _, files in os.walk(folder):
            for name in files:
                try:
                    total += os.lstat(os.path.join(base, name)).st_blocks * 512
                except OSError:
                    continue
    return total


def kernel_env(home: Path) -> dict[str, str]:
    """The kernel's environment: a short allow-list of the grader's, and a private home."""
    env = {k: v for k, v in os.environ.items() if k in ENV_KEEP or k.startswith(ENV_KEEP_PREFIXES)}
    env.setdefault("PATH", os.defpath)
    env.update(HOME=str(home), TMPDIR=str(home / "tmp"), IPYTHONDIR=str(home / "ipython"),
               MPLCONFIGDIR=str(home / "matplotlib"), XDG_CACHE_HOME=str(home / "cache"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), MPLBACKEND="Agg",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    # One thread per graded kernel, whatever the grader's environment says: `--jobs` is the parallelism, and a kernel
    # that inherits OMP_NUM_THREADS=2 on a busy 2-core machine runs up to 10x slower and times out an honest student.
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return env


def make_home(home: Path, uid: int | None) -> None:
    """A private, writable home for the kernel; seeded with matplotlib's font cache (saves ≈ 1 s per kernel)."""
    for sub in ("tmp", "ipython", "matplotlib", "cache", "runtime"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    cache = Path(os.environ.get("MPLCONFIGDIR", Path.home() / ".cache" / "matplotlib"))
    for font_list in cache.glob("fontlist-*.json") if cache.is_dir() else []:
        shutil.copy(font_list, home / "matplotlib" / font_list.name)
    if uid is not None:
        for path in [home, *home.rglob("*")]:
            os.chown(path, uid, uid)
    home.chmod(0o700)


def open_path_for_kernel(root: Path, cwd: Path) -> None:
    """Let the kernel user enter `cwd` below `root` (x on each folder, no listing) and read its data files.

    Notebooks in `cwd` stay private: while the kernel runs, nbgrader's copy there holds the hidden tests.
    """
    root, cwd = Path(root).resolve(), Path(cwd).resolve()
    folder = cwd
    while True:
        folder.chmod(0o711)
        if folder == root or folder.parent == folder:
            break
        folder = folder.parent
    cwd.chmod(0o755)
    for path in cwd.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
        elif path.suffix != ".ipynb":
            path.chmod(path.stat().st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


# ---------------------------------------------------------------- the kernel manager


try:
    from jupyter_client.manager import AsyncKernelManager
except ImportError:  # the launcher below runs with `python -I` and needs only the standard library
    AsyncKernelManager = object


class SandboxKernelManager(AsyncKernelManager):
    """A Jupyter kernel manager that starts its kernel inside `SandboxKernelManager.plan`.

    nbclient creates it by class (Execute.kernel_manager_class), so the grading worker sets the
    class attributes `plan` and `folder` (a private folder for sockets and the kernel's home) first.
    """

    plan: SandboxPlan = SandboxPlan()
    folder: Path | None = None
    course_root: Path | None = None  # the folders above the kernel's cwd to open for the kernel user

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        folder = Path(self.folder or os.environ.get("TMPDIR", "/tmp"))
        self.runtime = folder / "kernel"
        self.runtime.mkdir(parents=True, exist_ok=True)
        self.transport = "ipc"  # unix sockets: they work across the network namespace
        self.ip = str(self.runtime / "ipc")
        self.connection_file = str(self.runtime / "connection.json")

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        plan = self.plan
        home = self.runtime / "home"
        make_home(home, plan.uid)
        if plan.uid is not None:
            os.chown(self.runtime, plan.uid, plan.uid)
            os.chown(self.connection_file, plan.uid, plan.uid)
            if kw.get("cwd") and self.course_root:
                open_path_for_kernel(self.course_root, Path(kw["cwd"]))
        self.runtime.chmod(0o700)
        kw["env"] = kernel_env(home)
        kw["stdout"] = subprocess.DEVNULL  # the kernel's own banner; cell output goes over ZMQ
        kw["stderr"] = open(self.runtime / "kernel.log", "ab")  # why a kernel failed to start, if it did
        stage = self.runtime / "stage"
        stage.mkdir(exist_ok=True)
        writable = [str(self.runtime)] + ([str(Path(kw["cwd"]).resolve())] if kw.get("cwd") else [])
        self.writable = writable  # GuardedExecute watches how much the kernel writes into them
        if plan.bwrap:
            kw["env"]["TMPDIR"] = "/tmp"  # the private, bounded tmpfs
        await super()._async_launch_kernel(plan.wrap(kernel_cmd, stage=str(stage), writable=writable,
                                                     cwd=writable[1] if len(writable) > 1 else None), **kw)


# ---------------------------------------------------------------- the launcher (runs in the namespaces)


MS_RDONLY, MS_BIND, MS_REC = 1, 4096, 16384


def _mount(source: str, target: str, fstype: str | None, flags: int, options: str | None = None) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                  options.encode() if options else None) != 0:
        raise OSError(ctypes.get_errno(), f"mount {source} on {target} failed")


def _hide(paths: list[str]) -> None:
    """Cover each path: an empty read-only tmpfs over a folder, /dev/null over a file."""
    for path in paths:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=4k,mode=0")
        elif os.path.exists(path):
            _mount("/dev/null", path, None, MS_BIND)


def _closed_ancestor(path: str) -> str | None:
    """The highest folder above `path` that others may not enter (e.g. /root), or None."""
    parts = path.strip("/").split("/")
    for n in range(1, len(parts)):
        folder = "/" + "/".join(parts[:n])
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return folder
    return None


def _expose(paths: list[str], stage: str) -> None:
    """Make `paths` reachable when a folder above them is closed: cover that folder with an empty
    tmpfs and bind only `paths` back into it (so the kernel sees /root/.pyenv/..., not /root's files)."""
    closed: dict[str, list[str]] = {}
    for path in paths:
        folder = _closed_ancestor(path)
        if folder:
            closed.setdefault(folder, []).append(path)
    for n, (folder, inside) in enumerate(closed.items()):
        staged = []
        for i, path in enumerate(inside):
            spot = os.path.join(stage, f"{n}-{i}")
            os.mkdir(spot)
            _mount(path, spot, None, MS_BIND | MS_REC)
            staged.append((spot, path))
        _mount("tmpfs", folder, "tmpfs", 0, "size=64k,mode=0755")
        for spot, path in staged:
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(spot, path, None, MS_BIND | MS_REC)


def launch(spec: dict, cmd: list[str]) -> None:
    """Show only what the kernel needs, hide secrets, limit memory, drop to the kernel user, run the kernel."""
    import resource

    os.umask(0o022)
    if spec.get("expose"):
        _expose(spec["expose"], spec["stage"])
    if spec.get("hide"):
        _hide(spec["hide"])
    if spec.get("memory_bytes"):
        resource.setrlimit(resource.RLIMIT_AS, (spec["memory_bytes"], spec["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    file_bytes = spec.get("file_bytes") or GIB
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))  # a bigger write fails: "File too large"
    if os.getpid() == 1:  # in the new PID namespace
        _be_init_for(cmd, spec.get("uid"))
    _become(cmd, spec.get("uid"))


def _become(cmd: list[str], uid: int | None) -> None:
    """Drop to `uid` (no groups, no way back to root) and exec the kernel."""
    # ipykernel exits when its parent PID changes; in the PID namespace the grader's PID means nothing
    # (and the kernel dies with the namespace anyway).
    os.environ.pop("JPY_PARENT_PID", None)
    if uid is not None:
        import ctypes

        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        pr_set_no_new_privs = 38
        ctypes.CDLL(None).prctl(pr_set_no_new_privs, 1, 0, 0, 0)  # setuid programs cannot give root back
    os.execvp(cmd[0], cmd)


def _be_init_for(cmd: list[str], uid: int | None) -> None:
    """PID 1 of the namespace: start the kernel as PID 2, reap orphans, pass signals on, exit as it exits.

    (A kernel that were PID 1 itself would ignore its own SIGKILL and leave zombies unreaped.)
    """
    import signal

    kernel = os.fork()
    if kernel == 0:
        _become(cmd, uid)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, lambda number, frame: os.kill(kernel, number))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        except InterruptedError:
            continue
        if pid == kernel:
            os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


if __name__ == "__main__":
    split = sys.argv.index("--")
    launch(json.loads(sys.argv[1]), sys.argv[split + 1:])
