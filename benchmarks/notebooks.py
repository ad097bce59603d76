"""Run every solution notebook once and print its wall time and peak memory.

    python -m benchmarks.notebooks [--only 01_what_is_a_multimodal_llm] [--threads 2]

Budgets (DESIGN.md §8): ≤ 45 s and ≤ 2 GB per notebook on 2 CPU cores, ≤ 8 min for the course.
Each notebook runs in a fresh kernel in a temporary copy of its folder; peak memory is the
kernel's maximum resident set size (it includes the ≈ 0.7 GB of torch + transformers).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from benchmarks.common import machine, table
from mmcourse import classroom

BUDGET_SECONDS, BUDGET_MIB, BUDGET_COURSE_SECONDS = 45, 2048, 8 * 60
PEAK_CELL = "import resource\nprint('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def run_notebook(folder: Path, name: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / name
        shutil.copytree(folder, work)
        nb = nbformat.read(work / f"{name}.ipynb", as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(work)}}).execute()
        seconds = time.perf_counter() - start
    errors = [f"{o.ename}: {o.evalue}"[:80] for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.output_type == "error"]
    peak_kb = next(int(line.split()[1]) for o in nb.cells[-1].outputs if o.output_type == "stream"
                   for line in o.text.splitlines() if line.startswith("PEAK_RSS_KB"))
    return {"notebook": name, "seconds": seconds, "peak MiB": peak_kb / 1024, "errors": len(errors),
            "first error": errors[0] if errors else ""}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="assignment names (default: all in solutions/)")
    parser.add_argument("--threads", type=int, default=2, help="torch/OpenMP threads in each kernel (default 2)")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    root = classroom.repo_root()
    names = args.only or classroom.discover_assignments(root / "solutions")
    rows = []
    for name in names:
        row = run_notebook(root / "solutions" / name, name)
        row["within budget"] = "yes" if row["seconds"] <= BUDGET_SECONDS and row["peak MiB"] <= BUDGET_MIB \
            and not row["errors"] else "NO"
        rows.append(row)
        print(f"  {name}: {row['seconds']:.1f} s, {row['peak MiB']:.0f} MiB", flush=True)
    total = sum(r["seconds"] for r in rows)
    print(f"\nSolution notebooks, tiny tier — {machine()}, OMP_NUM_THREADS={args.threads}")
    print(f"budget: ≤ {BUDGET_SECONDS} s and ≤ {BUDGET_MIB} MiB per notebook; ≤ {BUDGET_COURSE_SECONDS // 60} min in all\n")
    print(table(rows, ["notebook", "seconds", "peak MiB", "errors", "within budget", "first error"]))
    print(f"\ntotal {total:.1f} s ({total / BUDGET_COURSE_SECONDS:.0%} of the course budget)")
    return 0 if all(r["within budget"] == "yes" for r in rows) and total <= BUDGET_COURSE_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
