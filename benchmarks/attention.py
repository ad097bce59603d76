"""Cross-attention speed and memory: mmcourse.fusion vs a plain softmax(QKᵀ/√d)V.

    python -m benchmarks.attention [--batch 8 --lq 64 --lk 1500 --d 384 --heads 6]

The shape is a text or query sequence (64) attending to Whisper's 1500 audio states.
Peak memory is the rise of the process's maximum resident set during one call, measured
in a fresh process per implementation (so one's peak cannot hide another's).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time

import torch

from benchmarks.common import machine, table

IMPLEMENTATIONS = {
    "plain softmax(QKᵀ/√d)V": "plain",
    "mmcourse (fast path: F.scaled_dot_product_attention)": "fast",
    "mmcourse (return_weights=True, for plots)": "weights",
}


def plain_attention(q, k, v):
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v


def make_call(kind: str, b: int, lq: int, lk: int, d: int, heads: int):
    from mmcourse.fusion import scaled_dot_product_attention

    g = torch.Generator().manual_seed(0)
    shape_q, shape_k = (b, heads, lq, d // heads), (b, heads, lk, d // heads)
    q, k, v = torch.randn(shape_q, generator=g), torch.randn(shape_k, generator=g), torch.randn(shape_k, generator=g)
    pad = torch.zeros(b, lk, dtype=torch.bool)
    pad[:, lk // 2:] = True  # half of every clip is padding, as for a 15 s clip in a 30 s window
    calls = {
        "plain": lambda: plain_attention(q, k, v),
        "fast": lambda: scaled_dot_product_attention(q, k, v, key_padding_mask=pad),
        "weights": lambda: scaled_dot_product_attention(q, k, v, key_padding_mask=pad, return_weights=True),
    }
    return calls[kind]


def run(kind: str, b: int, lq: int, lk: int, d: int, heads: int, repeats: int) -> dict:
    with torch.inference_mode():
        make_call(kind, 1, 2, 4, d, heads)()  # load the code paths first, so their one-off cost is not counted
    call = make_call(kind, b, lq, lk, d, heads)
    with torch.inference_mode():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        call()  # first call: its peak is the memory measurement
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    return {"ms": 1000 * statistics.median(times), "peak MiB": peak_kib / 1024}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lq", type=int, default=64)
    parser.add_argument("--lk", type=int, default=1500)
    parser.add_argument("--d", type=int, default=384)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    dims = (args.batch, args.lq, args.lk, args.d, args.heads, args.repeats)
    if args.child:
        print(json.dumps(run(args.child, *dims)))
        return 0
    rows = []
    for label, kind in IMPLEMENTATIONS.items():
        cmd = [sys.executable, "-m", "benchmarks.attention", "--child", kind, "--batch", str(args.batch), "--lq",
               str(args.lq), "--lk", str(args.lk), "--d", str(args.d), "--heads", str(args.heads),
               "--repeats", str(args.repeats)]
        result = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        rows.append({"implementation": label, **result})
    base = rows[0]
    for row in rows:
        row["speed-up"] = f"{base['ms'] / row['ms']:.2f}x"
        row["memory ratio"] = f"{base['peak MiB'] / max(row['peak MiB'], 1e-3):.1f}x less" if row is not base else "1.0x"
    print(f"\nCross-attention B={args.batch}, Lq={args.lq}, Lk={args.lk}, d={args.d}, {args.heads} heads, "
          f"half the keys padded — {machine()}\n")
    print(table(rows, ["implementation", "ms", "speed-up", "peak MiB", "memory ratio"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
