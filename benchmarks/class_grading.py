"""Grade a class of N correct submissions with `mmcourse grade`, serially and with parallel workers.

    python -m benchmarks.class_grading [NOTEBOOK] [--n 30] [--jobs 2]

NOTEBOOK defaults to 01_what_is_a_multimodal_llm. The `mmcourse grade` runs use the same command with the same
sandbox and guard; only --jobs differs. Beside them, the same class through plain `nbgrader autograde` (what the
formgrader's Autograde button runs: the guard is in, by nbgrader_config.py, but no sandbox, no limits per
hand-in, one process for the class; in parallel: one `nbgrader autograde --student S` process per hand-in), and
the start-up of one sandboxed Python against a plain one (what the sandbox costs per kernel). Prints total seconds, seconds per submission, the speed-up,
CPU seconds per submission and the cores kept busy (CPU s / wall s: below --jobs when other work shares
the machine), and the peak memory of one worker (its grading process and its kernel, resident). Goal (issue 7):
≥ 1.7× faster with --jobs 2 on 2 cores. Every submission must score full marks, or the run fails.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from benchmarks.common import machine, table
from mmcourse import classroom


def prepare(root: Path, name: str, n: int) -> list[str]:
    classroom.copy_course(classroom.repo_root(), root, [name])
    api = classroom.open_course(root)
    if not api.generate_assignment(name)["success"]:
        raise RuntimeError(f"nbgrader generate_assignment {name} failed")
    source = nbformat.read(classroom.notebook_path(root, "solutions", name), as_version=4)
    release = nbformat.read(classroom.notebook_path(root, "course", name), as_version=4)
    students = [f"student{i:03d}" for i in range(n)]
    for student in students:
        classroom.submit(root, name, student, classroom.perfect_submission(source, release))
    return students


def grade(root: Path, name: str, jobs: int, sandbox: str = "") -> tuple[float, float, list[dict], str]:
    """→ (wall seconds, CPU seconds of the grading processes and kernels, CSV rows, the sandbox line).
    sandbox="deny-list": the previous sandbox (MMCOURSE_SANDBOX), for comparison."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg", MMCOURSE_SANDBOX=sandbox,
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mmcourse.classroom.cli", "grade", name, "--jobs", str(jobs)],
                          cwd=root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(root / "grades" / f"{name}.csv") as handle:
        rows = list(csv.DictReader(handle))
    bad = [r for r in rows if r["status"] != "ok" or r["score"] != r["max_score"]]
    if done.returncode or bad:
        raise RuntimeError(f"grading failed (exit {done.returncode}): {bad[:3]}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds, cpu, rows, done.stdout.splitlines()[0]


def grade_with_nbgrader(root: Path, name: str, students: list[str], jobs: int) -> tuple[float, float]:
    """Plain `nbgrader autograde`: one process for the class, or one per student `jobs` at a time → (wall, CPU s)."""
    import resource
    from concurrent.futures import ThreadPoolExecutor

    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg",
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    nbgrader = [str(Path(sys.executable).parent / "nbgrader"), "autograde", name]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    commands = [nbgrader] if jobs == 1 else [nbgrader + ["--student", s] for s in students]
    with ThreadPoolExecutor(jobs) as pool:
        done = list(pool.map(lambda cmd: subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True),
                             commands))
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    failed = [d for d in done if d.returncode]
    if failed:
        raise RuntimeError(f"nbgrader autograde failed: {failed[0].stderr[-2000:]}")
    api = classroom.open_course(root)
    bad = [s for s in students if classroom.scores(api, name, s)["total"][0] != classroom.scores(api, name, s)["total"][1]]
    if bad:
        raise RuntimeError(f"nbgrader autograde gave less than full marks to {bad[:3]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def sandbox_startup(turns: int = 5) -> dict:
    """Seconds to start `python -c 'import torch'` plainly and inside the grader's sandbox (median of `turns`)."""
    from mmcourse.classroom.sandbox import plan_sandbox

    plan = plan_sandbox()
    command = [sys.executable, "-c", "import torch"]
    result = {}
    for label, cmd in (("plain", command), ("sandboxed", plan.wrap(command, writable=[], cwd="/tmp"))):
        times = []
        for _ in range(turns):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
            times.append(time.perf_counter() - start)
        result[label] = sorted(times)[turns // 2]
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", nargs="?", default="01_what_is_a_multimodal_llm")
    parser.add_argument("--n", type=int, default=30, help="submissions in the class (default: 30)")
    parser.add_argument("--jobs", type=int, default=2, help="workers of the parallel run (default: 2)")
    args = parser.parse_args(argv)
    results, sandbox = [], ""
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, args.jobs):
            root = Path(tmp) / f"jobs{jobs}"
            prepare(root, args.notebook, args.n)
            seconds, cpu, rows, sandbox = grade(root, args.notebook, jobs)
            results.append((jobs, seconds, cpu, rows, "mmcourse grade"))
        if os.geteuid() == 0:  # the previous, deny-list sandbox (needs root, like the allow-list)
            root = Path(tmp) / "deny-list"
            prepare(root, args.notebook, args.n)
            seconds, cpu, rows, _ = grade(root, args.notebook, args.jobs, sandbox="deny-list")
            results.append((args.jobs, seconds, cpu, rows, "mmcourse grade, deny-list"))
        plain = []
        for jobs in (1, args.jobs):
            root = Path(tmp) / f"nbgrader{jobs}"
            students = prepare(root, args.notebook, args.n)
            plain.append((jobs, *grade_with_nbgrader(root, args.notebook, students, jobs)))
        startup = sandbox_startup()
    serial = results[0][1]
    table_rows = []
    for jobs, seconds, cpu in plain:
        table_rows.append({"mode": "nbgrader autograde" + ("" if jobs == 1 else " --student"), "jobs": jobs,
                           "total s": seconds, "s / submission": seconds / args.n,
                           "speed-up": f"{serial / seconds:.2f}x", "CPU s / submission": cpu / args.n,
                           "cores busy": cpu / seconds, "peak MiB / worker": "", "of it kernel": ""})
    for jobs, seconds, cpu, rows, mode in results:
        worker = max(float(r["worker_peak_mib"]) for r in rows)
        kernel = max(float(r["kernel_peak_mib"]) for r in rows)
        table_rows.append({"mode": mode, "jobs": jobs, "total s": seconds,
                           "s / submission": seconds / args.n, "speed-up": f"{serial / seconds:.2f}x",
                           "CPU s / submission": cpu / args.n, "cores busy": cpu / seconds,
                           "peak MiB / worker": worker + kernel, "of it kernel": kernel})
    print(f"\nmmcourse grade: a class of {args.n} correct submissions of {args.notebook} — {machine()}")
    print(sandbox.split(": ", 1)[-1])
    print("goal: ≥ 1.7x with --jobs 2 on 2 cores\n")
    print(table(table_rows, ["mode", "jobs", "total s", "s / submission", "speed-up", "CPU s / submission",
                             "cores busy", "peak MiB / worker", "of it kernel"]))
    print(f"\nspeed-up: against `mmcourse grade --jobs 1`. Start-up of `python -c 'import torch'`: "
          f"{startup['plain']:.2f} s plain, {startup['sandboxed']:.2f} s in the sandbox "
          f"(+{startup['sandboxed'] - startup['plain']:.2f} s per kernel)")
    print(f"\nload average now: {os.getloadavg()[0]:.1f} (other work on the machine takes cores from the parallel run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
