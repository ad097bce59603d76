"""Autograde N copies of a notebook, one at a time and with parallel workers; print seconds per submission.

    python -m benchmarks.autograde [--notebook 01_what_is_a_multimodal_llm] [--n 8] [--jobs 2]

Serial: one `nbgrader autograde ASSIGNMENT` command grades every student in turn (what nbgrader does
by default). Parallel: `--jobs` concurrent `nbgrader autograde ASSIGNMENT --student S` commands,
each with OMP_NUM_THREADS=1, sharing one SQLite gradebook. Budget (DESIGN.md §8): ≤ 15 s per
notebook per student on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from benchmarks.common import machine, table
from mmcourse import classroom


def nbgrader(root: Path, *args: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg",
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{result.stderr[-2000:]}")


def prepare(root: Path, name: str, students: list[str]) -> None:
    classroom.copy_course(classroom.repo_root(), root, [name])
    nbgrader(root, "generate_assignment", name, "--force")
    source = nbformat.read(classroom.notebook_path(root, "solutions", name), as_version=4)
    release = nbformat.read(classroom.notebook_path(root, "course", name), as_version=4)
    for student in students:
        classroom.submit(root, name, student, classroom.perfect_submission(source, release))


def check_scores(root: Path, name: str, students: list[str]) -> None:
    api = classroom.open_course(root)
    for student in students:
        score, maximum = classroom.scores(api, name, student)["total"]
        if score != maximum:
            raise RuntimeError(f"{student} scored {score}/{maximum}; a correct submission must get full marks")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", default="01_what_is_a_multimodal_llm")
    parser.add_argument("--n", type=int, default=8, help="number of submissions")
    parser.add_argument("--jobs", type=int, default=2, help="parallel workers")
    args = parser.parse_args(argv)
    students = [f"student{i:03d}" for i in range(args.n)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        serial_root, parallel_root = Path(tmp) / "serial", Path(tmp) / "parallel"
        prepare(serial_root, args.notebook, students)
        prepare(parallel_root, args.notebook, students)

        start = time.perf_counter()
        nbgrader(serial_root, "autograde", args.notebook, "--force")
        serial = time.perf_counter() - start
        check_scores(serial_root, args.notebook, students)
        rows.append({"mode": "serial (1 process)", "workers": 1, "total s": serial, "s / submission": serial / args.n,
                     "speed-up": "1.00x"})

        start = time.perf_counter()
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda s: nbgrader(parallel_root, "autograde", args.notebook, "--student", s, "--force"),
                          students))
        parallel = time.perf_counter() - start
        check_scores(parallel_root, args.notebook, students)
        rows.append({"mode": "parallel (1 process / student)", "workers": args.jobs, "total s": parallel,
                     "s / submission": parallel / args.n, "speed-up": f"{serial / parallel:.2f}x"})
    print(f"\nAutograding {args.n} correct submissions of {args.notebook} — {machine()}")
    print("budget: ≤ 15 s per notebook per student\n")
    print(table(rows, ["mode", "workers", "total s", "s / submission", "speed-up"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
