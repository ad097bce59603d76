"""Decoding speed: greedy decoding with and without the KV cache, and the training cells of notebooks 08–10.

    python -m benchmarks.decoding [--lengths 16 32 64 128] [--batch 8] [--repeats 3] [--threads 2] [--no-notebooks]

1. Tokens per second of `greedy_decode` on a TextDecoder (4 layers, width 128, 65 conditioning tokens
   like the tiny ViT's), prefix and cross mode, with `decoder_step(use_cache=True)` and without it, for
   generating 16 … 128 tokens from a BOS. Without a cache step t re-runs the model on all t tokens
   (O(t²) work in all); with it, step t runs one token against t cached keys. The cache must win at
   every length ≥ 32. Each number is the median of `--repeats` runs after a warm-up, the two variants
   taking turns so that a busy machine slows them alike.
2. The time of each decoder notebook's training cell (the code cell tagged "training") in
   solutions/08_…, 09_…, 10_… (those that exist): the notebook runs once in a fresh kernel with nbclient,
   which records when each cell started and finished (cell.metadata.execution); the training cell's time
   is its shell.execute_reply minus its iopub.execute_input. The whole notebook's time is printed too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import torch

from benchmarks.common import machine, table
from mmcourse import classroom
from mmcourse.decoding import DecoderConfig, TextDecoder, decoder_step, greedy_decode
from mmcourse.tokens import Tokens

DECODER_NOTEBOOKS = ("08", "09", "10")
TRAINING_TAG = "training"


# ---------------------------------------------------------------- 1. the KV cache


def kv_cache_rows(lengths: list[int], batch: int, repeats: int) -> list[dict]:
    rows = []
    for mode in ("prefix", "cross"):
        torch.manual_seed(0)
        cfg = DecoderConfig(vocab_size=108, d_model=128, n_layers=4, n_heads=4, max_len=max(lengths) + 1, d_cond=64,
                            mode=mode)
        model = TextDecoder(cfg).eval()
        cond = Tokens(torch.randn(batch, 65, 64), torch.zeros(batch, 65, dtype=torch.bool))
        prompt = torch.zeros(batch, 1, dtype=torch.long)
        for n in lengths:
            runs = {True: [], False: []}
            for use_cache in (True, False):  # warm-up
                greedy_decode(decoder_step(model, cond, use_cache), prompt, n)
            for _ in range(repeats):
                for use_cache in (True, False):
                    start = time.perf_counter()
                    out = greedy_decode(decoder_step(model, cond, use_cache), prompt, n)
                    runs[use_cache].append(time.perf_counter() - start)
                    assert out.shape == (batch, n + 1)
            cached, uncached = (batch * n / statistics.median(runs[c]) for c in (True, False))
            rows.append({"mode": mode, "new tokens": n, "with cache tok/s": cached, "without tok/s": uncached,
                         "cache speed-up": f"{cached / uncached:.2f}x",
                         "cache wins": "yes" if cached > uncached else ("NO" if n >= 32 else "no (n < 32)")})
    return rows


# ---------------------------------------------------------------- 2. the training cells


def _seconds(execution: dict) -> float | None:
    try:
        start = datetime.fromisoformat(execution["iopub.execute_input"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(execution["shell.execute_reply"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return (end - start).total_seconds()


def training_cell_rows(threads: int) -> list[dict]:
    import nbformat
    from nbclient import NotebookClient

    root = classroom.repo_root()
    names = [n for n in classroom.discover_assignments(root / "solutions") if n[:2] in DECODER_NOTEBOOKS]
    rows = []
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the kernel inherits it
    os.environ.setdefault("MPLBACKEND", "Agg")
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / name
            shutil.copytree(root / "solutions" / name, work)
            nb = nbformat.read(work / f"{name}.ipynb", as_version=4)
            start = time.perf_counter()
            NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True, record_timing=True,
                           resources={"metadata": {"path": str(work)}}).execute()
            total = time.perf_counter() - start
        tagged = [c for c in nb.cells if c.cell_type == "code" and TRAINING_TAG in c.metadata.get("tags", [])]
        errors = sum(o.output_type == "error" for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
        if not tagged:
            rows.append({"notebook": name, "training cell s": f'no cell tagged "{TRAINING_TAG}"',
                         "notebook s": total, "errors": errors})
            continue
        seconds = [_seconds(c.metadata.get("execution", {})) for c in tagged]
        rows.append({"notebook": name, "training cell s": sum(s for s in seconds if s is not None),
                     "training cells": len(tagged), "notebook s": total, "errors": errors})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="*", default=[16, 32, 64, 128], help="new tokens to generate")
    parser.add_argument("--batch", type=int, default=8, help="sequences generated at once (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per number (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads here and in the kernels (default 2)")
    parser.add_argument("--no-notebooks", action="store_true", help="skip running the decoder notebooks")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    rows = kv_cache_rows(args.lengths, args.batch, args.repeats)
    print(f"Greedy decoding, batch {args.batch}, TextDecoder 4 layers × width 128, 65 conditioning tokens — "
          f"{machine()}\n")
    print(table(rows, ["mode", "new tokens", "with cache tok/s", "without tok/s", "cache speed-up", "cache wins"]))
    ok = all(r["cache wins"] != "NO" for r in rows)

    if not args.no_notebooks:
        print(f"\nTraining cells (tagged \"{TRAINING_TAG}\") of the decoder notebooks, OMP_NUM_THREADS={args.threads}, "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
        nb_rows = training_cell_rows(args.threads)
        if nb_rows:
            print(table(nb_rows, ["notebook", "training cell s", "training cells", "notebook s", "errors"]))
        else:
            print("(no decoder notebook in solutions/ yet)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
